"""fused_rmsprop: the op computes Lasagne's rmsprop expression exactly as
numpy does in float32, in C and in its Python fallback; the rewrite puts it
into rmsprop graphs only, writing in place; training steps of the MNIST net
agree with Theano's own loops to float32 rounding."""
import numpy as np
import pytest
import theano
import theano.tensor as T
import lasagne

import feedforward_lasagne_mnist as flm
from lasagne_mnist_port import speedups
from lasagne_mnist_port.speedups.fused_rmsprop import FusedRMSProp, match_rmsprop, rmsprop_numpy


def with_rewrite():
    return theano.compile.get_default_mode().including("fused_rmsprop", "fused_rmsprop_inplace")


def without_rewrite():
    return theano.compile.get_default_mode()  # stock: the rewrite is not selected


# The optimised graph only, without compiling C code: the Python linker.
PY = theano.Mode(linker="py", optimizer="fast_run").including("fused_rmsprop",
                                                               "fused_rmsprop_inplace")


def fused(f):
    return [n.op for n in f.maker.fgraph.toposort() if isinstance(n.op, FusedRMSProp)]


def f32(x):
    return np.float32(x)


def test_training_steps_of_the_net_agree_with_theanos_loops(small):
    """5 rmsprop steps of 784-500-300-10 on 500 real MNIST images, from the
    same weights and dropout masks, with and without the rewrite."""
    old_rng = lasagne.random.get_rng()
    lasagne.random.set_rng(np.random.RandomState(2))
    try:
        input_var, target_var = T.tensor4("inputs"), T.ivector("targets")
        network = flm.build_mlp(input_var)
    finally:
        lasagne.random.set_rng(old_rng)
    loss = lasagne.objectives.categorical_crossentropy(
        lasagne.layers.get_output(network), target_var).mean()
    params = lasagne.layers.get_all_params(network, trainable=True)
    updates = lasagne.updates.rmsprop(loss, params, learning_rate=0.001)
    accs = [v for v in updates if v not in params]
    on = theano.function([input_var, target_var], loss, updates=updates, mode=with_rewrite())
    off = theano.function([input_var, target_var], loss, updates=updates, mode=without_rewrite())
    assert len(fused(on)) == 6 and all(op.inplace for op in fused(on))
    assert not fused(off)

    # params, accs and the dropout generators' states
    state = [v for v in theano.gof.graph.inputs([loss] + list(updates.values()))
             if isinstance(v, theano.compile.SharedVariable)]
    start = [v.get_value() for v in state]
    X, y = small[0][:500], small[1][:500].astype(np.int32)

    def train(f):
        for v, value in zip(state, start):
            v.set_value(value)
        buffers = [p.get_value(borrow=True, return_internal_type=True) for p in params + accs]
        losses = [float(f(X[i:i + 100], y[i:i + 100])) for i in range(0, 500, 100)]
        return losses, buffers, [p.get_value() for p in params], [a.get_value() for a in accs]

    losses, buffers, weights, acc = train(on)
    # In place: the new values are in the arrays the shared variables had.
    assert all(p.get_value(borrow=True, return_internal_type=True) is b
               for p, b in zip(params + accs, buffers))
    stock_losses, _, stock_weights, stock_acc = train(off)
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(losses, stock_losses, rtol=1e-6)
    # Theano's loops compute sqrt((eps + rho * acc) + (1 - rho) * g**2), in
    # double where the constants are C literals; the op (eps added last, one
    # float32 rounding per operation) differs by a rounding here and there,
    # which the next steps carry on: measured 1.5e-8 at most on weights of
    # |W| < 0.14 (an ulp is 3.7e-9 to 1.5e-8 there; 15 % of W1's weights
    # differ), 4e-9 on biases, 2e-11 to 3.5e-10 on acc; 3.7e-8 on weights
    # after 20 steps of 500 images.
    for w, s in zip(weights, stock_weights):
        np.testing.assert_allclose(w, s, rtol=0, atol=1e-7)
    for a, s in zip(acc, stock_acc):
        np.testing.assert_allclose(a, s, rtol=1e-5, atol=1e-9)


# Each gives rmsprop's updates of param with lr 0.01, its acc variable (set to
# acc), and the float32 value of 1 - rho in its graph: Lasagne computes it in
# double for a Python rho (0.09999999999999998, stored as float32 0.1),
# Theano in float32 for a shared one (0.100000024).
def lasagne_update(param, grad, acc):
    updates = lasagne.updates.rmsprop([grad], [param], learning_rate=0.01)
    acc_var, = [v for v in updates if v is not param]
    acc_var.set_value(acc)
    return updates, acc_var, f32(1 - 0.9)


