"""speedups: a compile mode for the tutorial's network and functions only.
run_network compiles its ops with it (and not when switched off); the user's
own functions and layers get stock Theano/Lasagne ops and results, before
and after the tutorial is imported and has trained; constants are inlined
with their exact value and type."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import theano
import theano.tensor as T
import lasagne

import feedforward_lasagne_mnist as flm
from lasagne_mnist_port import speedups
from lasagne_mnist_port.speedups import dropout_rng

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def op_names(f):
    return [type(n.op).__name__ for n in f.maker.fgraph.toposort()]


def run_and_catch_functions(monkeypatch, **kwargs):
    """run_network(**kwargs), and the functions it compiled: train_fn, val_fn."""
    compiled, function = [], theano.function

    def keep(*args, **kw):
        compiled.append(function(*args, **kw))
        return compiled[-1]
    monkeypatch.setattr(flm.theano, "function", keep)
    network = flm.run_network(progress=False, **kwargs)
    monkeypatch.undo()
    return network, [op_names(f) for f in compiled]


@pytest.mark.parametrize("how", ["on", "speedups=False", "FLM_SPEEDUPS=0", "FLM_SPEEDUPS=off"])
def test_run_network_compiles_the_speedup_ops_unless_switched_off(small, monkeypatch, how):
    data = small[:2] + small[2:4] * 2  # validation doubles as test: less work
    kwargs = dict(data=data, num_epochs=2, seed=5)
    if how == "speedups=False":
        kwargs["speedups"] = False
    elif how.startswith("FLM_SPEEDUPS="):
        monkeypatch.setenv("FLM_SPEEDUPS", how.split("=")[1])
    network, (train_ops, val_ops) = run_and_catch_functions(monkeypatch, **kwargs)
    layers = lasagne.layers.get_all_layers(network)
    fast = how == "on"
    assert all(isinstance(l._srng, dropout_rng.RandomStreams) == fast for l in layers[2:5:2])
    assert ("BernoulliMask" in train_ops) == fast and ("mrg_uniform" in train_ops) != fast
    assert train_ops.count("FusedRMSProp") == (6 if fast else 0)
    assert train_ops.count("ColumnSum") == (3 if fast else 0)  # the bias gradients' sums
    # Without Theano's Dot22Scalar rewrite, rmsprop computes each of the 3 weight
    # gradients once: 8 matrix products per step (3 forward, 5 backward), not 11.
    assert len([o for o in train_ops if "Dot22" in o]) == (8 if fast else 11)
    assert ("Dot22Scalar" in train_ops) != fast
    # (Whether the first layer's products skip zeros depends on whether
    # OpenBLAS was loaded before the mode was made: tested in subprocesses below.)
    if not fast:
        assert "ZeroSkippingDot22" not in train_ops + val_ops
    history = network.history
    assert history["train_loss"][1] < history["train_loss"][0] < np.log(10)  # chance
    assert history["val_acc"][1] > 0.8  # chance is 0.1


# The user's own code: float32 comparisons and products with constants, a
# complex constant, rmsprop on their own parameter, every Lasagne noise layer.
USER_CODE = r"""
import json, sys
import numpy as np, theano, theano.tensor as T, lasagne
if sys.argv[1] == "after training":
    import feedforward_lasagne_mnist as flm
    import lasagne_mnist_port.speedups, lasagne_mnist_port.cli  # the whole package
    data = [a[:1000] for a in flm.load_data()]
    flm.run_network(data=data, num_epochs=1, seed=1, progress=False)
x = T.vector()
v = np.array([0.1, 0.3, 1e30, -2.5], "float32")
z = T.cvector()
cases = {"eq 0.1": T.eq(abs(x), 0.1), "le 0.3": T.le(abs(x), 0.3),
         "times 1e-45": abs(x) * np.float32(1e-45), "min 0.1 - 0.1": T.minimum(abs(x), 0.1) - 0.1,
         "complex": (z * np.complex64(1 + 2j) + 0.5).real}
W = theano.shared(np.ones((5, 4), "float32"))
g = T.matrix()
lasagne.random.set_rng(np.random.RandomState(0))
inp = lasagne.layers.InputLayer((50, 40), input_var=g)
layers = {"DropoutLayer": lasagne.layers.DropoutLayer(inp, p=0.3),
          "dropout": lasagne.layers.dropout(inp, p=0.6),
          "GaussianNoiseLayer": lasagne.layers.GaussianNoiseLayer(inp, sigma=0.2)}
