"""fused_updates: the ops compute Lasagne's rmsprop and adam expressions
exactly as numpy does in float32, in C and in their Python fallback; the
rewrite puts them into rmsprop and adam graphs only, writing in place;
training steps of the MNIST net agree with Theano's own loops to float32
rounding, and adam's with a float64 reference."""
import numpy as np
import pytest
import theano
import theano.tensor as T
import lasagne

import feedforward_lasagne_mnist as flm
from lasagne_mnist_port import speedups
from lasagne_mnist_port.speedups import parallel_compile
from lasagne_mnist_port.speedups.fused_updates import (FusedAdam, FusedRMSProp, FusedUpdate,
                                                      adam_numpy, match_adam, match_rmsprop,
                                                      rmsprop_numpy)


def built_side_by_side(mode):
    """mode, its C modules built by speed-up 7's linker: the same modules as
    Theano builds, made faster (with the precompiled header, and side by side)."""
    return theano.compile.Mode(linker=parallel_compile.linker(mode.linker),
                               optimizer=mode.provided_optimizer)


def with_rewrite():
    return built_side_by_side(theano.compile.get_default_mode().including(
        "fused_updates", "fused_updates_inplace"))


def without_rewrite():
    # stock: the rewrite is not selected
    return built_side_by_side(theano.compile.get_default_mode())


# The optimised graph only, without compiling C code: the Python linker.
PY = theano.Mode(linker="py", optimizer="fast_run").including("fused_updates",
                                                               "fused_updates_inplace")


def fused(f, op=FusedUpdate):
    return [n.op for n in f.maker.fgraph.toposort() if isinstance(n.op, op)]


def f32(x):
    return np.float32(x)


def net_steps(rule, small, steps):
    """`steps` steps of `rule` on 784-500-300-10 with batches of 100 real MNIST
    images, from the same weights and dropout masks, with and without the
    rewrite: {"on"/"off": (losses, weights, the rule's arrays)}, and the
    functions."""
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
    updates = rule(loss, params, learning_rate=0.001)
    arrays = [v for v in updates if v not in params and v.ndim]  # acc; m, v (not adam's t)
    functions = {name: theano.function([input_var, target_var], loss, updates=updates, mode=mode)
                 for name, mode in (("on", with_rewrite()), ("off", without_rewrite()))}
    # params, the rule's arrays and scalars, the dropout generators' states
    state = [v for v in theano.gof.graph.inputs([loss] + list(updates.values()))
             if isinstance(v, theano.compile.SharedVariable)]
    start = [v.get_value() for v in state]
    X, y = small[0][:100 * steps], small[1][:100 * steps].astype(np.int32)
    results = {}
    for name, f in functions.items():
        for v, value in zip(state, start):
            v.set_value(value)
        buffers = [p.get_value(borrow=True, return_internal_type=True) for p in params + arrays]
        losses = [float(f(X[i:i + 100], y[i:i + 100])) for i in range(0, 100 * steps, 100)]
        # In place: the new values are in the arrays the shared variables had.
        assert name == "off" or all(p.get_value(borrow=True, return_internal_type=True) is b
                                    for p, b in zip(params + arrays, buffers))
        results[name] = (losses, [p.get_value() for p in params], [a.get_value() for a in arrays])
    return results, functions


def test_rmsprop_steps_of_the_net_agree_with_theanos_loops(small):
    results, f = net_steps(lasagne.updates.rmsprop, small, 5)
    assert [type(op) for op in fused(f["on"])] == [FusedRMSProp] * 6
    assert all(op.inplace for op in fused(f["on"])) and not fused(f["off"])
    (losses, weights, acc), (stock_losses, stock_weights, stock_acc) = results["on"], results["off"]
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


