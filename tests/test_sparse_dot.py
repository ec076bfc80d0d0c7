"""sparse_dot: products that skip the data's zeros give the dense product's
result to float32 rounding, fall back to the GEMM on dense data, and are only
used where the left operand is the data."""
import subprocess
import sys

import numpy as np
import pytest
import theano
import theano.tensor as T
import lasagne
from hypothesis import given, settings, strategies as st

import feedforward_lasagne_mnist as flm
from conftest import ROOT
from lasagne_mnist_port.speedups import sparse_dot

FLOAT32_EPS = np.finfo(np.float32).eps


def modes():
    """With and without the rewrite; both without Theano's Dot22Scalar (speed-up 2),
    as in the speed-ups' mode, so that the products are Dot22 nodes."""
    mode = theano.compile.get_default_mode().excluding("local_dot22_to_dot22scalar")
    return mode.including("zero_skipping_dot22"), mode


@pytest.fixture(scope="module")
def products():
    """x.W and x.T.d, compiled with and without the rewrite; W is shared."""
    x, d = T.matrices("x", "d")
    W = theano.shared(np.zeros((1, 1), dtype="float32"), name="W")
    fast, plain = (theano.function([x, d], [T.dot(x, W), T.dot(x.T, d)], mode=m)
                   for m in modes())
    return W, fast, plain


def op_names(f):
    return [type(n.op).__name__ for n in f.maker.fgraph.toposort()]


def assert_within_rounding(got, L, B):
    """|got - L.B| <= (terms + 1) * eps * (|L|.|B|), the float32 summation
    bound, with L.B and |L|.|B| computed in float64."""
    L, B = L.astype(np.float64), B.astype(np.float64)
    terms = max(1, int((L != 0).sum(axis=1).max()))
    bound = (terms + 1) * FLOAT32_EPS * (np.abs(L) @ np.abs(B)) + 1e-30
    err = np.abs(got - L @ B)
    assert (err <= bound).all(), "worst error %g, bound there %g" % (
        err.max(), bound.flat[np.argmax(err - bound)])


def test_mnist_batch_both_products(products, mnist):
    W, fast, plain = products
    assert op_names(fast).count("ZeroSkippingDot22") == 2
    assert "ZeroSkippingDot22" not in op_names(plain)
    X = mnist[0][:500].reshape(500, 784)
    assert (X == 0).mean() > 0.75  # what the op is for
    rng = np.random.RandomState(0)
    W.set_value(rng.randn(784, 500).astype("float32") * 0.05)
    D = rng.randn(500, 500).astype("float32")
    out, grad = fast(X, D)
    ref_out, ref_grad = plain(X, D)
    assert_within_rounding(out, X, W.get_value())
    assert_within_rounding(grad, X.T, D)
    # and close to what the BLAS gives: float32 rounding of sums of ~150 terms
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=2e-5 * np.abs(ref_out).max())
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=2e-5 * np.abs(ref_grad).max())


def test_dense_data_runs_the_gemm(products):
    """Nothing to skip: the op runs Dot22's own BLAS call, bit for bit."""
    W, fast, plain = products
    rng = np.random.RandomState(1)
    X = rng.rand(200, 300).astype("float32") + 0.1
    W.set_value(rng.randn(300, 70).astype("float32"))
    D = rng.randn(200, 90).astype("float32")
    for a, b in zip(fast(X, D), plain(X, D)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_inf_and_nan_propagate_as_in_the_gemm(products, mnist, bad):
    """An inf or NaN weight in a row whose pixel is 0 in every image: the GEMM
    gives NaN there (0 * inf); so must the op, and in the same places."""
    W, fast, plain = products
    X = mnist[0][:60].reshape(60, 784)
    dead = int(np.flatnonzero((X == 0).all(axis=0))[0])
    rng = np.random.RandomState(5)
    Wv = rng.randn(784, 70).astype("float32")
    Wv[dead, 3] = bad
    W.set_value(Wv)
    D = rng.randn(60, 70).astype("float32")
    D[7, 11] = bad
    for a, b in zip(fast(X, D), plain(X, D)):
        assert np.isnan(b).any()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)  # equal_nan


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 40), k=st.integers(1, 40), n=st.integers(1, 150),
       density=st.sampled_from([0.0, 0.05, 0.2, 0.45]), seed=st.integers(0, 2 ** 31 - 1))
def test_any_shape_within_rounding(products, m, k, n, density, seed):
    """Edges of the 6-row blocks, 16- or 32-column tiles and 64-column panels, and
    all-zero data (the result is then exactly zero)."""
    W, fast, plain = products
    rng = np.random.RandomState(seed)
    X = rng.randn(m, k).astype("float32") * (rng.rand(m, k) < density)
    W.set_value(rng.randn(k, n).astype("float32"))
    D = rng.randn(m, n).astype("float32")
    out, grad = fast(X, D)
    assert out.shape == (m, n) and grad.shape == (k, n)
    assert_within_rounding(out, X, W.get_value())
    assert_within_rounding(grad, X.T, D)


def test_strided_inputs(products):
    """A sliced left operand and a B without unit column stride (the GEMM then)."""
    W, fast, plain = products
    rng = np.random.RandomState(2)
    big = rng.randn(30, 50).astype("float32") * (rng.rand(30, 50) < 0.2)
    X = big[::2, 1::3]
    Wt = rng.randn(40, X.shape[1]).astype("float32")
    W.set_value(Wt.T, borrow=True)  # non-contiguous shared value
    D = rng.randn(X.shape[0], 40).astype("float32")
    out, grad = fast(X, D)
    assert_within_rounding(out, X, Wt.T)
    assert_within_rounding(grad, X.T, D)


