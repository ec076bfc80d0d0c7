"""speedups: a switchable layer; the same results as stock Theano/Lasagne,
from faster code, and stock code paths when switched off."""
import os
import subprocess
import sys

import numpy as np
import pytest
import theano
import theano.tensor as T
import lasagne

import dropout_rng
import feedforward_lasagne_mnist as flm
import speedups

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def stock():
    """Speed-ups off for one test, then as they were."""
    was = speedups.enabled()
    speedups.disable()
    yield
    if was:
        speedups.enable()


def op_names(f):
    return [type(n.op).__name__ for n in f.maker.fgraph.toposort()]


def train_fn_ops(network):
    """The ops of run_network()'s train_fn for `network` (compiled from the cache)."""
    x = lasagne.layers.get_all_layers(network)[0].input_var
    y = T.ivector("targets")
    loss = lasagne.objectives.categorical_crossentropy(
        lasagne.layers.get_output(network), y).mean()
    params = lasagne.layers.get_all_params(network, trainable=True)
    return op_names(theano.function([x, y], loss, updates=lasagne.updates.rmsprop(
        loss, params, learning_rate=0.001)))


def test_lasagne_dropout_uses_the_fast_generator_on_the_cpu():
    speedups.enable()
    layer = lasagne.layers.DropoutLayer(lasagne.layers.InputLayer((None, 100)), p=0.4)
    assert isinstance(layer._srng, dropout_rng.RandomStreams)
    x = T.matrix()
    f = theano.function([x], lasagne.layers.get_output(layer, x))
    out = f(np.ones((400, 100), dtype=theano.config.floatX))
    assert set(np.unique(out)) == {0, np.float32(1 / 0.6)}
    assert abs((out > 0).mean() - 0.6) < 0.01  # 40,000 draws: 5 sigma ~ 0.012


def rmsprop_like(x, g):
    # rmsprop's update with its scalar constants (rho, 1 - rho, lr, epsilon)
    acc = 0.9 * x + 0.1 * g ** 2
    return x - 0.001 * g / T.sqrt(acc + 1e-6)


def test_constants_are_inlined_and_results_unchanged():
    speedups.enable()
    x, g = T.matrices("x", "g")
    fast = theano.function([x, g], rmsprop_like(x, g))
    plain = theano.function([x, g], rmsprop_like(x, g), mode=theano.compile.get_default_mode()
                            .excluding("inline_broadcast_constants"))
    rng = np.random.RandomState(0)
    a, b = (rng.rand(300, 200).astype(theano.config.floatX) for _ in range(2))
    # Same operations; a C literal may be evaluated in double: float32 rounding apart.
    np.testing.assert_allclose(fast(a, b), plain(a, b), rtol=0, atol=1.2e-7)

    def constant_inputs(f):
        return sum(isinstance(i, T.TensorConstant) for n in f.maker.fgraph.toposort()
                   for i in n.inputs)
    assert constant_inputs(plain) > 0 and constant_inputs(fast) == 0


def test_switched_off_the_network_trains_on_stock_code_paths(small, stock):
    """Same seed both ways: both learn; only the stock run uses Theano's own
    dropout generator and keeps Theano's Dot22Scalar rewrite."""
    data = small[:2] + small[2:4] * 2  # validation doubles as test: less work
    network = flm.run_network(data=data, num_epochs=2, seed=5, progress=False)
    layers = lasagne.layers.get_all_layers(network)
    assert not any(isinstance(l._srng, dropout_rng.RandomStreams) for l in layers[2:5:2])
    stock_ops = train_fn_ops(network)
    assert "mrg_uniform" in stock_ops and "BernoulliMask" not in stock_ops

    speedups.enable()
    fast = flm.run_network(data=data, num_epochs=2, seed=5, progress=False)
    fast_ops = train_fn_ops(fast)
    assert "BernoulliMask" in fast_ops and "mrg_uniform" not in fast_ops
    # Without Theano's Dot22Scalar rewrite, rmsprop computes each of the 3 weight
    # gradients once: 8 matrix products per step (3 forward, 5 backward), not 11.
    assert "Dot22Scalar" in stock_ops and "Dot22Scalar" not in fast_ops
    assert len([o for o in fast_ops if "Dot22" in o]) == 8
    assert len([o for o in stock_ops if "Dot22" in o]) == 11
    # (Whether the first layer's products skip zeros here depends on whether
    # OpenBLAS was loaded before enable(): tested in subprocesses below.)
    assert "ZeroSkippingDot22" not in stock_ops
    # The three bias gradients' sums (column_sum).
    assert fast_ops.count("ColumnSum") == 3 and "ColumnSum" not in stock_ops
    for history in (network.history, fast.history):
        assert history["train_loss"][1] < history["train_loss"][0] < np.log(10)  # chance
        assert history["val_acc"][1] > 0.8  # chance is 0.1
    # Other dropout masks from the same seed: close, not equal.
    assert network.history["train_loss"] != fast.history["train_loss"]
    assert abs(network.history["val_acc"][1] - fast.history["val_acc"][1]) < 0.03


@pytest.mark.parametrize("how", ["FLM_SPEEDUPS=0", "--no-speedups"])
def test_the_switches_from_the_shell(how):
    env = dict(os.environ)
    args = ["--limit", "500", "--epochs", "1", "--no-progress"]
    if how.startswith("FLM"):
        env["FLM_SPEEDUPS"] = "0"
    else:
        args.append(how)
    result = subprocess.run([sys.executable, os.path.join(ROOT, "feedforward_lasagne_mnist.py")]
                            + args, capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "speed-ups: off (stock Theano/Lasagne)" in result.stderr
    assert "  test accuracy:" in result.stdout


ZERO_SKIPPING_PROBE = r"""
import os, sys
import numpy as np, theano, theano.tensor as T
if sys.argv[1] == "blas-first":
    # A compiled product before the script is imported: OpenBLAS is loaded.
    x = T.matrix()
    theano.function([x], T.dot(x, x))(np.ones((2, 2), dtype="float32"))
import feedforward_lasagne_mnist as flm
import speedups
x = T.matrix()
W = theano.shared(np.ones((3, 3), dtype="float32"))
ops = [type(n.op).__name__ for n in theano.function([x], T.dot(x, W)).maker.fgraph.toposort()]
print(os.environ.get("OPENBLAS_THREAD_TIMEOUT"), speedups.enabled(), ops)
"""


@pytest.mark.parametrize("case, timeout, expected", [
    ("fresh", None, "4 True ['ZeroSkippingDot22']"),      # set before OpenBLAS loads
    ("fresh", "2", "2 True ['ZeroSkippingDot22']"),       # a short value of the user's
    ("fresh", "30", "30 True ['Dot22']"),                 # a long one: stays off
    ("fresh", "0", "0 True ['Dot22']"),                   # OpenBLAS ignores it: off
    ("blas-first", None, "None True ['Dot22']"),          # too late to set it: stays off
])
def test_zero_skipping_needs_sleeping_blas_threads(case, timeout, expected):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    env.pop("FLM_SPEEDUPS", None)
    if timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = timeout
    result = subprocess.run([sys.executable, "-c", ZERO_SKIPPING_PROBE, case],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected


def test_switched_off_before_openblas_loads_openblas_is_stock():
    """--no-speedups: the script's import set OPENBLAS_THREAD_TIMEOUT; disabling
    before any compiled function takes it back, so OpenBLAS loads as stock."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "FLM_SPEEDUPS")}
    probe = ("import os, feedforward_lasagne_mnist, speedups\n"
             "print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n"
             "speedups.disable(); print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n"
             "speedups.enable(); print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["4", "None", "4"]