def test_adam_steps_of_the_net_agree_with_theanos_loops(small):
    results, f = net_steps(lasagne.updates.adam, small, 5)
    assert [type(op) for op in fused(f["on"])] == [FusedAdam] * 6
    assert all(op.inplace for op in fused(f["on"])) and not fused(f["off"])
    (losses, weights, moments), (stock_losses, stock_weights, stock_moments) = (
        results["on"], results["off"])
    assert losses[-1] < losses[0]
    np.testing.assert_allclose(losses, stock_losses, rtol=1e-6)
    # Theano's loops fuse multiply-adds where the op rounds each operation;
    # where m_new = 0.9 m + 0.1 g nearly cancels, the two differ relatively
    # more, and the step a_t m_new / (sqrt(v_new) + eps), about 1e-3, carries
    # that over: measured 1.0e-7 at most on weights of |W| < 0.15 (6 % of
    # W1's weights differ), and on m and v at most 0.3x of 1e-6 times the
    # largest |m| or |v| of the parameter.
    for w, s in zip(weights, stock_weights):
        np.testing.assert_allclose(w, s, rtol=0, atol=3e-7)
    for a, s in zip(moments, stock_moments):
        np.testing.assert_allclose(a, s, rtol=0, atol=1e-6 * np.abs(s).max())


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


def lasagnes_a_t(lr, beta1, beta2, dtype=np.float32):
    """a_t of step t as Lasagne writes it, computed in dtype."""
    one, lr, beta1, beta2 = (dtype(x) for x in (1, lr, beta1, beta2))
    return lambda t: lr * np.sqrt(one - beta2 ** dtype(t)) / (one - beta1 ** dtype(t))


def adam_steps_numpy(W, grads, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, a_t, eps,
                     dtype=np.float32):
    """adam_numpy for each gradient in turn, in dtype; a_t(t) for step t.
    Updates W, m, v."""
    for t, G in enumerate(grads, 1):
        adam_numpy(W, G.astype(dtype), m, v, *(dtype(x) for x in (
            beta1, one_minus_beta1, beta2, one_minus_beta2, a_t(t), eps)))


def lasagne_adam(name, lr, beta1, beta2, eps, shared=False):
    """Lasagne's adam with these hyper-parameters (Python floats, or float32
    shared variables): (updates, [m, v], the float32 scalars of its graph,
    with a_t(t)). Lasagne computes 1 - beta in double for Python floats,
    Theano in float32 for shared ones."""
    def updates(W, g):
        hyper = [theano.shared(f32(x)) if shared else x for x in (lr, beta1, beta2, eps)]
        rule = lasagne.updates.adam([g], [W], *hyper)
        one_minus = [f32(1) - f32(b) if shared else f32(1 - b) for b in (beta1, beta2)]
        scalars = (beta1, one_minus[0], beta2, one_minus[1], lasagnes_a_t(lr, beta1, beta2), eps)
        return rule, [u for u in rule if u is not W and u.ndim], scalars
    updates.__name__ = name
    return updates


def adam_by_hand(W, g):
    """adam's expressions written another way: sqr, the operands swapped, a
    step size a_t of one's own (a shared scalar)."""
    m, v = (theano.shared(np.zeros(W.get_value().shape, np.float32)) for _ in range(2))
    a_t = theano.shared(f32(0.003))
    m_new = m * 0.9 + g * 0.1
    v_new = T.sqr(g) * 0.001 + v * 0.999
    updates = [(m, m_new), (v, v_new), (W, W - m_new * a_t / (1e-8 + T.sqrt(v_new)))]
    return updates, [m, v], (0.9, f32(0.1), 0.999, f32(0.001), lambda t: f32(0.003), 1e-8)


ADAM_RULES = [lasagne_adam("defaults", 0.001, 0.9, 0.999, 1e-8),
              lasagne_adam("other_hyperparameters", 0.01, 0.8, 0.99, 1e-6),
              lasagne_adam("shared_hyperparameters", 0.002, 0.85, 0.995, 1e-7, shared=True),
              adam_by_hand]


def adam_grads(shape, steps, seed=0):
    rng = np.random.RandomState(seed)
    return [(rng.randn(*shape) * 1e-2).astype(np.float32) for _ in range(steps)]


