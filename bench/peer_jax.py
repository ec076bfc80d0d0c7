#!/usr/bin/env python3
"""The JAX peer of feedforward_lasagne_mnist.py, for bench/bench.py.

The same experiment as peer_torch.py (peer_data.py: same files, split and
Glorot-uniform init; 784-500-300-10 ReLU, inverted dropout 0.4, softmax + mean
cross-entropy, Lasagne's rmsprop with eps inside the square root, batch 500,
float32), written the way a JAX user writes it: the whole training step --
forward, value_and_grad, the rmsprop update -- is one jax.jit, so XLA fuses
the elementwise work around the matrix products; the parameters and rmsprop's
accumulators are donated to it (updated in place). Batches are gathered with
numpy, as the faithful script and the PyTorch peer do.
"""
import argparse
import time

import numpy as np
import jax
import jax.numpy as jnp

from peer_data import glorot_params, load_data, print_epoch, print_final

P_DROP, LR, RHO, EPS = 0.4, 1e-3, 0.9, 1e-6


def logits(params, x, key=None):
    """key: dropout's random key while training; None evaluates (no dropout)."""
    W1, b1, W2, b2, W3, b3 = params
    h = x
    for i, (W, b) in enumerate(((W1, b1), (W2, b2))):
        h = jax.nn.relu(h @ W + b)
        if key is not None:
            keep = jax.random.bernoulli(jax.random.fold_in(key, i), 1 - P_DROP, h.shape)
            h = jnp.where(keep, h / (1 - P_DROP), 0)
    return h @ W3 + b3


def loss_fn(params, x, y, key=None):
    out = logits(params, x, key)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(out), y[:, None], axis=1))


@jax.jit
def evaluate_batch(params, x, y):
    out = logits(params, x)
    return loss_fn(params, x, y), jnp.mean(jnp.argmax(out, axis=1) == y)


def train_step(params, accs, x, y, key):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y, key)
    accs = [RHO * a + (1 - RHO) * g * g for a, g in zip(accs, grads)]
    params = [p - LR * g / jnp.sqrt(a + EPS) for p, g, a in zip(params, grads, accs)]
    return params, accs, loss


train_step = jax.jit(train_step, donate_argnums=(0, 1))


def evaluate(params, X, y, batchsize=500):
    results = [evaluate_batch(params, X[s:s + batchsize], y[s:s + batchsize])
               for s in range(0, len(X) - batchsize + 1, batchsize)]
    return tuple(float(v) for v in np.mean(np.array(results), axis=0))


def run(num_epochs=20, seed=None):
    start = time.time()
    print("Loading data...")
    X_train, y_train, X_val, y_val, X_test, y_test = load_data()
    rng = np.random.RandomState(seed)
    key = jax.random.PRNGKey(rng.randint(2 ** 31))
    y_train, y_val, y_test = (y.astype(np.int32) for y in (y_train, y_val, y_test))
    params = [jnp.asarray(a) for a in glorot_params(rng)]
    accs = [jnp.zeros_like(p) for p in params]
    print("Starting training...")
    for epoch in range(num_epochs):
        t0 = time.time()
        idx = rng.permutation(len(X_train))
        losses = []
        for s in range(0, len(X_train) - 500 + 1, 500):
            excerpt = idx[s:s + 500]
            key, step_key = jax.random.split(key)
            params, accs, loss = train_step(params, accs, X_train[excerpt], y_train[excerpt],
                                            step_key)
            losses.append(loss)  # kept on the device: no sync per batch
        train_err = float(jnp.mean(jnp.stack(losses)))
        val_err, val_acc = evaluate(params, X_val, y_val)
        print_epoch(epoch, num_epochs, time.time() - t0, train_err, val_err, val_acc)
    test_err, test_acc = evaluate(params, X_test, y_test)
    print_final(time.time() - start, test_err, test_acc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args(argv)
    run(args.epochs, args.seed)


if __name__ == "__main__":
    main()
