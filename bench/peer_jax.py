#!/usr/bin/env python3
"""The JAX peer of feedforward_lasagne_mnist.py, for bench/bench.py.

The same experiment as peer_torch.py (peer_data.py: same files, split and
Glorot-uniform init; 784-500-300-10 ReLU, inverted dropout 0.4, softmax + mean
cross-entropy, Lasagne's rmsprop with eps inside the square root, batch 500,
float32), written the way a JAX user writes it: the whole training step --
forward, value_and_grad, the rmsprop update -- is one jax.jit, so XLA fuses
the elementwise work around the matrix products; the parameters and rmsprop's
accumulators are donated to it (updated in place). Batches are gathered with
numpy, as the faithful script and the PyTorch peer do. --hidden, --update adam
(Lasagne's adam written out, as in peer_torch.py, its step count t a float32
of the donated state) and --batch-size change the experiment as in
peer_torch.py.
"""
import time

import numpy as np
import jax
import jax.numpy as jnp

from peer_data import (experiment_parser, glorot_params, load_data, print_epoch,
                       print_final, sizes_of)

P_DROP, LR, RHO, EPS = 0.4, 1e-3, 0.9, 1e-6
BETA1, BETA2, ADAM_EPS = 0.9, 0.999, 1e-8


def logits(params, x, key=None):
    """key: dropout's random key while training; None evaluates (no dropout)."""
    layers = list(zip(params[0::2], params[1::2]))
    h = x
    for i, (W, b) in enumerate(layers[:-1]):
        h = jax.nn.relu(h @ W + b)
        if key is not None:
            keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1 - P_DROP, h.shape)
            h = jnp.where(keep, h / (1 - P_DROP), 0)
    W, b = layers[-1]
    return h @ W + b


def loss_fn(params, x, y, key=None):
    out = logits(params, x, key)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), y[:, None], axis=1))


@jax.jit
def evaluate_batch(params, x, y):
    out = logits(params, x)
    return loss_fn(params, x, y), jnp.mean(jnp.argmax(out, axis=1) == y)


def rmsprop(params, grads, accs):
    accs = [RHO * a + (1 - RHO) * g * g for a, g in zip(accs, grads)]
    return [p - LR * g / jnp.sqrt(a + EPS) for p, g, a in zip(params, grads, accs)], accs


def adam(params, grads, state):
    ms, vs, t = state
    t = t + 1
    a_t = LR * jnp.sqrt(1 - BETA2 ** t) / (1 - BETA1 ** t)
    ms = [BETA1 * m + (1 - BETA1) * g for m, g in zip(ms, grads)]
    vs = [BETA2 * v + (1 - BETA2) * g * g for v, g in zip(vs, grads)]
    params = [p - a_t * m / (jnp.sqrt(v) + ADAM_EPS) for p, m, v in zip(params, ms, vs)]
    return params, (ms, vs, t)


# Each update rule: its step and its state's start for the parameters.
UPDATES = {"rmsprop": (rmsprop, lambda params: [jnp.zeros_like(p) for p in params]),
           "adam": (adam, lambda params: ([jnp.zeros_like(p) for p in params],
                                          [jnp.zeros_like(p) for p in params],
                                          jnp.zeros((), jnp.float32)))}


def make_train_step(update):
    def train_step(params, state, x, y, key):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y, key)
        params, state = update(params, grads, state)
        return params, state, loss
    return jax.jit(train_step, donate_argnums=(0, 1))


def evaluate(params, X, y, batchsize=500):
    results = [evaluate_batch(params, X[s:s + batchsize], y[s:s + batchsize])
               for s in range(0, len(X) - batchsize + 1, batchsize)]
    return tuple(float(v) for v in np.mean(np.array(results), axis=0))


def run(num_epochs=20, seed=None, hidden=(500, 300), update="rmsprop", batch_size=500):
    start = time.time()
    print("Loading data...")
    X_train, y_train, X_val, y_val, X_test, y_test = load_data()
    rng = np.random.RandomState(seed)
    key = jax.random.PRNGKey(rng.randint(2 ** 31))
    y_train, y_val, y_test = (y.astype(np.int32) for y in (y_train, y_val, y_test))
    params = [jnp.asarray(a) for a in glorot_params(rng, sizes_of(hidden))]
    step, first_state = UPDATES[update]
    state = first_state(params)
    train_step = make_train_step(step)
    print("Starting training...")
    for epoch in range(num_epochs):
        t0 = time.time()
        idx = rng.permutation(len(X_train))
        losses = []
        for s in range(0, len(X_train) - batch_size + 1, batch_size):
            excerpt = idx[s:s + batch_size]
            key, step_key = jax.random.split(key)
            params, state, loss = train_step(params, state, X_train[excerpt], y_train[excerpt],
                                             step_key)
            losses.append(loss)  # kept on the device: no sync per batch
        train_err = float(jnp.mean(jnp.stack(losses)))
        val_err, val_acc = evaluate(params, X_val, y_val, batch_size)
        print_epoch(epoch, num_epochs, time.time() - t0, train_err, val_err, val_acc)
    test_err, test_acc = evaluate(params, X_test, y_test, batch_size)
    print_final(time.time() - start, test_err, test_acc)


def main(argv=None):
    ap = experiment_parser(__doc__.splitlines()[0], UPDATES)
    args = ap.parse_args(argv)
    run(args.epochs, args.seed, args.hidden, args.update, args.batch_size)


if __name__ == "__main__":
    main()