@pytest.mark.parametrize("rule", ADAM_RULES, ids=lambda r: r.__name__)
def test_adam_is_rewritten_and_computes_lasagnes_expression(rule):
    """4 steps: the rewrite finds the rule and hands the op its inputs in
    their places, so that the results are numpy's, float32, in Lasagne's
    order, bit for bit, a_t included (Theano's C code computes it from t, as
    Lasagne writes it)."""
    W0 = np.random.RandomState(1).uniform(-0.1, 0.1, (37, 29)).astype(np.float32)
    grads = adam_grads(W0.shape, 4)
    W = theano.shared(W0.copy())
    g = T.matrix("g")
    updates, moments, scalars = rule(W, g)
    f = theano.function([g], [], updates=updates, mode=with_rewrite())
    assert [(type(op), op.inplace) for op in fused(f)] == [(FusedAdam, True)]
    for G in grads:
        f(G)
    W_ref, m_ref, v_ref = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    adam_steps_numpy(W_ref, grads, m_ref, v_ref, *scalars)
    np.testing.assert_array_equal(W.get_value(), W_ref)
    np.testing.assert_array_equal(moments[0].get_value(), m_ref)
    np.testing.assert_array_equal(moments[1].get_value(), v_ref)


def test_adam_agrees_with_a_float64_reference():
    """10 steps of Lasagne's adam through the op, in float32, against the
    same formula in float64 (from the same float32 start and gradients)."""
    steps = 10
    W0 = np.random.RandomState(2).uniform(-0.1, 0.1, (37, 29)).astype(np.float32)
    grads = adam_grads(W0.shape, steps, seed=3)
    W = theano.shared(W0.copy())
    g = T.matrix("g")
    updates = lasagne.updates.adam([g], [W])
    f = theano.function([g], [], updates=updates, mode=with_rewrite())
    assert [type(op) for op in fused(f)] == [FusedAdam]
    for G in grads:
        f(G)
    # The same formula in float64, from the graph's own float32 constants
    # (0.999 as float32 is 0.99900001; 1 - beta2 ** t would otherwise differ
    # by 1e-5 relative before any rounding of the op's).
    hyper = [float(f32(x)) for x in (0.9, 1 - 0.9, 0.999, 1 - 0.999)]
    a_t = lasagnes_a_t(float(f32(0.001)), hyper[0], hyper[2], np.float64)
    W64, m64, v64 = W0.astype(np.float64), np.zeros(W0.shape), np.zeros(W0.shape)
    adam_steps_numpy(W64, grads, m64, v64, *hyper, a_t, float(f32(1e-8)), dtype=np.float64)
    m, v = [u.get_value() for u in updates if u is not W and u.ndim]
    # Each step rounds p - step once (half an ulp of |W| < 0.125: 7.5e-9) and
    # the step (|step| < 3.2e-3) a few times (a few 6e-8 relative): 8.5e-8
    # after 10 steps; measured 2.1e-8. m and v: a few roundings of 6e-8 per
    # step, relative to v, and to the largest |m| (m_new = 0.9 m + 0.1 g can
    # cancel): measured 3.0e-7 and 1.1e-7.
    np.testing.assert_allclose(W.get_value(), W64, rtol=0,
                               atol=steps * (0.5 * np.spacing(f32(0.125)) + 1e-9))
    np.testing.assert_allclose(v, v64, rtol=2e-6, atol=0)
    np.testing.assert_allclose(m, m64, rtol=0, atol=2e-6 * np.abs(m64).max())


def test_lasagnes_expressions_are_matched_as_built_too():
    """Unoptimised, the denominator is add(acc_new, eps) and the constants
    DimShuffles of 0-d ones; the rewrite sees them canonicalised, but the
    matcher takes both."""
    W = theano.shared(np.ones((5, 4), np.float32))
    g = T.matrix("g")
    updates = lasagne.updates.rmsprop([g], [W], learning_rate=0.01)
    acc, = [v for v in updates if v is not W]
    (param_new, acc_new), inputs = match_rmsprop(updates[W].owner)
    assert param_new is updates[W] and acc_new is updates[acc]
    assert all(a is b for a, b in zip(inputs, [W, g, acc]))


