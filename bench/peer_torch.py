#!/usr/bin/env python3
"""The PyTorch peer of feedforward_lasagne_mnist.py, for bench/bench.py.

Same data and split (the vendored IDX files, read as mnist_loader does), same 784-500-300-10 net with
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
import gzip
import os
import sys
import time

import numpy as np
import torch

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mnist")


def load_idx(name, data_dir=None):
    """One of the project's vendored IDX files (as mnist_loader reads them)."""
    data_dir = data_dir or os.environ.get("MNIST_DATA_DIR") or DATA_DIR
    path = os.path.join(data_dir, name)
    opener = open if os.path.exists(path) else gzip.open
    with opener(path if opener is open else path + ".gz", "rb") as f:
        raw = f.read()
    if int.from_bytes(raw[:4], "big") == 2051:
        return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784)
    return np.frombuffer(raw, np.uint8, offset=8)


def load_data():
    """mnist_loader.load_data's arrays: images / 256 as float32, the last 10,000
    training images held out for validation (flattened to 784 here)."""
    X = load_idx("train-images-idx3-ubyte") / np.float32(256)
    y = load_idx("train-labels-idx1-ubyte")
    X_test = load_idx("t10k-images-idx3-ubyte") / np.float32(256)
    y_test = load_idx("t10k-labels-idx1-ubyte")
    return X[:-10000], y[:-10000], X[-10000:], y[-10000:], X_test, y_test


def glorot_uniform(fan_in, fan_out, rng):
    a = np.sqrt(6.0 / (fan_in + fan_out))
    # Lasagne's W is (fan_in, fan_out); torch's Linear keeps (out, in).
    return torch.from_numpy(rng.uniform(-a, a, (fan_in, fan_out)).astype(np.float32))


class MLP:
    """Parameters as plain tensors, W (in, out) as in Lasagne."""

    def __init__(self, rng, sizes=(784, 500, 300, 10), p=0.4):
        self.p = p
        self.params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            W = glorot_uniform(fan_in, fan_out, rng).requires_grad_()
            b = torch.zeros(fan_out, requires_grad=True)
            self.params += [W, b]

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
        print("Epoch {} of {} took {:.3f}s".format(epoch + 1, num_epochs, time.time() - t0))
        print("training loss:\t\t{:.6f}".format(train_err / batches))
        print("validation loss:\t\t{:.6f}".format(val_err))
        print("validation accuracy:\t\t{:.2f} %".format(val_acc * 100))
    test_err, test_acc = evaluate(model, X_test, y_test)
    print("Final results in {} seconds:".format(time.time() - start))
    print("  test loss:\t\t\t{:.6f}".format(test_err))
    print("  test accuracy:\t\t{:.2f} %".format(test_acc * 100))


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
