"""Best single-precision GEMM rate numpy's BLAS reaches here, in GFLOP/s.

Run by bench.py with each venv's python; prints one line:
  sgemm <GFLOP/s> <n> <numpy version> <BLAS description>
"""
import sys
import time

import numpy as np


def blas_name():
    try:  # numpy >= 1.25
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return "%s %s" % (cfg.get("name"), cfg.get("version"))
    except Exception:
        return "numpy-bundled BLAS"


def peak(n=2000, repeats=7):
    a = np.random.rand(n, n).astype(np.float32)
    b = np.random.rand(n, n).astype(np.float32)
    c = np.empty((n, n), np.float32)
    np.dot(a, b, out=c)  # warm-up: threads started, pages touched
    best = 0.0
    for _ in range(repeats):
        t = time.perf_counter()
        np.dot(a, b, out=c)
        best = max(best, 2.0 * n ** 3 / (time.perf_counter() - t) / 1e9)
    return best


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print("sgemm %.1f %d %s %s" % (peak(n), n, np.__version__, blas_name()))