out = {}
for name, expr in cases.items():
    f = theano.function([z if name == "complex" else x], expr)
    value = f(np.array([1 + 1j, -2j], "complex64") if name == "complex" else v)
    out[name] = [repr(value.tolist()), str(value.dtype)]
f = theano.function([g], [], updates=lasagne.updates.rmsprop([g], [W], 0.01))
f(np.full((5, 4), 0.5, "float32"))
out["rmsprop"] = [repr(W.get_value().tolist()), [type(n.op).__name__ for n in f.maker.fgraph.toposort()]]
for name, layer in layers.items():
    f = theano.function([g], lasagne.layers.get_output(layer))
    out[name] = [repr(f(np.ones((50, 40), "float32")).tolist()),
                 sorted(type(n.op).__name__ for n in f.maker.fgraph.toposort())]
print(json.dumps(out))
"""


def user_results(case):
    result = subprocess.run([sys.executable, "-c", USER_CODE, case], capture_output=True,
                            text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_users_own_code_gets_stock_ops_and_results():
    stock = user_results("stock")
    assert stock["eq 0.1"][0] == "[True, False, False, False]"  # float32 0.1 == float32 0.1
    assert stock["min 0.1 - 0.1"][0] == "[0.0, 0.0, 0.0, 0.0]"
    assert "mrg_uniform" in stock["DropoutLayer"][1]
    # after importing the whole package and training the tutorial in the process
    assert user_results("after training") == stock


def user_expressions():
    x = T.vector("x")
    return x, {"eq 0.1": T.eq(abs(x), 0.1), "le 0.3": T.le(abs(x), 0.3),
               "times 1e-45": abs(x) * np.float32(1e-45),
               "min 0.1 - 0.1": T.minimum(abs(x), 0.1) - 0.1,
               "int and bool": T.switch(T.gt(abs(x), 1), T.cast(x, "int16") * np.int16(-3), 7),
               "float64": T.cast(x, "float64") * 0.1 + np.float64(1e-300)}


def constant_inputs(f):
    return sum(isinstance(i, T.TensorConstant) for n in f.maker.fgraph.toposort()
               for i in n.inputs if isinstance(n.op, T.Elemwise))


def test_inlined_constants_keep_their_exact_value_and_type():
    """In the speed-ups' mode the constants of these loops become C literals,
    and every result is bit for bit the stock one."""
    fast_mode = speedups.mode(flm.build_mlp())
    x, expressions = user_expressions()
    v = np.array([0.1, 0.3, 1e30, -2.5, 0.0, -0.0, 7e-46, 3.4e38], "float32")
    for name, expr in expressions.items():
        fast, plain = (theano.function([x], expr, mode=m) for m in (fast_mode, None))
        assert constant_inputs(fast) == 0 < constant_inputs(plain), name
        a, b = fast(v), plain(v)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (name, a, b)


def test_complex_and_non_finite_constants_are_left_as_inputs():
    fast_mode = speedups.mode(flm.build_mlp())
    z = T.cvector("z")
    x = T.vector("x")
    for inputs, expr, value in [
            (z, (z * np.complex64(1 + 2j) + 0.5).real, np.array([1 + 1j, -2j], "complex64")),
            (x, T.minimum(x, np.float32(np.inf)) * 2 + np.float32(np.nan), np.ones(3, "float32"))]:
        fast, plain = (theano.function([inputs], expr, mode=m) for m in (fast_mode, None))
        assert fast(value).tobytes() == plain(value).tobytes()


def rmsprop_like(x, g):
    # rmsprop's update with its scalar constants (rho, 1 - rho, lr, epsilon)
    acc = 0.9 * x + 0.1 * g ** 2
    return x - 0.001 * g / T.sqrt(acc + 1e-6)


def test_rmsprop_like_loops_are_inlined_with_unchanged_results():
    fast_mode = speedups.mode(flm.build_mlp())
    x, g = T.matrices("x", "g")
    fast = theano.function([x, g], rmsprop_like(x, g), mode=fast_mode)
    plain = theano.function([x, g], rmsprop_like(x, g))
    rng = np.random.RandomState(0)
    a, b = (rng.rand(300, 200).astype(theano.config.floatX) for _ in range(2))
    assert constant_inputs(plain) > 0 and constant_inputs(fast) == 0
    np.testing.assert_array_equal(fast(a, b), plain(a, b))


@pytest.mark.parametrize("how", [pytest.param("FLM_SPEEDUPS=0", marks=pytest.mark.slow),
                                 "--no-speedups"])
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
    # A compiled product before the mode is made: OpenBLAS is loaded.
    x = T.matrix()
    theano.function([x], T.dot(x, x))(np.ones((2, 2), dtype="float32"))
import feedforward_lasagne_mnist as flm
from lasagne_mnist_port import speedups
import subprocess
imported = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
mode = speedups.mode(flm.build_mlp())
loaded = speedups.blas_loaded()  # by mode(), with the variable set while it loads
child = subprocess.run(["sh", "-c", "echo ${OPENBLAS_THREAD_TIMEOUT-unset}"],
                       stdout=subprocess.PIPE, text=True).stdout.strip()
x = T.matrix()
W = theano.shared(np.ones((3, 3), dtype="float32"))
ops = [type(n.op).__name__ for n in theano.function([x], T.dot(x, W), mode=mode).maker.fgraph.toposort()]
print(imported, os.environ.get("OPENBLAS_THREAD_TIMEOUT"), child, loaded, ops, speedups.describe(mode))
"""


