"""The speed-ups: the tutorial's math, compiled into faster code, for the
tutorial's network and functions only.

    mode = speedups.mode(network)                   # before building the graph
    train_fn = theano.function(..., mode=mode)

mode(network) gives the network's dropout layers the faster mask generator and
returns a Theano compile mode with the faster ops; the functions compiled
with it use them. Nothing else changes: importing this package registers its
rewrites under their own names, which the default mode does not select, so
every other function, layer and update rule of the process compiles as with
stock Theano 1.0.5 and Lasagne 0.1. mode(network, enabled=False) gives the
layers their stock generator back and returns None, Theano's default mode.

The numbered list of docs/speedups.md says what each one replaces and what it
changes numerically:
1. dropout masks from dropout_rng (CPU only);
2. Theano's local_dot22_to_dot22scalar left out;
3. scalar constants as exact C literals (inline_constants);
4. rmsprop's and adam's updates as one C op per parameter (fused_updates;
   CPU only);
5. the first layer's products skip the images' zeros (sparse_dot; CPU only),
   with OpenBLAS loaded under OPENBLAS_THREAD_TIMEOUT=4, so that its idle
   threads sleep;
6. bias-gradient sums as one vector loop (column_sum; CPU only);
7. the functions' C modules compiled side by side, with a precompiled header,
   and constants of data-movement ops folded in Python (parallel_compile).
"""
import ctypes
import ctypes.util
import os
import re

import theano
from lasagne.layers import DropoutLayer, get_all_layers

from .. import compat
from . import column_sum, fused_updates, inline_constants, sparse_dot  # noqa: F401 (rewrites)
from . import dropout_rng, parallel_compile

# The rewrites of 3 to 7, by the names they are registered under in optdb.
EVERYWHERE = ("inline_broadcast_constants", "fold_data_movement")
CPU_ONLY = ("fused_updates", "fused_updates_inplace", "column_sum")

# OPENBLAS_THREAD_TIMEOUT is a power of 2 of CPU cycles; up to 2**10 (a
# microsecond or less), OpenBLAS's idle threads are out of the way of ours.
SHORT_BLAS_TIMEOUT = 10


def wanted(enabled=None):
    """enabled, or when None what FLM_SPEEDUPS says (default: on; 0, off, false, no: off)."""
    if enabled is None:
        setting = os.environ.get("FLM_SPEEDUPS", "1").strip().lower()
        return setting not in ("0", "off", "false", "no")
    return bool(enabled)


def on_cpu():
    return not compat.is_gpu_device(theano.config.device)


def blas_loaded():
    """Whether the BLAS named in blas.ldflags is already mapped into this
    process (then it has read its environment). True when /proc is missing."""
    names = re.findall(r"(?:^|\s)-l(\S+)", theano.config.blas.ldflags)
    try:
        with open("/proc/self/maps") as maps:
            mapped = maps.read()
    except OSError:
        return True
    return any(("/lib%s." % name) in mapped for name in names)


# The BLAS loaded by load_blas() with our OPENBLAS_THREAD_TIMEOUT, once per process.
_loaded_with_timeout = []


def load_blas():
    """Loads the OpenBLAS of blas.ldflags now, as the functions' modules will
    find it: lib<name>.so in the first -L folder that has it, else where the
    system's linker finds lib<name>. Theano's modules name it by its soname,
    so they use this copy. OSError when it cannot be loaded."""
    flags = theano.config.blas.ldflags.split()
    dirs = [w[2:] for w in flags if w.startswith("-L")]
    for name in (w[2:] for w in flags if w.startswith("-l") and "openblas" in w):
        path = next((os.path.join(d, "lib%s.so" % name) for d in dirs
                     if os.path.exists(os.path.join(d, "lib%s.so" % name))), None)
        ctypes.CDLL(path or ctypes.util.find_library(name) or "lib%s.so" % name)


