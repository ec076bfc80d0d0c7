"""dropout_rng: the C op matches its numpy reference, masks are Bernoulli(p),
differ from call to call, and repeat under a seed."""
import numpy as np
import pytest

import theano
import theano.tensor as T

from lasagne_mnist_port.speedups import dropout_rng
from lasagne_mnist_port.speedups.dropout_rng import BernoulliMask, RandomStreams, bernoulli_mask_numpy


def compiled_mask(seed=1, p=0.6, shape=(500, 300), dtype="float32"):
    srng = RandomStreams(seed)
    m = srng.binomial(shape, p=p, dtype=dtype)
    return theano.function([], m), srng


def test_c_code_matches_numpy_reference():
    key, counter = 0x0123456789ABCDEF, 2 ** 64 - 3  # counter wraps around inside the call
    for shape in [(7, 5), (1, 1), (4, 0), (500, 300), (3,)]:
        rstate = theano.shared(np.array([key, counter], dtype=np.uint64))
        op = BernoulliMask(len(shape), "float32")
        new, mask = op(rstate, shape, 0.6)
        f = theano.function([], [new, mask])
        got_state, got = f()
        ref, ref_counter = bernoulli_mask_numpy(key, counter, shape, 0.6)
        np.testing.assert_array_equal(got, ref)
        assert got.dtype == np.float32 and got.shape == shape
        assert list(got_state) == [key, ref_counter]


def test_python_fallback_matches_c():
    f_c, _ = compiled_mask(seed=3, shape=(33, 17))
    srng = RandomStreams(3)
    m = srng.binomial((33, 17), p=0.6, dtype="float32")
    f_py = theano.function([], m, mode=theano.Mode(linker="py"))
    for _ in range(3):
        np.testing.assert_array_equal(f_c(), f_py())


@pytest.mark.parametrize("p", [0.6, 0.1, 0.5, 0.93])
def test_mean_is_retain_probability(p):
    f, _ = compiled_mask(p=p, shape=(1000, 1000))
    m = f()
    assert set(np.unique(m)) <= {0.0, 1.0}
    # 1e6 draws: the standard error of the mean is < 5e-4; allow 5 of them.
    assert abs(m.mean() - p) < 5 * np.sqrt(p * (1 - p) / m.size)


def test_edges_p0_p1():
    assert compiled_mask(p=0.0)[0]().sum() == 0
    assert compiled_mask(p=1.0)[0]().min() == 1


def test_different_masks_per_call_and_no_correlation():
    f, _ = compiled_mask(shape=(500, 300))
    a, b = f(), f()
    assert not np.array_equal(a, b)
    # consecutive masks are independent: agreement ~ p^2 + (1-p)^2 = 0.52
    agree = (a == b).mean()
    assert abs(agree - 0.52) < 0.01
    # neighbouring elements (the two halves of one 64-bit draw) uncorrelated
    flat = np.concatenate([f().ravel() for _ in range(10)]) - 0.6
    corr = (flat[0::2] * flat[1::2]).mean() / 0.24
    assert abs(corr) < 0.01
    # rows and columns are not stuck
    m = np.mean([f() for _ in range(20)], axis=0)
    assert abs(m.mean(axis=0) - 0.6).max() < 0.1 and abs(m.mean(axis=1) - 0.6).max() < 0.1


def test_deterministic_under_seed_and_streams_differ():
    f1, _ = compiled_mask(seed=42)
    f2, _ = compiled_mask(seed=42)
    f3, _ = compiled_mask(seed=43)
    a1, a2, a3 = f1(), f2(), f3()
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(f1(), f2())
    assert not np.array_equal(a1, a3)
    srng = RandomStreams(7)
    m1 = srng.binomial((100, 100), p=0.5, dtype="float32")
    m2 = srng.binomial((100, 100), p=0.5, dtype="float32")
    x, y = theano.function([], [m1, m2])()
    assert not np.array_equal(x, y)


def test_symbolic_shape_and_lasagne_dropout():
    """A Lasagne DropoutLayer given this generator by speedups.use_fast_dropout,
    seeded from the seed Lasagne drew for its own generator."""
    import lasagne
    from lasagne.layers import DropoutLayer, InputLayer
    from lasagne_mnist_port.speedups import use_fast_dropout
    lasagne.random.set_rng(np.random.RandomState(0))
    x = T.matrix("x")
    layer = DropoutLayer(InputLayer((None, 400), input_var=x), p=0.4)
    stock = layer._srng
    use_fast_dropout(layer)
    assert isinstance(layer._srng, RandomStreams)
    f = theano.function([x], lasagne.layers.get_output(layer))
    out = f(np.ones((250, 400), dtype=theano.config.floatX))
    # kept units are scaled by 1 / 0.6, the others are 0
    kept = out[out != 0]
    np.testing.assert_allclose(kept, 1 / 0.6, rtol=1e-6)
    assert abs((out > 0).mean() - 0.6) < 0.01
    det = theano.function([x], lasagne.layers.get_output(layer, deterministic=True))
    np.testing.assert_array_equal(det(np.ones((2, 400), dtype=theano.config.floatX)), 1)
    use_fast_dropout(layer, fast=False)
    assert layer._srng is stock


def test_no_gradient_through_mask():
    srng = RandomStreams(0)
    w = theano.shared(np.ones(5, dtype=theano.config.floatX))
    cost = (w * srng.binomial((5,), p=0.5, dtype=theano.config.floatX)).sum()
    g = theano.function([], T.grad(cost, w))()
    assert set(np.unique(g)) <= {0.0, 1.0}