def test_only_the_data_operand_is_rewritten():
    """In the network's train_fn: X.W1 and X.T.delta1, nothing else (the hidden
    layers' products stay Dot22); in val_fn, X.W1."""
    fast_mode, plain_mode = modes()
    x = T.tensor4("inputs")
    y = T.ivector("targets")
    network = flm.build_mlp(x)
    loss = lasagne.objectives.categorical_crossentropy(
        lasagne.layers.get_output(network), y).mean()
    params = lasagne.layers.get_all_params(network, trainable=True)
    updates = lasagne.updates.rmsprop(loss, params, learning_rate=0.001)
    ops = op_names(theano.function([x, y], loss, updates=updates, mode=fast_mode))
    assert ops.count("ZeroSkippingDot22") == 2 and ops.count("Dot22") == 6
    val = op_names(theano.function([x], lasagne.layers.get_output(network, deterministic=True),
                                   mode=fast_mode))
    assert val.count("ZeroSkippingDot22") == 1 and val.count("Dot22") == 2
    # A shared variable is not data, even when it is the left operand.
    W = theano.shared(np.ones((3, 3), dtype="float32"))
    assert op_names(theano.function([], T.dot(W, W), mode=fast_mode)) == ["Dot22"]
    assert sparse_dot.is_data(x.flatten(2).T) and not sparse_dot.is_data(T.exp(x))


def test_training_steps_match_the_gemm(mnist):
    """Ten rmsprop steps of the real net on real batches, from the same initial
    weights and dropout masks, with and without the rewrite."""
    fast_mode, plain_mode = modes()
    x = T.tensor4("inputs")
    y = T.ivector("targets")
    lasagne.random.set_rng(np.random.RandomState(3))
    network = flm.build_mlp(x)
    params = lasagne.layers.get_all_params(network, trainable=True)
    loss = lasagne.objectives.categorical_crossentropy(
        lasagne.layers.get_output(network), y).mean()
    updates = lasagne.updates.rmsprop(loss, params, learning_rate=0.001)
    shared = list(updates.keys()) + [v for v in theano.gof.graph.inputs([loss])
                                     if isinstance(v, theano.compile.SharedVariable)
                                     and v not in updates]
    start = [v.get_value() for v in shared]
    X, Y = mnist[0][:2000], mnist[1][:2000]
    results = []
    for mode in (fast_mode, plain_mode):
        for v, s in zip(shared, start):
            v.set_value(s.copy())
        step = theano.function([x, y], loss, updates=updates, mode=mode)
        assert op_names(step).count("ZeroSkippingDot22") == (2 if mode is fast_mode else 0)
        losses = [float(step(X[i:i + 200], Y[i:i + 200])) for i in range(0, 2000, 200)]
        results.append((losses, [p.get_value() for p in params]))
    (fast_losses, fast_params), (plain_losses, plain_params) = results
    assert fast_losses[-1] < fast_losses[0]
    # Ten steps amplify float32 rounding: losses within 1e-5, weights within
    # 1e-4 (rmsprop's steps are ~1e-3 each).
    np.testing.assert_allclose(fast_losses, plain_losses, rtol=0, atol=1e-5)
    for a, b in zip(fast_params, plain_params):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


# In a child process: a read past B's memory is a crash there, not here.
GUARDED = r"""
import ctypes, mmap, sys
import numpy as np
import theano, theano.tensor as T
from lasagne_mnist_port.speedups import sparse_dot

def guarded(rows, n, rng):
    # float32 (rows, n) whose last byte is followed by a page that cannot be read
    nbytes, page = rows * n * 4, mmap.PAGESIZE
    pages = (nbytes + page - 1) // page
    mm = mmap.mmap(-1, (pages + 1) * page)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(mm))
    assert ctypes.CDLL(None).mprotect(ctypes.c_void_p(addr + pages * page), page, 0) == 0
    a = np.frombuffer(mm, np.float32, rows * n, pages * page - nbytes).reshape(rows, n)
    a[...] = rng.rand(rows, n)
    return a, mm

mode = theano.compile.get_default_mode().excluding("local_dot22_to_dot22scalar").including(
    "zero_skipping_dot22")
x, y = T.fmatrices("x", "y")
f = theano.function([x, y], T.dot(x, y), mode=mode)
assert any(isinstance(n.op, sparse_dot.ZeroSkippingDot22) for n in f.maker.fgraph.toposort())
rng = np.random.RandomState(0)
k = 40
L = (rng.rand(12, k) * (rng.rand(12, k) < 0.2)).astype(np.float32)
for n in (1, 5, 15, 17, 31, 40):
    P, _ = guarded(k, n, rng)
    one, _ = guarded(1, n, rng)
    for B in (P, P[::-1], np.lib.stride_tricks.as_strided(one, (k, n), (0, 4))):
        err = np.abs(f(L, B) - L.astype(np.float64) @ B.astype(np.float64)).max()
        assert err < 1e-5, (n, B.strides, err)
print("ok")
"""


def test_reads_nothing_past_B():
    """B right before an unreadable page, with few columns (a partial tile
    only), rows in reverse (row 0 last in memory) and one row repeated
    (stride 0): the product reads only B's own bytes."""
    p = subprocess.run([sys.executable, "-c", GUARDED], cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip() == "ok", (p.returncode, p.stderr[-2000:])
