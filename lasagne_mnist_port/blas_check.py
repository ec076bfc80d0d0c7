"""Whether the BLAS that Theano links computes right matrix products.

A BLAS picks its kernels for the CPU, and a pick can compute wrong numbers:
under qemu's arm64 emulation the scipy-openblas32 wheel's OpenBLAS 0.3.34
picks its `armv9sme` kernels, whose sgemm returns NaN and wrong numbers there.
Trained on such a BLAS, the network's loss becomes NaN in the first epoch,
which looks like a learning rate that is too high. check() finds it before training: a few single-precision products
(the tutorial's shapes and some odd ones, plain and transposed, with beta 0
and 1) through the library's own sgemm, compared with a float64 reference that
uses no BLAS at all (numpy's einsum without optimize). When they are wrong, it
tries OpenBLAS's core types for this machine, each in a process of its own with
OPENBLAS_CORETYPE set, and names the first that computes them right.

The products run in a child process, never in the caller's: a kernel that
crashes takes only the child down, and the caller's OpenBLAS is not loaded
before the speed-ups have set its environment (speedups.zero_skipping_problem).
A right result is remembered in the user's cache folder
($XDG_CACHE_HOME/feedforward_lasagne_mnist/blas-check/, else ~/.cache/...), one file
per library file (its path, size and time, so a new version is a new entry),
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE (which choose OpenBLAS's kernels) and
CPU (its identity in /proc/cpuinfo, from which OpenBLAS picks its core type):
after the first run the check costs a few stat calls.

compat.check_blas() says when it runs: from run_network() and the command
line, before training; never at `import theano`.

    python -m lasagne_mnist_port.blas_check --probe LIBRARY... SYMBOL
        (the child: prints what it found as one JSON line)
"""
import ctypes
import ctypes.util
import glob
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import sysconfig

import numpy as np

# OpenBLAS core types to try, for each machine, the fastest first; the last is
# the plainest kernel of that architecture. A core the CPU cannot run crashes
# its child (SIGILL), which counts as wrong.
CANDIDATES = {
    "x86_64": ["HASWELL", "SANDYBRIDGE", "NEHALEM"],
    "aarch64": ["NEOVERSEN1", "ARMV8"],
}
# The products: (m, k, n, A stored transposed, B stored transposed, beta). The
# tutorial's forward products for a batch of 500 (784-500-300-10), its weight
# gradients (a transposed operand) and some odd sizes that leave partial tiles.
PRODUCTS = [(500, 784, 500, False, False, 0.0), (500, 500, 300, False, False, 0.0),
            (500, 300, 10, False, False, 0.0), (784, 500, 500, True, False, 1.0),
            (500, 10, 300, False, True, 0.0), (1, 1, 1, False, False, 0.0),
            (7, 13, 5, True, True, 1.0), (33, 17, 65, False, False, 0.0),
            (97, 131, 3, True, False, 0.0)]
CACHE_VERSION = 1  # part of the cache key: a change of PRODUCTS checks again
_passed = set()  # keys checked right in this process


class WrongBlas(FloatingPointError):
    """The BLAS that Theano links computes wrong matrix products (the message
    names the library, its core type and a core type that computes right)."""


# --- Which library, which symbol -------------------------------------------
def blas_plan(ldflags):
    """(library files in link order, the sgemm symbol Theano calls) for a
    blas.ldflags value, or None when it names no library that can be found
    (no -l: Theano's numpy fallback; nothing to check here)."""
    words = ldflags.split()
    dirs = [w[2:] for w in words if w.startswith("-L")]
    symbol = "sgemm_"
    for w in words:  # e.g. -Dsgemm_=scipy_sgemm_ (the wheel's prefixed names)
        if w.startswith("-Dsgemm_="):
            symbol = w[len("-Dsgemm_="):]
    libs = []
    for name in (w[2:] for w in words if w.startswith("-l")):
        # the linker's order: the -L folders, then the system's (ld.so's cache,
        # which gives a file name: found in the system's folders for its path)
        found = [f for d in dirs for f in sorted(glob.glob(os.path.join(d, "lib%s.so*" % name)))]
        soname = None if found else ctypes.util.find_library(name)
        if soname:
            multiarch = sysconfig.get_config_var("MULTIARCH") or ""
            found = [p for d in ("/usr/local/lib", "/usr/lib/" + multiarch, "/lib/" + multiarch,
                                 "/usr/lib64", "/lib64", "/usr/lib", "/lib")
                     for p in [os.path.join(d, soname)] if os.path.exists(p)] or [soname]
        if found:
            libs.append(found[0])
    return (libs, symbol) if libs else None