def test_lasagnes_adam_is_matched_as_built_too():
    """Unoptimised: a_t, beta1, eps ... are DimShuffles of 0-d expressions."""
    W = theano.shared(np.ones((5, 4), np.float32))
    g = T.matrix("g")
    updates = lasagne.updates.adam([g], [W])
    m, v = [u for u in updates if u is not W and u.ndim]
    (param_new, m_new, v_new), inputs = match_adam(updates[W].owner)
    assert param_new is updates[W] and m_new is updates[m] and v_new is updates[v]
    assert all(a is b for a, b in zip(inputs, [W, g, m, v]))


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


def adam_variant(name, m_new_of, v_new_of, step_of):
    """adam with one thing changed: m_new_of(m, grad), v_new_of(v, grad) and
    step_of(param, grad, m, v, m_new, v_new, a_t) give the three update
    expressions."""
    def updates(param, grad):
        m, v = (theano.shared(np.zeros((5, 4), np.float32)) for _ in range(2))
        m_new, v_new = m_new_of(m, grad), v_new_of(v, grad)
        a_t = theano.shared(f32(0.001))
        return [(m, m_new), (v, v_new), (param, step_of(param, grad, m, v, m_new, v_new, a_t))]
    updates.__name__ = name
    return updates


def usual_m(m, grad):
    return 0.9 * m + 0.1 * grad


def usual_v(v, grad):
    return 0.999 * v + 0.001 * grad ** 2


def usual_adam_step(param, grad, m, v, m_new, v_new, a_t):
    return param - a_t * m_new / (T.sqrt(v_new) + 1e-8)


NOT_ADAM = [
    adam_variant("eps_inside_sqrt", usual_m, usual_v,
                 lambda p, g, m, v, mn, vn, a: p - a * mn / T.sqrt(vn + 1e-8)),
    adam_variant("gradient_in_step", usual_m, usual_v,
                 lambda p, g, m, v, mn, vn, a: p - a * g / (T.sqrt(vn) + 1e-8)),
    adam_variant("old_m_in_step", usual_m, usual_v,
                 lambda p, g, m, v, mn, vn, a: p - a * m / (T.sqrt(vn) + 1e-8)),
    adam_variant("old_v_in_step", usual_m, usual_v,
                 lambda p, g, m, v, mn, vn, a: p - a * mn / (T.sqrt(v) + 1e-8)),
    adam_variant("step_added", usual_m, usual_v,
                 lambda p, g, m, v, mn, vn, a: p + a * mn / (T.sqrt(vn) + 1e-8)),
    adam_variant("v_of_another_gradient", usual_m,
                 lambda v, g: 0.999 * v + 0.001 * (g + 1) ** 2, usual_adam_step),
    adam_variant("v_of_abs", usual_m, lambda v, g: 0.999 * v + 0.001 * abs(g), usual_adam_step),
    adam_variant("beta1_per_element", lambda m, g: theano.shared(
        np.full((5, 4), 0.9, np.float32)) * m + 0.1 * g, usual_v, usual_adam_step),
    # a_t as one 0-d expression, but written sqrt(...) * lr / (...): Theano's
    # canonicaliser merges it into the step's products and quotient, another
    # order of float operations than adam's
    adam_variant("a_t_merged_into_the_step", usual_m, usual_v,
                 lambda p, g, m, v, mn, vn, a: p - mn * (T.sqrt(1 - 0.999 ** a) * 0.001
                                                         / (1 - 0.9 ** a)) / (1e-8 + T.sqrt(vn))),
    # adam's shape, but the step size depends on the op's own output
    adam_variant("a_t_from_m_new", usual_m, usual_v,
                 lambda p, g, m, v, mn, vn, a: p - mn.mean() * mn / (T.sqrt(vn) + 1e-8)),
]


def lasagne_rule(rule):
    def updates(param, grad):
        return rule([grad], [param], learning_rate=0.01)
    updates.__name__ = rule.__name__
    return updates