def by_hand(param, grad, acc):
    """Lasagne's expression written another way: sqr, the operands swapped."""
    acc_var = theano.shared(acc)
    acc_new = acc_var * 0.9 + T.sqr(grad) * 0.1
    return ([(acc_var, acc_new), (param, param - grad * 0.01 / T.sqrt(acc_new + 1e-6))],
            acc_var, f32(0.1))


def shared_scalars(param, grad, acc):
    lr, rho, eps = (theano.shared(f32(v)) for v in (0.01, 0.9, 1e-6))
    updates = lasagne.updates.rmsprop([grad], [param], learning_rate=lr, rho=rho, epsilon=eps)
    acc_var, = [v for v in updates if v is not param]
    acc_var.set_value(acc)
    return updates, acc_var, f32(1) - f32(0.9)


@pytest.mark.parametrize("updates", [lasagne_update, by_hand, shared_scalars])
def test_rmsprop_is_rewritten_and_computes_lasagnes_expression(updates):
    rng = np.random.RandomState(0)
    W0 = rng.uniform(-0.1, 0.1, (37, 29)).astype(np.float32)
    G = (rng.randn(37, 29) * 1e-2).astype(np.float32)
    acc0 = (rng.rand(37, 29) * 1e-4).astype(np.float32)
    W = theano.shared(W0.copy())
    g = T.matrix("g")
    rule, acc, one_minus_rho = updates(W, g, acc0.copy())
    f = theano.function([g], [], updates=rule, mode=with_rewrite())
    assert [op.inplace for op in fused(f)] == [True]
    f(G)
    # numpy, float32, in Lasagne's order
    W_ref, acc_ref = W0.copy(), acc0.copy()
    rmsprop_numpy(W_ref, G, acc_ref, f32(0.9), one_minus_rho, f32(0.01), f32(1e-6))
    np.testing.assert_array_equal(W.get_value(), W_ref)
    np.testing.assert_array_equal(acc.get_value(), acc_ref)


def test_lasagnes_expressions_are_matched_as_built_too():
    """Unoptimised, the denominator is add(acc_new, eps) and the constants
    DimShuffles of 0-d ones; the rewrite sees them canonicalised, but the
    matcher takes both."""
    W = theano.shared(np.ones((5, 4), np.float32))
    g = T.matrix("g")
    updates = lasagne.updates.rmsprop([g], [W], learning_rate=0.01)
    acc, = [v for v in updates if v is not W]
    param_new, acc_new, inputs = match_rmsprop(updates[W].owner)
    assert param_new is updates[W] and acc_new is updates[acc]
    assert all(a is b for a, b in zip(inputs, [W, g, acc]))


def rmsprop_variant(name, acc_new_of, step_of):
    """rmsprop with one thing changed: acc_new_of(acc, grad) and
    step_of(param, grad, acc, acc_new) give the two update expressions."""
    def updates(param, grad):
        acc = theano.shared(np.zeros((5, 4), np.float32))
        acc_new = acc_new_of(acc, grad)
        return [(acc, acc_new), (param, step_of(param, grad, acc, acc_new))]
    updates.__name__ = name
    return updates


def usual_acc(acc, grad):
    return 0.9 * acc + 0.1 * grad ** 2


def usual_step(param, grad, acc, acc_new):
    return param - 0.01 * grad / T.sqrt(acc_new + 1e-6)


NOT_RMSPROP = [
    rmsprop_variant("eps_outside_sqrt", usual_acc,
                    lambda p, g, a, n: p - 0.01 * g / (T.sqrt(n) + 1e-6)),
    rmsprop_variant("old_acc_in_step", usual_acc,
                    lambda p, g, a, n: p - 0.01 * g / T.sqrt(a + 1e-6)),
    rmsprop_variant("other_gradient_in_step", usual_acc,
                    lambda p, g, a, n: p - 0.01 * (g + 1) / T.sqrt(n + 1e-6)),
    rmsprop_variant("cube", lambda a, g: 0.9 * a + 0.1 * g ** 3, usual_step),
    rmsprop_variant("rho_per_element", lambda a, g: theano.shared(
        np.full((5, 4), 0.9, np.float32)) * a + 0.1 * g ** 2, usual_step),
    # rmsprop's shape, but the learning rate depends on the op's own output
    rmsprop_variant("lr_from_acc_new", usual_acc,
                    lambda p, g, a, n: p - n.mean() * g / T.sqrt(n + 1e-6)),
]


