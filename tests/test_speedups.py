"""speedups: the same results as plain Theano, from faster code."""
import numpy as np

import compat  # noqa: F401  (before theano)
import theano
import theano.tensor as T
import lasagne

import dropout_rng
import speedups  # noqa: F401


def test_lasagne_dropout_uses_the_fast_generator_on_the_cpu():
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
