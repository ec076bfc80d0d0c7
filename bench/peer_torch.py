#!/usr/bin/env python3
"""The PyTorch peer of feedforward_lasagne_mnist.py, for bench/bench.py.

Same data and split (peer_data.py: the vendored IDX files, read as mnist_loader does), same 784-500-300-10 net with
ReLU, dropout 0.4 (inverted: kept units scaled by 1/0.6, as Lasagne's
DropoutLayer(rescale=True)), softmax + mean categorical cross-entropy, Glorot
uniform weights (gain 1: U(-a, a), a = sqrt(6 / (fan_in + fan_out))) and zero
biases, batch 500, shuffled every epoch, the last partial batch dropped,
float32. The update is Lasagne's rmsprop written out, because torch.optim.RMSprop
puts eps outside the square root:

    acc   = rho * acc + (1 - rho) * g**2
    param = param - lr * g / sqrt(acc + eps)        lr 1e-3, rho 0.9, eps 1e-6

It prints the tutorial's own lines ("Epoch i of n took ...s", "  test
accuracy: ...") so that one parser reads both programs.
"""
import argparse
import time

import numpy as np
import torch

from peer_data import glorot_params, load_data, print_epoch, print_final


class MLP:
    """Parameters as plain tensors, W (in, out) as in Lasagne."""

    def __init__(self, rng, p=0.4):
        self.p = p
        self.params = [torch.from_numpy(a).requires_grad_() for a in glorot_params(rng)]

    def logits(self, x, train):
        W1, b1, W2, b2, W3, b3 = self.params
        h = torch.relu(torch.addmm(b1, x, W1))
        if train:
            h = torch.nn.functional.dropout(h, self.p, training=True)
        h = torch.relu(torch.addmm(b2, h, W2))
        if train:
            h = torch.nn.functional.dropout(h, self.p, training=True)
        return torch.addmm(b3, h, W3)


def rmsprop_step(params, accs, lr=1e-3, rho=0.9, eps=1e-6):
    with torch.no_grad():
        for p, acc in zip(params, accs):
            g = p.grad
            acc.mul_(rho).addcmul_(g, g, value=1 - rho)
            p.addcdiv_(g, (acc + eps).sqrt_(), value=-lr)
            p.grad = None


def evaluate(model, X, y, batchsize=500):
    err = acc = 0.0
    n = 0
    with torch.no_grad():
        for s in range(0, len(X) - batchsize + 1, batchsize):
            out = model.logits(X[s:s + batchsize], train=False)
            t = y[s:s + batchsize]
            err += torch.nn.functional.cross_entropy(out, t).item()
            acc += (out.argmax(1) == t).float().mean().item()
            n += 1
    return err / n, acc / n


def run(num_epochs=20, seed=None, threads=None):
    if threads:
        torch.set_num_threads(threads)
    start = time.time()
    print("Loading data...")
    X_train, y_train, X_val, y_val, X_test, y_test = load_data()
    rng = np.random.RandomState(seed)
    torch.manual_seed(rng.randint(2 ** 31))
    flat = lambda X: torch.from_numpy(np.ascontiguousarray(X.reshape(len(X), -1), np.float32))
    X_train, X_val, X_test = flat(X_train), flat(X_val), flat(X_test)
    y_train, y_val, y_test = (torch.from_numpy(y.astype(np.int64)) for y in (y_train, y_val, y_test))
    model = MLP(rng)
    accs = [torch.zeros_like(p) for p in model.params]
    print("Starting training...")
    for epoch in range(num_epochs):
        t0 = time.time()
        idx = torch.from_numpy(rng.permutation(len(X_train)))
        train_err, batches = 0.0, 0
        for s in range(0, len(X_train) - 500 + 1, 500):
            excerpt = idx[s:s + 500]
            loss = torch.nn.functional.cross_entropy(
                model.logits(X_train[excerpt], train=True), y_train[excerpt])
            loss.backward()
            rmsprop_step(model.params, accs)
            train_err += loss.item()
            batches += 1
        val_err, val_acc = evaluate(model, X_val, y_val)
        print_epoch(epoch, num_epochs, time.time() - t0, train_err / batches, val_err, val_acc)
    test_err, test_acc = evaluate(model, X_test, y_test)
    print_final(time.time() - start, test_err, test_acc)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (default: torch's own, one per core)")
    args = ap.parse_args(argv)
    run(args.epochs, args.seed, args.threads)


if __name__ == "__main__":
    main()