def lasagne_rule(rule):
    def updates(param, grad):
        return rule([grad], [param], learning_rate=0.01)
    updates.__name__ = rule.__name__
    return updates


@pytest.mark.parametrize("updates", [
    lasagne_rule(lasagne.updates.sgd), lasagne_rule(lasagne.updates.momentum),
    lasagne_rule(lasagne.updates.adagrad), lasagne_rule(lasagne.updates.adadelta),
    lasagne_rule(lasagne.updates.adam)] + NOT_RMSPROP,
    ids=lambda u: u.__name__)
def test_other_updates_are_left_alone(updates):
    W = theano.shared(np.ones((5, 4), np.float32))
    g = T.matrix("g")
    f = theano.function([g], [], updates=updates(W, g), mode=PY)
    assert not fused(f)
    f(np.full((5, 4), 0.5, np.float32))  # still runs


def test_the_rewrite_runs_in_the_speedups_mode_only():
    def compiled(mode):
        W = theano.shared(np.ones((5, 4), np.float32))
        g = T.matrix("g")
        return theano.function([g], [], updates=lasagne.updates.rmsprop([g], [W], 0.01),
                               mode=mode)
    assert not fused(compiled(None))  # the default mode: stock Theano
    assert fused(compiled(speedups.mode(flm.build_mlp())))
    assert not fused(compiled(speedups.mode(flm.build_mlp(), enabled=False)))


def op_inputs(dtype, layout, rng):
    """param, grad, acc of one shape, contiguous or not, and the four scalars."""
    shape = (67, 45)  # 3015 elements: the vector loop and its remainder
    W = rng.uniform(-0.1, 0.1, shape).astype(dtype)
    G = (rng.randn(*shape) * 1e-2).astype(dtype)
    acc = (rng.rand(*shape) * 1e-4).astype(dtype)
    if layout == "strided":
        W, acc = np.asfortranarray(W), np.asfortranarray(acc)
        G = np.repeat(G, 2, axis=1)[:, ::2]
        assert not any(a.flags.c_contiguous for a in (W, G, acc))
    scalars = [np.asarray(s, dtype) for s in (0.9, 0.1, 0.01, 1e-6)]
    return W, G, acc, scalars


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_c_code_and_python_fallback_agree_with_numpy(dtype, layout):
    rng = np.random.RandomState(1)
    W0, G, acc0, scalars = op_inputs(dtype, layout, rng)
    W_ref, acc_ref = W0.copy(), acc0.copy()
    rmsprop_numpy(W_ref, G, acc_ref, *scalars)
    g = T.matrix("g", dtype=dtype)
    for linker in ("cvm", "py"):
        # in place: shared variables updated with the op's outputs
        W = theano.shared(W0.copy(order="A"), borrow=True)
        acc = theano.shared(acc0.copy(order="A"), borrow=True)
        buffers = [v.get_value(borrow=True, return_internal_type=True) for v in (W, acc)]
        new_W, new_acc = FusedRMSProp()(W, g, acc, *scalars)
        f = theano.function([g], [], updates=[(W, new_W), (acc, new_acc)],
                            mode=theano.Mode(linker=linker).including("fused_rmsprop_inplace"))
        assert [op.inplace for op in fused(f)] == [True]
        f(G)
        assert W.get_value(borrow=True, return_internal_type=True) is buffers[0]
        assert acc.get_value(borrow=True, return_internal_type=True) is buffers[1]
        np.testing.assert_array_equal(buffers[0], W_ref)
        np.testing.assert_array_equal(buffers[1], acc_ref)
        # not in place: W and acc are inputs that must not change
        f = theano.function([g], FusedRMSProp()(W, g, acc, *scalars),
                            mode=theano.Mode(linker=linker))
        assert [op.inplace for op in fused(f)] == [False]
        W.set_value(W0)
        acc.set_value(acc0)
        got_W, got_acc = f(G)
        np.testing.assert_array_equal(got_W, W_ref)
        np.testing.assert_array_equal(got_acc, acc_ref)
        np.testing.assert_array_equal(W.get_value(), W0)
        np.testing.assert_array_equal(acc.get_value(), acc0)


def test_shapes_that_differ_are_refused():
    W = theano.shared(np.zeros((4, 3), np.float32))
    acc = theano.shared(np.zeros((4, 3), np.float32))
    g = T.matrix("g")
    for linker in ("cvm", "py"):
        f = theano.function([g], FusedRMSProp()(W, g, acc, 0.9, 0.1, 0.01, 1e-6),
                            mode=theano.Mode(linker=linker))
        with pytest.raises(ValueError, match="shape"):
            f(np.zeros((4, 2), np.float32))
