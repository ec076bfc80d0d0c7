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

or with --update adam Lasagne's adam written out, because torch.optim.Adam
divides sqrt(v) by its bias correction before adding eps (t counts the steps
from 1):

    m     = beta1 * m + (1 - beta1) * g             lr 1e-3, beta1 0.9,
    v     = beta2 * v + (1 - beta2) * g**2          beta2 0.999, eps 1e-8
    a_t   = lr * sqrt(1 - beta2**t) / (1 - beta1**t)
    param = param - a_t * m / (sqrt(v) + eps)

--hidden and --batch-size change the hidden layers (dropout after each) and
the batch of training and evaluation, as the tutorial's reader changes them.

It prints the tutorial's own lines ("Epoch i of n took ...s", "  test
accuracy: ...") so that one parser reads both programs.
"""
import math
import time

import numpy as np
import torch

from peer_data import (experiment_parser, glorot_params, load_data, print_epoch,
                       print_final, sizes_of)


class MLP:
    """Parameters as plain tensors, W (in, out) as in Lasagne."""

    def __init__(self, rng, sizes, p=0.4):
        self.p = p
        self.params = [torch.from_numpy(a).requires_grad_() for a in glorot_params(rng, sizes)]

    def logits(self, x, train):
        h = x
        layers = list(zip(self.params[0::2], self.params[1::2]))
        for W, b in layers[:-1]:
            h = torch.relu(torch.addmm(b, h, W))
            if train:
                h = torch.nn.functional.dropout(h, self.p, training=True)
        W, b = layers[-1]
        return torch.addmm(b, h, W)


class RMSProp:
    def __init__(self, params, lr=1e-3, rho=0.9, eps=1e-6):
        self.params, self.lr, self.rho, self.eps = params, lr, rho, eps
        self.accs = [torch.zeros_like(p) for p in params]

    def step(self):
        with torch.no_grad():
            for p, acc in zip(self.params, self.accs):
                g = p.grad
                acc.mul_(self.rho).addcmul_(g, g, value=1 - self.rho)
                p.addcdiv_(g, (acc + self.eps).sqrt_(), value=-self.lr)
                p.grad = None


class Adam:
    def __init__(self, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params, self.lr, self.beta1, self.beta2, self.eps = params, lr, beta1, beta2, eps
        self.ms = [torch.zeros_like(p) for p in params]
        self.vs = [torch.zeros_like(p) for p in params]
        self.t = 0

    def step(self):
        self.t += 1
        a_t = self.lr * math.sqrt(1 - self.beta2 ** self.t) / (1 - self.beta1 ** self.t)
        with torch.no_grad():
            for p, m, v in zip(self.params, self.ms, self.vs):
                g = p.grad
                m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
                v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
                p.addcdiv_(m, v.sqrt().add_(self.eps), value=-a_t)
                p.grad = None


UPDATES = {"rmsprop": RMSProp, "adam": Adam}


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


def run(num_epochs=20, seed=None, threads=None, hidden=(500, 300), update="rmsprop",
        batch_size=500):
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
    model = MLP(rng, sizes_of(hidden))
    optimizer = UPDATES[update](model.params)
    print("Starting training...")
    for epoch in range(num_epochs):
        t0 = time.time()
        idx = torch.from_numpy(rng.permutation(len(X_train)))
        train_err, batches = 0.0, 0
        for s in range(0, len(X_train) - batch_size + 1, batch_size):
            excerpt = idx[s:s + batch_size]
            loss = torch.nn.functional.cross_entropy(
                model.logits(X_train[excerpt], train=True), y_train[excerpt])
            loss.backward()
            optimizer.step()
            train_err += loss.item()
            batches += 1
        val_err, val_acc = evaluate(model, X_val, y_val, batch_size)
        print_epoch(epoch, num_epochs, time.time() - t0, train_err / batches, val_err, val_acc)
    test_err, test_acc = evaluate(model, X_test, y_test, batch_size)
    print_final(time.time() - start, test_err, test_acc)


def main(argv=None):
    ap = experiment_parser(__doc__.splitlines()[0], UPDATES)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (default: torch's own, one per core)")
    args = ap.parse_args(argv)
    run(args.epochs, args.seed, args.threads, args.hidden, args.update, args.batch_size)


if __name__ == "__main__":
    main()