@pytest.mark.parametrize("case, timeout, expected", [
    # OpenBLAS loaded by mode() with the variable at 4, which is then removed:
    # the process's children get the user's environment
    ("fresh", None, "None None unset True ['ZeroSkippingDot22'] on"),
    ("fresh", "2", "2 2 2 False ['ZeroSkippingDot22'] on"),  # a short value of the user's
    ("fresh", "30", "30 30 30 False ['Dot22'] on, except 5 zero-skipping products "
                    "(OPENBLAS_THREAD_TIMEOUT=30 is not 1 to 10)"),  # a long one
    ("fresh", "0", "0 0 0 False ['Dot22'] on, except 5 zero-skipping products "
                   "(OPENBLAS_THREAD_TIMEOUT=0 is not 1 to 10)"),  # OpenBLAS ignores it
    ("blas-first", None, "None None unset True ['Dot22'] on, except 5 zero-skipping products "
                         "(OpenBLAS was loaded before OPENBLAS_THREAD_TIMEOUT could be set)"),
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


# --- The modes a Theano user sets: DebugMode, NanGuardMode --------------------
# A small network of the tutorial's layers (dropout, rmsprop, a first product
# of the input), two training steps in the speed-ups' mode under
# THEANO_FLAGS=mode=...; the Device line's words, the ops, the losses.
SMALL_NETWORK = r"""
import json
import numpy as np, theano, theano.tensor as T, lasagne
from lasagne_mnist_port import speedups
lasagne.random.set_rng(np.random.RandomState(1))
x, y = T.matrix("x"), T.ivector("y")
net = lasagne.layers.InputLayer((None, 12), input_var=x)
net = lasagne.layers.DropoutLayer(lasagne.layers.DenseLayer(net, 6), p=0.4)
net = lasagne.layers.DenseLayer(net, 3, nonlinearity=lasagne.nonlinearities.softmax)
mode = speedups.mode(net)
loss = lasagne.objectives.categorical_crossentropy(lasagne.layers.get_output(net), y).mean()
params = lasagne.layers.get_all_params(net, trainable=True)
f = theano.function([x, y], loss, updates=lasagne.updates.rmsprop(loss, params, 0.01), mode=mode)
rng = np.random.RandomState(0)
X = (rng.rand(8, 12) * (rng.rand(8, 12) < 0.3)).astype("float32")
losses = [float(f(X, np.arange(8, dtype="int32") % 3)) for _ in range(2)]
guards = None
if type(theano.compile.get_default_mode()).__name__ == "NanGuardMode":
    try:  # its checks run: a NaN is its error
        theano.function([x], T.log(x - x - 1), mode=mode)(X)
        guards = False
    except AssertionError as e:
        guards = "NanGuardMode found an error" in str(e)
print(json.dumps([type(theano.compile.get_default_mode()).__name__, speedups.describe(mode),
                  sorted(set(type(n.op).__name__ for n in f.maker.fgraph.toposort())
                         & {"BernoulliMask", "FusedRMSProp", "ColumnSum", "ZeroSkippingDot22"}),
                  bool(np.all(np.isfinite(losses))), guards]))
"""


@pytest.mark.parametrize("theano_mode, device_line, error", [
    # DebugMode runs each op's C and Python code with its own linker (and
    # compares them, on the training steps): 7 steps aside
    # (about a minute of CPU with a cold cache: a slow check)
    pytest.param("DebugMode", "on, except 7 side-by-side compile (mode=DebugMode runs "
                 "Theano's own linker)", None, marks=pytest.mark.slow),
    # NanGuardMode's checks are callbacks of its VM linker, which 7's linker keeps
    ("NanGuardMode", "on", True)])
def test_the_modes_a_theano_user_sets(theano_mode, device_line, error):
    env = dict(os.environ, THEANO_FLAGS="mode=" + theano_mode)
    env.pop("FLM_SPEEDUPS", None)
    result = subprocess.run([sys.executable, "-c", SMALL_NETWORK], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [
        theano_mode, device_line, ["BernoulliMask", "ColumnSum", "FusedRMSProp",
                                   "ZeroSkippingDot22"], True, error]


@pytest.mark.slow  # two runs of the command line
def test_nanguardmode_trains_the_tutorial_and_still_guards():
    """The command line under NanGuardMode trains with the speed-ups; a
    learning rate that makes the weights overflow is caught by NanGuardMode's
    own check, not at the end of the epoch."""
    env = dict(os.environ, THEANO_FLAGS="mode=NanGuardMode")
    env.pop("FLM_SPEEDUPS", None)
    args = [sys.executable, os.path.join(ROOT, "feedforward_lasagne_mnist.py"), "--epochs", "1",
            "--limit", "500", "--no-progress"]
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "speed-ups: on\n" in result.stderr and "  test accuracy:" in result.stdout
    result = subprocess.run(args + ["--lr", "1e38"], capture_output=True, text=True, cwd=ROOT,
                            env=env, timeout=300)
    assert result.returncode != 0 and "NanGuardMode found an error" in result.stderr


@pytest.mark.slow  # a minute of DebugMode
def test_debugmode_trains_the_tutorial():
    """The tutorial's network and functions under DebugMode, on a small subset."""
    code = ("import feedforward_lasagne_mnist as flm\n"
            "d = flm.load_data()\n"
            "net = flm.run_network(data=[d[0][:200], d[1][:200]] + [a[:100] for a in d[2:]],\n"
            "                      num_epochs=1, batch_size=50, seed=1, progress=False)\n"
            "print(net.history['train_loss'])\n")
    env = dict(os.environ, THEANO_FLAGS="mode=DebugMode")
    env.pop("FLM_SPEEDUPS", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("speed-ups: on, except 7 side-by-side compile (mode=DebugMode runs Theano's own "
            "linker)") in result.stderr
    assert "  test accuracy:" in result.stdout


def test_the_rewrites_are_selected_by_their_names_only():
    """Theano's default mode and a mode built from a database's name select
    none of the speed-ups' rewrites; speedups.mode() names each."""
    from lasagne_mnist_port.speedups import parallel_compile  # noqa: F401 (registrations)
    ours = {"fused_updates", "fused_updates_inplace", "column_sum", "inline_broadcast_constants",
            "zero_skipping_dot22", "fold_data_movement"}

    def selected(query):
        names = set()

        def walk(opt):  # SeqOptimizer (a list), EquilibriumOptimizer, the rest
            names.add(getattr(opt, "name", None))
            for sub in list(opt) if isinstance(opt, list) else [
                    o for a in ("local_optimizers_all", "global_optimizers", "final_optimizers",
                                "cleanup_optimizers") for o in getattr(opt, a, None) or []] + [
                    o for os_ in (getattr(opt, "local_optimizers_map", None) or {}).values()
                    for o in os_]:
                walk(sub)
        walk(theano.compile.optdb.query(query))
        return names & ours

    assert selected(theano.compile.get_default_mode().provided_optimizer) == set()
    for db in ("canonicalize", "stabilize", "specialize", "uncanonicalize"):
        assert selected(theano.gof.Query(include=[db])) == set(), db
    fast = speedups.mode(flm.build_mlp())
    assert selected(fast.provided_optimizer) >= ours - {"zero_skipping_dot22"}


# --- Any x86-64: the speed-ups' C code for x86-64-v2 and v3 gives the native build's bits
# Theano compiles for this CPU's -march (AVX-512 where it has it); gcc.cxxflags
# with an -march of its own replaces that. The five C ops of the speed-ups, on
# fixed inputs with partial tiles and blocks, each compiled as a module of its
# own as in training (one op's flags, e.g. -ffp-contract=off, would otherwise
# apply to all), in one process per level; the compile cache is shared, as
# its keys hold the compiler flags.
SPEEDUP_OPS = r"""
import sys
import numpy as np
import theano
import theano.tensor as T
from lasagne_mnist_port.speedups import column_sum, dropout_rng, fused_updates, sparse_dot

rng = np.random.RandomState(1)
X = (rng.rand(53, 784) * (rng.rand(53, 784) < 0.2)).astype("float32")  # 80 % zeros
W, G, A = (rng.randn(784, 67).astype("float32") for _ in range(3))
A = A * A
M = rng.randn(784, 67).astype("float32")
x, w, g, a, m = T.fmatrices("x", "w", "g", "a", "m")
rstate = T.vector("rstate", dtype="uint64")
product = sparse_dot.zero_skipping_dot22(x, w)
param_new, acc_new = fused_updates.FusedRMSProp()(w, g, a, 0.9, 0.1, 0.001, 1e-6)
adam_outputs = fused_updates.FusedAdam()(w, g, m, a, 0.9, 0.1, 0.999, 0.001, 0.003, 1e-8)
_, mask = dropout_rng.BernoulliMask(2, "float32")(rstate, [53, 784], 0.6)
f = theano.function([x, w, g, a, m, rstate],
                    [product, param_new, acc_new, column_sum.column_sum(g), mask] + adam_outputs,
                    mode=theano.compile.Mode(linker="cvm", optimizer=None))
outputs = f(X, W, G, A, M, np.array([12345, 678], dtype="uint64"))
np.savez(sys.argv[1], *outputs)
print(theano.gof.cmodule.GCC_compiler.march_flags[:1])
"""
X86_64_LEVELS = {"x86-64-v2": {"sse4_2", "ssse3", "popcnt", "cx16"},
                 "x86-64-v3": {"avx2", "fma", "bmi1", "bmi2", "movbe", "f16c", "abm"}}


@pytest.fixture(scope="module")
def speedup_ops_per_level(tmp_path_factory):
    """{level: the outputs of SPEEDUP_OPS}, for this CPU's own -march ("native")
    and the levels below it that the CPU runs, each built in its own process."""
    import platform
    if platform.machine() != "x86_64":
        pytest.skip("x86-64 levels: this is %s" % platform.machine())
    from lasagne_mnist_port.training import cpu_flags
    flags, needed = cpu_flags(), set()
    levels = []
    for level, features in X86_64_LEVELS.items():
        needed |= features
        # (a CPU without AVX-512 builds x86-64-v3's vectors for its own -march:
        # a build for v3 would compare that code with itself)
        if needed <= flags and (level != "x86-64-v3" or "avx512f" in flags):
            levels.append(level)
    folder = tmp_path_factory.mktemp("levels")
    runs = {}
    for level in levels:
        env = dict(os.environ, THEANO_FLAGS=os.environ.get("THEANO_FLAGS", "")
                   + ",gcc.cxxflags=-march=" + level)
        runs[level] = subprocess.Popen(
            [sys.executable, "-c", SPEEDUP_OPS, str(folder / (level + ".npz"))], cwd=ROOT,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from unittest import mock
    with mock.patch.object(sys, "argv", ["-c", str(folder / "native.npz")]):
        exec(SPEEDUP_OPS, {"__name__": "__main__"})  # this process: Theano's -march
    for level, run in runs.items():
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
        assert out.strip().splitlines()[-1] == "[]"  # our -march, not Theano's added to it
    results = {}
    for level in ["native"] + levels:
        with np.load(folder / (level + ".npz")) as saved:
            results[level] = [saved["arr_%d" % i] for i in range(len(saved.files))]
    return results


@pytest.mark.slow  # the speed-up ops compiled again for each level
@pytest.mark.parametrize("level", X86_64_LEVELS)
def test_speedup_ops_give_the_same_bits_on_every_x86_64_level(speedup_ops_per_level, level):
    if level not in speedup_ops_per_level:
        pytest.skip("this CPU cannot run %s code, or its own build is that code (no AVX-512)"
                    % level)
    native = speedup_ops_per_level["native"]
    assert native[0].shape == (53, 67) and 0 < native[4].mean() < 1
    for name, got, expected in zip(["product", "param_new", "acc_new", "column sums", "mask",
                                    "adam's param_new", "m_new", "v_new"],
                                   speedup_ops_per_level[level], native):
        assert got.dtype == expected.dtype and got.tobytes() == expected.tobytes(), name