def cpu_identity():
    """What identifies this CPU to a BLAS choosing its kernels: the first
    processor's lines of /proc/cpuinfo (model, implementer and part, flags)."""
    try:
        with open("/proc/cpuinfo") as f:
            first = f.read().split("\n\n")[0]
    except OSError:
        first = ""
    lines = [l for l in first.splitlines()
             if not re.match(r"(processor|cpu MHz|bogomips|BogoMIPS|core id|apicid|"
                             r"initial apicid)\s*:", l)]
    return platform.machine() + "\n" + "\n".join(lines)


def cache_file(plan):
    """Where a right result for this library, environment and CPU is kept."""
    libs, symbol = plan
    stats = []
    for lib in libs:
        try:
            st = os.stat(lib)
            stats.append([os.path.realpath(lib), st.st_size, st.st_mtime_ns])
        except OSError:  # a soname found through ld.so's cache
            stats.append([lib])
    key = json.dumps([CACHE_VERSION, stats, symbol, cpu_identity(),
                      [os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")]])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "feedforward_lasagne_mnist", "blas-check",
                        hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32])


# --- The child: the products through the library's sgemm -----------------------
def wrong_products(sgemm):
    """Whether sgemm gets one of PRODUCTS wrong (beyond float32 rounding).

    sgemm(transa, transb, m, n, k, A, lda, B, ldb, beta, C, ldc) is the Fortran
    call with alpha 1 (column-major, as the BLAS sees numpy's row-major arrays:
    C = op(A).op(B) is computed as C^T = op(B)^T.op(A)^T)."""
    rng = np.random.RandomState(0)
    eps = np.finfo(np.float32).eps
    for m, k, n, a_t, b_t, beta in PRODUCTS:
        A = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        B = rng.uniform(-1, 1, (k, n)).astype(np.float32)
        C0 = rng.uniform(-1, 1, (m, n)).astype(np.float32)
        a_buf = np.ascontiguousarray(A.T if a_t else A)
        b_buf = np.ascontiguousarray(B.T if b_t else B)
        C = C0.copy()
        sgemm(b"T" if b_t else b"N", b"T" if a_t else b"N", n, m, k,
              b_buf, k if b_t else n, a_buf, m if a_t else k, beta, C, n)
        # The reference on some rows: the first 24 (every position in a
        # kernel's tile of rows), 16 spread over the rest, the last. The
        # bound is float32's for a sum of k + 2 terms.
        rows = np.unique(np.r_[np.arange(min(m, 24)), np.linspace(0, m - 1, 16).astype(int)])
        A64, B64, C64 = A[rows].astype(np.float64), B.astype(np.float64), C0[rows].astype(np.float64)
        ref = np.einsum("ik,kj->ij", A64, B64, optimize=False) + beta * C64
        bound = (k + 2) * eps * (np.einsum("ik,kj->ij", np.abs(A64), np.abs(B64),
                                           optimize=False) + beta * np.abs(C64))
        if not np.all(np.abs(C[rows] - ref) <= bound):  # NaN is wrong too
            return True
    return False


def probe(libs, symbol):
    """The child's work: prints what the library is (one JSON line), then
    whether its products are wrong (another), so that a crash in the products
    still leaves the first."""
    handles = [ctypes.CDLL(lib, mode=ctypes.RTLD_GLOBAL) for lib in libs]
    owner = next(h for h in handles if hasattr(h, symbol))
    prefix = symbol[:-len("sgemm_")]  # scipy_ for the wheel's names
    info = {"library": os.path.basename(owner._name)}
    for what in ("config", "corename"):
        f = getattr(owner, prefix + "openblas_get_" + what, None)
        if f is not None:
            f.restype = ctypes.c_char_p
            info[what] = f().decode("utf-8", "replace")
    print(json.dumps(info), flush=True)
    raw = getattr(owner, symbol)
    raw.restype = None
    i, f = ctypes.c_int, ctypes.c_float
    ptr = ctypes.POINTER(ctypes.c_float)

    def sgemm(ta, tb, m, n, k, A, lda, B, ldb, beta, C, ldc):
        raw(ctypes.c_char_p(ta), ctypes.c_char_p(tb), ctypes.byref(i(m)), ctypes.byref(i(n)),
            ctypes.byref(i(k)), ctypes.byref(f(1.0)), A.ctypes.data_as(ptr), ctypes.byref(i(lda)),
            B.ctypes.data_as(ptr), ctypes.byref(i(ldb)), ctypes.byref(f(beta)),
            C.ctypes.data_as(ptr), ctypes.byref(i(ldc)))

    print(json.dumps({"wrong": wrong_products(sgemm)}), flush=True)


def run_probe(plan, coretype=None):
    """probe() in a child process (with OPENBLAS_CORETYPE=coretype if given):
    {"library", "config", "corename" (what the library says), "wrong"}; wrong
    is True when the child crashed (e.g. SIGILL: a core this CPU cannot run)
    or hung."""
    libs, symbol = plan
    env = dict(os.environ)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        child = subprocess.run(
            [sys.executable, "-m", "lasagne_mnist_port.blas_check", "--probe"] + libs + [symbol],
            capture_output=True, text=True, env=env, cwd=package_parent, timeout=600)
        out = child.stdout
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
    info = {"wrong": True}
    for line in out.splitlines():
        try:
            info.update(json.loads(line))
        except ValueError:
            pass
    return info


def describe(info, plan):
    """'OpenBLAS 0.3.34, core armv9sme', or the library's file name."""
    version = re.match(r"OpenBLAS (\S+)", info.get("config", ""))
    if version:
        return "OpenBLAS %s, core %s" % (version.group(1), info.get("corename", "unknown"))
    return info.get("library") or os.path.basename(plan[0][0])


# --- The check ------------------------------------------------------------------
def check(ldflags):
    """Raises WrongBlas when the BLAS named by `ldflags` (Theano's
    blas.ldflags) computes wrong single-precision products on this CPU."""
    plan = blas_plan(ldflags)
    if plan is None:
        return
    cached = cache_file(plan)
    if cached in _passed:
        return
    if os.path.exists(cached):
        _passed.add(cached)  # (the command line and run_network both ask)
        return
    info = run_probe(plan)
    if not info["wrong"]:
        _passed.add(cached)
        try:  # a cache that cannot be written only means checking again next time
            from . import atomic_file
            os.makedirs(os.path.dirname(cached), exist_ok=True)
            atomic_file.write(cached, lambda f: f.write(describe(info, plan) + " computes "
                                                        "right products\n"), mode="w")
        except OSError:
            pass
        return
    line = "the BLAS (%s) computes wrong matrix products on this CPU" % describe(info, plan)
    if "corename" not in info:
        raise WrongBlas(line + ": link another BLAS with THEANO_FLAGS=blas.ldflags=... "
                               "(docs/setup.md) and run again")
    current = (os.environ.get("OPENBLAS_CORETYPE") or info["corename"]).upper()
    tried = [c for c in CANDIDATES.get(platform.machine(), []) if c != current]
    for coretype in tried:
        if not run_probe(plan, coretype)["wrong"]:
            raise WrongBlas(line + "; OPENBLAS_CORETYPE=%s computes them right: set it and "
                                   "run again" % coretype)
    raise WrongBlas(line + "%s: link another BLAS with THEANO_FLAGS=blas.ldflags=... "
                           "(docs/setup.md) and run again"
                    % (", with OPENBLAS_CORETYPE=%s too" % " and ".join(tried) if tried else ""))


if __name__ == "__main__" and sys.argv[1:2] == ["--probe"]:
    probe(sys.argv[2:-1], sys.argv[-1])