def zero_skipping_problem():
    """Why 5 cannot run in this process, or None. It needs OpenBLAS's idle
    threads to sleep at once: OPENBLAS_THREAD_TIMEOUT at most 2**10 cycles,
    which OpenBLAS reads when it is loaded. When the variable is unset and
    OpenBLAS not yet loaded, OpenBLAS is loaded now with the variable at 4,
    which is then removed again: the processes this one starts get the
    user's environment (a program of the project sets it for itself)."""
    if not on_cpu():
        return "not on a GPU"
    if "openblas" not in theano.config.blas.ldflags:
        return "BLAS is not OpenBLAS"  # MKL, BLIS ... have other ways of waiting
    value = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    if value is None:
        if _loaded_with_timeout:
            return None
        if blas_loaded():
            return "OpenBLAS was loaded before OPENBLAS_THREAD_TIMEOUT could be set"
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
        try:
            load_blas()
        except OSError as e:
            return "OpenBLAS could not be loaded: %s" % e
        finally:
            del os.environ["OPENBLAS_THREAD_TIMEOUT"]
        _loaded_with_timeout.append(True)
        return None
    try:  # OpenBLAS ignores 0 and negative values (and raises 1-3 to 4)
        if 1 <= int(value) <= SHORT_BLAS_TIMEOUT:
            return None
    except ValueError:
        pass
    return "OPENBLAS_THREAD_TIMEOUT=%s is not 1 to %d" % (value, SHORT_BLAS_TIMEOUT)


def use_fast_dropout(network, fast=True):
    """Gives the network's dropout layers dropout_rng's generator (1), seeded
    with the seed Lasagne drew for the layer's own MRG_RandomStreams, or
    (fast=False) that stock generator back."""
    for layer in get_all_layers(network):
        if not isinstance(layer, DropoutLayer):
            continue
        stock = getattr(layer, "stock_srng", layer._srng)
        if fast and not isinstance(layer._srng, dropout_rng.RandomStreams):
            layer.stock_srng = stock
            layer._srng = dropout_rng.RandomStreams(int(stock.rstate[0]))
        elif not fast:
            layer._srng = stock


def parallel_compile_applies():
    """Whether 7 can run with Theano's default mode: a VM linker with C
    thunks and a C++ compiler. DebugMode, a Python linker, no g++: no."""
    default = theano.compile.get_default_mode()
    return parallel_compile.linker(default.linker) is not default.linker


def prepare(enabled=None):
    """Starts, when `wanted(enabled)` and on the CPU, what mode() would start:
    7's precompiled header for the CPU's ops, made in the background. For a
    caller that knows it will train (the command line): they are then made
    while the data loads."""
    if wanted(enabled) and on_cpu() and parallel_compile_applies():
        parallel_compile.start_headers()


def mode(network, enabled=None):
    """The compile mode of the speed-ups for this network's functions, after
    giving its dropout layers their generator; None (Theano's default mode, and
    the stock generator) when not `wanted(enabled)`.

    It is Theano's default mode (THEANO_FLAGS mode=...) with the rewrites of
    1-6 included and `local_dot22_to_dot22scalar` excluded, and 7's linker in
    place of the mode's VM linker. A mode that runs a linker of its own
    (DebugMode, which runs each op's C and Python code and compares them)
    keeps it: 7 steps aside, and the mode checks the other six's ops as it
    checks Theano's. NanGuardMode's checks are callbacks of its VM linker,
    which 7's linker keeps."""
    on = wanted(enabled)
    use_fast_dropout(network, fast=on and on_cpu())
    if not on:
        return None
    names = EVERYWHERE + (CPU_ONLY if on_cpu() else ())
    if zero_skipping_problem() is None:
        names += ("zero_skipping_dot22",)
    prepare(enabled)
    base = theano.compile.get_default_mode().including(*names).excluding(
        "local_dot22_to_dot22scalar")
    linker = parallel_compile.linker(base.linker)
    if linker is base.linker:
        return base
    return theano.compile.Mode(linker=linker, optimizer=base.provided_optimizer)


def describe(compile_mode):
    """For the Device line: which speed-ups a mode made by mode() holds."""
    if compile_mode is None:
        return "off (stock Theano/Lasagne)"
    left_out = []
    if not on_cpu():
        left_out.append("the CPU-only 1, 4, 5, 6")
    elif "zero_skipping_dot22" not in compile_mode.provided_optimizer.include:
        left_out.append("5 zero-skipping products ({})".format(zero_skipping_problem()))
    if not isinstance(compile_mode.linker, parallel_compile.ParallelCompileLinker):
        if not theano.config.cxx:
            why = "no C++ compiler"
        elif type(theano.compile.get_default_mode()) is theano.compile.Mode:
            why = "linker={}".format(theano.config.linker)  # e.g. py: no C modules
        else:
            why = "mode={} runs Theano's own linker".format(theano.config.mode)
        left_out.append("7 side-by-side compile ({})".format(why))
    return "on, except " + "; ".join(left_out) if left_out else "on"