@pytest.mark.parametrize("updates", [
    lasagne_rule(lasagne.updates.sgd), lasagne_rule(lasagne.updates.momentum),
    lasagne_rule(lasagne.updates.adagrad), lasagne_rule(lasagne.updates.adadelta)]
    + NOT_RMSPROP + NOT_ADAM,
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


def op_inputs(op, dtype, layout, rng, shape=(67, 45)):
    """param, grad and the rule's arrays of one shape, contiguous or not, and
    its scalars. (67, 45): 3015 elements, the vector loop and its remainder."""
    W = rng.uniform(-0.1, 0.1, shape).astype(dtype)
    G = (rng.randn(*shape) * 1e-2).astype(dtype)
    arrays = [(rng.rand(*shape) * 1e-4).astype(dtype) for _ in op.ARRAYS]
    if op is FusedAdam:
        arrays[0] = (rng.randn(*shape) * 1e-3).astype(dtype)  # m has either sign
    if layout == "strided":
        W, arrays = np.asfortranarray(W), [np.asfortranarray(a) for a in arrays]
        G = np.repeat(G, 2, axis=1)[:, ::2]
        assert not any(a.flags.c_contiguous for a in [W, G] + arrays)
    values = {FusedRMSProp: (0.9, 0.1, 0.01, 1e-6),
              FusedAdam: (0.9, 0.1, 0.999, 0.001, 0.003, 1e-8)}[op]
    return W, G, arrays, [np.asarray(s, dtype) for s in values]


CASES = ([(FusedRMSProp, dtype, layout, (67, 45)) for dtype in ("float32", "float64")
          for layout in ("contiguous", "strided")]
         + [(FusedAdam, "float32", layout, (67, 45)) for layout in ("contiguous", "strided")]
         # (float64: the loop is generated as rmsprop's, which is compared above)
         + [(FusedAdam, "float32", "contiguous", (7,)),  # a bias's odd length
            (FusedAdam, "float32", "contiguous", (0, 3))])  # no element at all


@pytest.mark.parametrize("op, dtype, layout, shape", CASES,
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_c_code_and_python_fallback_agree_with_numpy(op, dtype, layout, shape):
    rng = np.random.RandomState(1)
    W0, G, arrays0, scalars = op_inputs(op, dtype, layout, rng, shape)
    refs = [W0.copy()] + [a.copy() for a in arrays0]
    op.NUMPY(refs[0], G, *(refs[1:] + scalars))
    g = T.TensorType(dtype, (False,) * len(shape))("g")
    for linker in ("cvm", "py"):
        # in place: shared variables updated with the op's outputs
        shared = [theano.shared(a.copy(order="A"), borrow=True) for a in [W0] + arrays0]
        buffers = [v.get_value(borrow=True, return_internal_type=True) for v in shared]
        new = op()(shared[0], g, *(shared[1:] + scalars))
        f = theano.function([g], [], updates=list(zip(shared, new)),
                            mode=theano.Mode(linker=linker).including("fused_updates_inplace"))
        assert [o.inplace for o in fused(f)] == [True]
        f(G)
        for v, buffer, ref in zip(shared, buffers, refs):
            assert v.get_value(borrow=True, return_internal_type=True) is buffer
            np.testing.assert_array_equal(buffer, ref)
        # not in place: param and the arrays are inputs that must not change
        f = theano.function([g], op()(shared[0], g, *(shared[1:] + scalars)),
                            mode=theano.Mode(linker=linker))
        assert [o.inplace for o in fused(f)] == [False]
        for v, a in zip(shared, [W0] + arrays0):
            v.set_value(a)
        for got, ref in zip(f(G), refs):
            np.testing.assert_array_equal(got, ref)
        for v, a in zip(shared, [W0] + arrays0):
            np.testing.assert_array_equal(v.get_value(), a)


@pytest.mark.parametrize("op", [FusedRMSProp, FusedAdam], ids=lambda op: op.__name__)
def test_shapes_that_differ_are_refused(op):
    shared = [theano.shared(np.zeros((4, 3), np.float32)) for _ in range(1 + len(op.ARRAYS))]
    g = T.matrix("g")
    scalars = [0.5] * len(op.SCALARS)
    for linker in ("cvm", "py"):
        f = theano.function([g], op()(shared[0], g, *(shared[1:] + scalars)),
                            mode=theano.Mode(linker=linker))
        with pytest.raises(ValueError, match="shape"):
            f(np.zeros((4, 2), np.float32))
