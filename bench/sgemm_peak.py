"""Best single-precision GEMM rate reached here, in GFLOP/s.

Run by bench.py with each venv's python; prints one line:
  sgemm <GFLOP/s> <n> <what was measured>
or, with --net, the GEMM-bound limit of one epoch of the MLP: the 8 matrix
products of a training step at the net's own shapes (3 forward, 3 weight
gradients, 2 input gradients) x 100 steps, plus the 3 forward products x 20
validation batches, each product timed alone (best of its repeats):
  netgemm <seconds per epoch> <GFLOP/s over those products> <what was measured>
--sizes and --batch-size give another net and batch (the benchmark's
variants): a step's products and the steps of an epoch follow from them.
With --theano DIR (the faithful side), the product is a compiled Theano
function, so the sgemm measured is the one Theano's C code links (lasagne_mnist_port/compat.py's
blas.ldflags); otherwise numpy's own BLAS (the peer side).
"""
import argparse
import sys
import time

import numpy as np


def numpy_blas():
    try:  # numpy >= 1.25
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return "numpy %s, %s %s" % (np.__version__, cfg.get("name"), cfg.get("version"))
    except Exception:
        return "numpy %s, its bundled BLAS" % np.__version__


def theano_dot(faithful_dir):
    sys.path.insert(0, faithful_dir)
    import feedforward_lasagne_mnist  # noqa: F401  (its shims and flags, BLAS included)
    import theano
    import theano.tensor as T
    a, b = T.matrices("a", "b")
    libs = [w for w in theano.config.blas.ldflags.split() if w.startswith("-l")]
    return theano.function([a, b], T.dot(a, b)), "Theano Dot22, %s" % " ".join(libs)


def peak(dot, n, repeats=7):
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    dot(a, b)  # warm-up: threads started, pages touched
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        dot(a, b)
        best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


def net_shapes(sizes=(784, 500, 300, 10), batch=500):
    """(m, k, n) of each product of a training step and of a forward pass:
    forward X.W for each layer; dW = X^T.delta for each layer; dX =
    delta.W^T for every layer but the first (the input needs no gradient).
    For 784-500-300-10 and batch 500: 3 + 3 + 2 products."""
    layers = list(zip(sizes[:-1], sizes[1:]))
    forward = [(batch, i, o) for i, o in layers]
    weights = [(i, batch, o) for i, o in layers]
    inputs = [(batch, o, i) for i, o in layers[1:]]
    return forward + weights + inputs, forward


def net_limit(dot, repeats=30, sizes=(784, 500, 300, 10), batch=500):
    def best(m, k, n):
        a = np.random.rand(m, k).astype(np.float32)
        b = np.random.rand(k, n).astype(np.float32)
        dot(a, b)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            dot(a, b)
            times.append(time.perf_counter() - t)
        return min(times)
    train_step, forward = net_shapes(sizes, batch)
    steps, val_batches = 50000 // batch, 10000 // batch
    seconds = (steps * sum(best(*s) for s in train_step)
               + val_batches * sum(best(*s) for s in forward))
    flop = 2 * (steps * sum(m * k * n for m, k, n in train_step)
                + val_batches * sum(m * k * n for m, k, n in forward))
    return seconds, flop / seconds / 1e9


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int, nargs="?", default=2000)
    ap.add_argument("--theano", metavar="DIR", help="measure through Theano, as DIR's feedforward_lasagne_mnist.py sets it up")
    ap.add_argument("--net", action="store_true",
                    help="the GEMM-bound limit of an epoch at the net's shapes")
    ap.add_argument("--sizes", default="784,500,300,10",
                    help="with --net: the layer sizes (default: 784,500,300,10)")
    ap.add_argument("--batch-size", type=int, default=500,
                    help="with --net: the batch (default: 500)")
    args = ap.parse_args()
    dot, what = theano_dot(args.theano) if args.theano else (np.dot, numpy_blas())
    if args.net:
        sizes = tuple(int(w) for w in args.sizes.split(","))
        print("netgemm %.4f %.1f %s" % (net_limit(dot, sizes=sizes, batch=args.batch_size)
                                        + (what,)))
    else:
        print("sgemm %.1f %d %s" % (peak(dot, args.n), args.n, what))
