"""Best single-precision GEMM rate reached here, in GFLOP/s.

Run by bench.py with each venv's python; prints one line:
  sgemm <GFLOP/s> <n> <what was measured>
or, with --net, the GEMM-bound limit of one epoch of the MLP: the 8 matrix
products of a training step at the net's own shapes (3 forward, 3 weight
gradients, 2 input gradients) x 100 steps, plus the 3 forward products x 20
validation batches, each product timed alone (best of its repeats):
  netgemm <seconds per epoch> <GFLOP/s over those products> <what was measured>
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


# (m, k, n) of each product of a training step, batch 500, 784-500-300-10:
# forward X.W for the 3 layers; dW = X^T.delta for the 3 layers; dX =
# delta.W^T for layers 3 and 2 (the input needs no gradient).
FORWARD = [(500, 784, 500), (500, 500, 300), (500, 300, 10)]
TRAIN_STEP = FORWARD + [(784, 500, 500), (500, 500, 300), (300, 500, 10),
                        (500, 10, 300), (500, 300, 500)]


def net_limit(dot, repeats=30):
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
    seconds = 100 * sum(best(*s) for s in TRAIN_STEP) + 20 * sum(best(*s) for s in FORWARD)
    flop = 2 * (100 * sum(m * k * n for m, k, n in TRAIN_STEP)
                + 20 * sum(m * k * n for m, k, n in FORWARD))
    return seconds, flop / seconds / 1e9


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int, nargs="?", default=2000)
    ap.add_argument("--theano", metavar="DIR", help="measure through Theano, as DIR's feedforward_lasagne_mnist.py sets it up")
    ap.add_argument("--net", action="store_true",
                    help="the GEMM-bound limit of an epoch at the net's shapes")
    args = ap.parse_args()
    dot, what = theano_dot(args.theano) if args.theano else (np.dot, numpy_blas())
    if args.net:
        print("netgemm %.4f %.1f %s" % (net_limit(dot) + (what,)))
    else:
        print("sgemm %.1f %d %s" % (peak(dot, args.n), args.n, what))
