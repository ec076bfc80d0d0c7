"""The 2016 -> 2026 compatibility shims for Theano 1.0.5 and Lasagne 0.1.

They must be in place before Theano reads its configuration, i.e. before the
first `import theano` (which `import lasagne` does too). `make setup` puts a
startup hook into the project's .venv (a .pth file that installs
import_hook.py), so in that venv `import theano`, `import lasagne` and
`import feedforward_lasagne_mnist` work in any order, in any interpreter,
notebook or test run. Without the hook (another environment), call

    from lasagne_mnist_port import compat
    compat.install()        # before anything imports theano

which is what the tutorial script does. Importing this module changes
nothing: the work happens when Theano is imported.

Each shim below names the exact breakage it fixes and the release that caused
it. Nothing here changes the math of the tutorial. The speed-ups, which
change how it is computed, are a compile mode of their own: speedups/.
"""
import importlib.machinery
import os
import pickle
import re
import sys
import types


class UnsupportedStack(ImportError):
    """A Python or numpy that Theano 1.0.5 cannot run on."""


# --- The THEANO_FLAGS parser and the GPU predicate (one of each) -------------
def parse_flags(text):
    """THEANO_FLAGS as [(key, value)], in order; an entry without '=' is kept
    as (entry, None). Theano lets a later entry win over an earlier one."""
    out = []
    for item in (text or "").split(","):
        item = item.strip()
        if item:
            key, sep, value = item.partition("=")
            out.append((key.strip(), value.strip() if sep else None))
    return out


def flags_dict(text):
    """THEANO_FLAGS as {key: value}, the last entry of each key winning."""
    return {k: v for k, v in parse_flags(text) if v is not None}


def is_gpu_device(device):
    """Whether a Theano `device` setting asks for anything but the CPU
    (cuda, cuda0, the 2016 gpu, opencl0:0 ...)."""
    return bool(device) and str(device) != "cpu"


# --- Shim 0: refuse the versions that cannot work, with a clear message -----
# numpy 1.24 removed the aliases np.bool / np.complex that Theano 1.0.5 uses
# everywhere, and Python 3.12 removed distutils, which Theano imports; no numpy
# older than 1.24 exists for Python 3.12. The failures they cause are deep
# tracebacks, so say it plainly instead.
def check_versions():
    fix = ("run the project's .venv/bin/python (`make setup` creates it with "
           "Python 3.10/3.11 and numpy 1.23.5)")
    if sys.version_info >= (3, 12):
        raise UnsupportedStack("Theano 1.0.5 needs Python 3.10 or 3.11 (this is %d.%d): %s"
                               % (sys.version_info[:2] + (fix,)))
    try:
        import numpy as np
    except ImportError:
        if sys.flags.no_site:
            raise UnsupportedStack("numpy is not importable: `python -S` skips the site-packages "
                                   "where the venv's numpy, Theano and Lasagne are; run it "
                                   "without -S")
        raise UnsupportedStack("numpy is not installed in %s: %s" % (sys.executable, fix))
    if tuple(int(p) for p in np.__version__.split(".")[:2]) >= (1, 24):
        raise UnsupportedStack(
            "numpy %s is too new for Theano 1.0.5 (numpy 1.24 removed np.bool and "
            "np.complex): %s; in another environment install numpy==1.23.5"
            % (np.__version__, fix))
    # e.g. Ubuntu 22.04's own python3, with its numpy 1.21 but no Theano
    if "theano" not in sys.modules and importlib.machinery.PathFinder.find_spec("theano") is None:
        raise UnsupportedStack("Theano is not installed in %s: %s" % (sys.executable, fix))


# --- Shim 1: default Theano flags, without overriding the user's ------------
# blas.ldflags: with numpy >= 1.22, `import theano` crashes when blas.ldflags is
# unset (AttributeError: ... no attribute 'blas_opt_info'), because Theano
# probes numpy.distutils' blas_opt_info, which numpy 1.22 removed. Naming the
# library explicitly skips the probe. Which library: the OpenBLAS 0.3.34 of the
# scipy-openblas32 wheel (requirements.txt) when it is installed, else the
# system's (-lopenblas, package libopenblas-dev). Debian 12's OpenBLAS 0.3.21
# (2022) does not know 2023+ CPUs (Sapphire and Emerald Rapids, Zen 4/5) and
# falls back to its SSE3 "Prescott" kernels there: 5-10x slower sgemm
# (bench/NOTES.md). THEANO_FLAGS=blas.ldflags=-lopenblas picks the system's.
# The wheel's symbols carry a scipy_ prefix, so the names Theano's C code calls
# (sgemm_, ...) are renamed with -D (Theano hands the words of blas.ldflags
# that are not -l/-L/-I to g++, and adds an rpath for each -L).
# floatX=float32: the tutorial trained in float32 on the GPU (Theano's default
# is float64, twice the memory traffic for no gain here).
_BLAS_NAMES = ["%s%s_" % (t, f) for t in "sdcz" for f in (
    "gemm", "gemv", "ger", "gerc", "geru", "dot", "axpy", "copy", "scal", "swap",
    "symm", "syrk", "trsm")]


# The wheel is found, not imported: importing scipy_openblas32 loads OpenBLAS,
# which reads its environment then (speed-up 5 sets OPENBLAS_THREAD_TIMEOUT
# before the first compiled function loads it).
def default_blas_ldflags():
    try:
        spec = importlib.machinery.PathFinder.find_spec("scipy_openblas32")
        libdir = os.path.join(spec.submodule_search_locations[0], "lib")
        libs = sorted(f for f in os.listdir(libdir)
                      if f.startswith("libscipy_openblas") and ".so" in f)
        lib = libs[0].split(".so")[0][len("lib"):]
    except (ImportError, AttributeError, TypeError, IndexError, OSError):
        return "-lopenblas"
    if not SAFE_IN_FLAGS.fullmatch(libdir):  # a project under "My Projects": see below
        try:
            libdir = blas_link(libdir)
        except OSError:
            return "-lopenblas"
    return " ".join(["-L" + libdir, "-l" + lib] +
                    ["-D%s=scipy_%s" % (n, n) for n in _BLAS_NAMES])


# Theano reads THEANO_FLAGS with shlex, then splits it at commas and
# blas.ldflags at spaces: a space, a comma, a quote or a # (a comment to shlex,
# which drops the rest, the user's own flags included) in the wheel folder's
# path breaks them. Such a folder is reached through a link in the temporary
# directory, made again whenever it is missing.
SAFE_IN_FLAGS = re.compile(r"[\w./+@%=-]+")


def blas_link(libdir):
    """A path of SAFE_IN_FLAGS characters that leads to libdir (OSError if none)."""
    import hashlib
    import tempfile
    digest = hashlib.sha256(libdir.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    folder = os.path.join(tempfile.gettempdir(), "lasagne_mnist_port-uid%d" % os.getuid())
    link = os.path.join(folder, "openblas-" + digest)
    if not SAFE_IN_FLAGS.fullmatch(link):
        raise OSError("the temporary directory %s has a character that breaks "
                      "THEANO_FLAGS" % folder)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.lstat(folder)  # this user's own, or someone could point the link elsewhere
    if not os.path.isdir(folder) or os.path.islink(folder) or st.st_uid != os.getuid() \
            or st.st_mode & 0o022:
        raise OSError("%s is not a folder of this user's alone" % folder)
    if os.path.realpath(link) != os.path.realpath(libdir):
        tmp = "%s.%d.tmp" % (link, os.getpid())
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(libdir, tmp)
        os.replace(tmp, link)
    return link


def default_flags():
    flags = {"floatX": "float32", "blas.ldflags": default_blas_ldflags()}
    # Theano keeps its compiled C code in ~/.theano and fails with a traceback
    # when it cannot create it (a container's --user with no home): use a
    # folder of this user's in the temporary directory then.
    home = os.path.expanduser("~")
    theano_dir = os.path.join(home, ".theano")
    if not os.access(theano_dir if os.path.isdir(theano_dir) else home, os.W_OK):
        import tempfile
        flags["base_compiledir"] = os.path.join(tempfile.gettempdir(),
                                                "theano-uid%d" % os.getuid())
    return flags


def _from_theanorc(key, env):
    """The value the user's .theanorc files give `key` (e.g. floatX), or None."""
    section, _, option = key.rpartition(".")
    import configparser
    parser = configparser.ConfigParser()
    paths = env.get("THEANORC", "~/.theanorc").split(os.pathsep)
    try:
        parser.read([os.path.expanduser(p) for p in paths])
        return parser.get(section or "global", option, fallback=None)
    except configparser.Error:
        return None  # Theano itself will report a broken .theanorc


def set_default_flags(env=os.environ):
    """Put our defaults in front of THEANO_FLAGS, for the keys the user left unset.

    Theano lets later entries of THEANO_FLAGS win, and THEANO_FLAGS wins over
    .theanorc; so a default is added only when neither the user's THEANO_FLAGS
    nor their .theanorc mentions that key.
    """
    user = set(flags_dict(env.get("THEANO_FLAGS", "")))
    if "compiledir" in user or _from_theanorc("compiledir", env) is not None:
        user.add("base_compiledir")  # the user's compiledir is below no base of ours
    missing = ["%s=%s" % (k, v) for k, v in default_flags().items()
               if k not in user and _from_theanorc(k, env) is None]
    if missing:
        env["THEANO_FLAGS"] = ",".join(missing + [env.get("THEANO_FLAGS", "")]).rstrip(",")


# --- Shim 1b: device=gpu, the 2016 way of asking for the GPU ----------------
# The tutorial's era selected the GPU with device=gpu (THEANO_FLAGS or
# .theanorc): Theano's old CUDA backend, removed in Theano 1.0, which now
# refuses to import with a traceback. Its successor is the gpuarray backend,
# device=cuda; gpuN becomes cudaN. (gpu_env.py then finds the CUDA libraries.)
def translate_old_gpu_device(env=os.environ):
    device = flags_dict(env.get("THEANO_FLAGS", "")).get("device") or _from_theanorc("device", env)
    if device and device.startswith("gpu") and device[3:].isdigit() or device == "gpu":
        new = "cuda" + device[3:]
        env["THEANO_FLAGS"] = ",".join(filter(None, [env.get("THEANO_FLAGS", ""),
                                                     "device=" + new]))
        print("compat: device=%s is Theano's old CUDA backend, removed in Theano 1.0: "
              "using device=%s (the gpuarray backend)" % (device, new), file=sys.stderr)


# --- Shim 1c: a BLAS that computes wrong matrix products ------------------
# The BLAS picks its kernels for the CPU when it loads, and a pick can be
# wrong: under qemu's arm64 emulation (an arm64 container on an x86 host) the
# wheel's OpenBLAS 0.3.34 picks its armv9sme kernels, whose sgemm returns NaN
# and wrong numbers there. Trained on it, the loss was NaN in epoch 1 and the
# message blamed the learning rate. blas_check.py computes a few products with the library in a
# child process (remembered per library, core type and CPU: the first run
# only) and, when they are wrong, names an OPENBLAS_CORETYPE that computes them
# right. It runs when training or prediction is about to start (the command
# line before anything is loaded; run_network through describe_backend), not
# at `import theano`: code of the user's own that imports Theano is neither
# slowed nor stopped by it. On a GPU the products are cuBLAS's or CLBlast's.
def check_blas():
    """Raises blas_check.WrongBlas when the CPU BLAS Theano links (blas.ldflags)
    computes wrong products; one line naming the library and the fix."""
    import theano
    if is_gpu_device(theano.config.device):
        return
    from . import blas_check
    blas_check.check(theano.config.blas.ldflags)


# --- Shim 2: theano.tensor.signal.downsample for Lasagne 0.1 ----------------
# Theano 0.9 removed the module theano.tensor.signal.downsample (renamed to
# theano.tensor.signal.pool); Lasagne 0.1 (2015, the last release on PyPI)
# imports it in lasagne/layers/pool.py, so `import lasagne` fails. Lasagne's
# unreleased master switched to pool_2d. We register a module of that name
# whose max_pool_2d forwards to pool_2d with the new argument names. (The MLP
# uses no pooling layer: the shim only has to make the import succeed and
# behave correctly if someone adds one.)
def _max_pool_2d(input, ds, ignore_border=None, st=None, padding=(0, 0), mode="max"):
    from theano.tensor.signal.pool import pool_2d
    return pool_2d(input, ws=ds, ignore_border=ignore_border, stride=st,
                   pad=padding, mode=mode)


def register_downsample_shim():
    if "theano.tensor.signal.downsample" in sys.modules:
        return
    import theano.tensor.signal
    shim = types.ModuleType("theano.tensor.signal.downsample",
                            "compat shim: Theano 0.9 removed this module")
    shim.max_pool_2d = _max_pool_2d
    sys.modules[shim.__name__] = shim
    theano.tensor.signal.downsample = shim


# --- Shim 3: Theano's compile cache, broken across processes ---------------
# Theano 1.0.5 recompiles six C modules in every new process (~4 s of g++ on
# 2 cores), and its cache grows by one module per run, for two reasons:
# (a) COp.c_code_cache_version() is hash(tuple(self.func_codes)): Python's str
#     hash, randomised per process since Python 3.3 (PYTHONHASHSEED), so every
#     COp (DimShuffle here) gets a new cache key in every process;
# (b) CLinker.cmodule_key_ puts each op's __props__ in the version part of the
#     key and treats an empty entry as "unversioned": ops whose __props__ is ()
#     (Dot22, Gemm, CrossentropySoftmax...) are never reused between processes.
# The fixes: a stable (sha256) hash of the same C code for (a), and an empty
# __props__ that is truthy for (b) (equal to (), pickled as ()). Neither
# changes the generated code; warm compile of train_fn + val_fn: 4-5 s -> 0.7 s.
class _EmptyProps(tuple):
    """() that counts as a version in CLinker.cmodule_key_ (its bool is True)."""

    def __bool__(self):
        return True

    def __reduce__(self):
        return (tuple, ())


def register_cache_shims():
    from theano.gof import op as gof_op
    from theano.gof.cc import CLinker

    import hashlib

    def c_code_cache_version(self):
        digest = hashlib.sha256("\0".join(self.func_codes).encode("utf-8")).hexdigest()
        version = (int(digest[:15], 16),)
        if hasattr(self, "params_type"):
            version += (self.params_type.c_code_cache_version(),)
        return version

    gof_op.COp.c_code_cache_version = c_code_cache_version

    original = CLinker.cmodule_key_
    if getattr(original, "compat_shim", False):
        return

    def cmodule_key_(self, fgraph, *args, **kwargs):
        for node in fgraph.toposort():
            cls = type(node.op)
            props = getattr(cls, "__props__", None)
            if props == () and not isinstance(props, _EmptyProps):
                cls.__props__ = _EmptyProps()
        return original(self, fgraph, *args, **kwargs)

    cmodule_key_.compat_shim = True
    CLinker.cmodule_key_ = cmodule_key_


# --- Shim 4: one line, not a traceback, when pygpu cannot start -------------
# With device=cuda, Theano 1.0.5 logs "Could not initialize pygpu, support
# disabled" with a full traceback, then silently runs on the CPU. The line and
# pygpu's own reason are enough: the traceback is dropped (and the failure kept
# in PYGPU_FAILURES). A program that reports the failure itself (the training
# script, through gpu_env.gpu_in_use) asks for silence: install(script=True).
PYGPU_FAILURES = []
_quiet_gpu = False


class _PygpuFailureFilter(object):
    """A filter of the logging module (any object with a filter method)."""

    def filter(self, record):
        if not str(record.msg).startswith("Could not initialize pygpu") or not record.exc_info:
            return True
        error = record.exc_info[1]
        PYGPU_FAILURES.append(error)
        text = error.args[0] if error.args else str(error)
        if isinstance(text, bytes):  # pygpu's GpuArrayException carries bytes
            text = text.decode("utf-8", "replace")
        lines = str(text).strip().splitlines()
        record.msg = "%s (%s: %s)" % (record.msg, type(error).__name__, lines[0] if lines else "")
        record.exc_info = record.exc_text = None
        return not _quiet_gpu


def register_pygpu_failure_filter():
    import logging
    logger = logging.getLogger("theano.gpuarray")
    if not any(isinstance(f, _PygpuFailureFilter) for f in logger.filters):
        logger.addFilter(_PygpuFailureFilter())


# --- Shim 5: a GPU kernel that OpenCL C refuses ------------------------------
# Theano 1.0.5's GpuCrossentropySoftmaxArgmax1HotWithBias (theano/gpuarray/
# nnet.py, the softmax + cross-entropy of the tutorial's loss) declares its
# LOCAL_MEM variables (row_max, sum, sum_inv, row_max_threadIdx) inside the loop
# over rows. CUDA accepts that; OpenCL C does not ("variables in the local
# address space can only be declared in the outermost scope of a kernel
# function"), so on an OpenCL device train_fn failed to compile (clBuildProgram).
# The declarations move to the kernel's outermost scope: the same variables,
# assigned before each use in every row as before, on CUDA too. The op's cache
# version gains a number, so that no module compiled from the old source is
# reused. Applied only when Theano's gpuarray backend is active.
_LOCAL_MEM_DECLARATION = r"^[ \t]*LOCAL_MEM [\w ]+(?:, *\w+)*;[ \t]*\n"


def local_mem_to_kernel_scope(code):
    """A kernel's source with its LOCAL_MEM declarations moved to the top of its body."""
    declarations = re.findall(_LOCAL_MEM_DECLARATION, code, flags=re.M)
    if not declarations:
        return code
    code = re.sub(_LOCAL_MEM_DECLARATION, "", code, flags=re.M)
    body = code.index("{", code.index("KERNEL")) + 1
    return code[:body] + "\n" + "".join(declarations) + code[body:]


def register_opencl_kernel_shim():
    nnet = sys.modules.get("theano.gpuarray.nnet")
    if nnet is None:  # the gpuarray backend is not in use
        return
    op = nnet.GpuCrossentropySoftmaxArgmax1HotWithBias
    if getattr(op.gpu_kernels, "compat_shim", False):
        return
    kernels, version = op.gpu_kernels, op.c_code_cache_version

    def gpu_kernels(self, node, nodename):
        found = kernels(self, node, nodename)
        for kernel in found:
            kernel.code = local_mem_to_kernel_scope(kernel.code)
        return found

    gpu_kernels.compat_shim = True
    op.gpu_kernels = gpu_kernels
    op.c_code_cache_version = lambda self: version(self) + (1,)


# --- Shim 6: the compile cache loads no module of this package ---------------
# Theano 1.0.5 unpickles the saved key of every module in its compile directory
# (ModuleCache.refresh, at the first compile of a process), and a key holds the
# ops of its module: unpickling one imports the module that defines its op.
# Once the tutorial has trained, keys name lasagne_mnist_port.speedups' ops, so
# the first compile of any other program of the venv imported the speed-ups
# and registered their rewrites. Theano's refresh skips a key it cannot
# unpickle ("references to classes that have not yet been imported") and tries
# it again at its next refresh, before each compile: keys naming a module of
# this package that the process has not imported are such keys, until it
# imports it.
class _CacheKeyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if module.split(".")[0] == __name__.split(".")[0] and module not in sys.modules:
            raise pickle.UnpicklingError("%s is not imported in this process" % module)
        return super().find_class(module, name)


class _CachePickle(object):
    """The pickle module, as Theano's compile cache sees it: load() with the
    unpickler above."""

    def __getattr__(self, name):
        return getattr(pickle, name)

    @staticmethod
    def load(file):
        return _CacheKeyUnpickler(file).load()


def register_cache_key_shim():
    from theano.gof import cmodule
    if not isinstance(cmodule.pickle, _CachePickle):
        cmodule.pickle = _CachePickle()


# --- Shim 7: Theano's C scan on Python 3.11 ----------------------------------
# theano.scan (and so Lasagne's RecurrentLayer, LSTMLayer and GRULayer) runs its
# loop in a C module that Theano compiles on first use from the file it ships,
# theano/scan_module/c_code/scan_perform.c, generated in 2018 by Cython 0.28.5.
# That code reaches into CPython internals that Python 3.11 changed, so every
# scan failed to compile ("longintrepr.h: No such file or directory", then
# more). Regenerating it with a current Cython would need scan_perform.pyx,
# which neither Theano 1.0.5's wheel nor its sdist contains; so the shipped C is
# compiled with the four places adapted, each behind PY_VERSION_HEX >= 3.11
# (the code for Python 3.10 stays as shipped):
#  - longintrepr.h moved to cpython/, and Python.h includes it itself: not
#    included again;
#  - PyCode_New takes two more arguments (qualname, exception table): the
#    function's name and an empty table (Cython's code objects hold no bytecode:
#    they name a function and a line, for tracebacks);
#  - PyFrameObject moved to an internal header (frame->f_lineno, which gives a
#    traceback its line in scan_perform.pyx): that header is included, as
#    Cython's later releases do for 3.11;
#  - the thread state lost exc_type/exc_traceback and recursion_depth: Cython's
#    own switches CYTHON_FAST_THREAD_STATE and CYTHON_FAST_PYCALL are turned off,
#    so the module uses the public API for both (PyErr_GetExcInfo, PyObject_Call).
# Theano's scan_perform_ext still compiles, versions (0.296, checked against the
# module's get_version()) and loads the module; only its source is adapted, by
# wrapping the compiler for the module named scan_perform. Should g++ still
# refuse it, scan runs Theano's Python implementation (slower, same results),
# said once on stderr instead of every scan failing.
_PY311 = "#if PY_VERSION_HEX >= 0x030B0000\n"
SCAN_PERFORM_EDITS = [
    ('#include "Python.h"\n',
     '#include "Python.h"\n' + _PY311 + "#define CYTHON_FAST_THREAD_STATE 0\n"
     "#define CYTHON_FAST_PYCALL 0\n#define Py_BUILD_CORE 1\n"
     '#include "internal/pycore_frame.h"\n#undef Py_BUILD_CORE\n#endif\n'),
    ('  #include "longintrepr.h"\n',
     "  #if PY_VERSION_HEX < 0x030B0000\n" + '  #include "longintrepr.h"\n' + "  #endif\n"),
    ("  #define __Pyx_PyCode_New(a, k, l, s, f, code, c, n, v, fv, cell, fn, name, fline, lnos)\\\n"
     "          PyCode_New(a, k, l, s, f, code, c, n, v, fv, cell, fn, name, fline, lnos)\n",
     "  " + _PY311 +
     "  #define __Pyx_PyCode_New(a, k, l, s, f, code, c, n, v, fv, cell, fn, name, fline, lnos)\\\n"
     "          PyCode_New(a, k, l, s, f, code, c, n, v, fv, cell, fn, name, name, fline, lnos,"
     " __pyx_empty_bytes)\n  #else\n"
     "  #define __Pyx_PyCode_New(a, k, l, s, f, code, c, n, v, fv, cell, fn, name, fline, lnos)\\\n"
     "          PyCode_New(a, k, l, s, f, code, c, n, v, fv, cell, fn, name, fline, lnos)\n"
     "  #endif\n"),
]
_scan_c_failed = []


def scan_perform_source(code):
    """Theano 1.0.5's scan_perform.c made to compile on Python 3.11 (any other
    source unchanged; ValueError if one of the places is not found once)."""
    if not code.startswith("/* Generated by Cython 0.28.5 */"):
        return code
    for old, new in SCAN_PERFORM_EDITS:
        if code.count(old) != 1:
            raise ValueError("scan_perform.c: %r found %d times, not once"
                             % (old.strip(), code.count(old)))
        code = code.replace(old, new)
    return code


def register_scan_perform_shim():
    from theano.gof import cmodule
    original = cmodule.GCC_compiler.compile_str
    if getattr(original, "compat_shim", False):
        return

    def compile_str(module_name, src_code, *args, **kwargs):
        if module_name != "scan_perform":
            return original(module_name, src_code, *args, **kwargs)
        if _scan_c_failed:  # said once; Theano asks again for every scan
            raise ImportError(_scan_c_failed[0])
        try:
            return original(module_name, scan_perform_source(src_code), *args, **kwargs)
        except Exception as e:
            # g++'s first error (Theano prints the whole report to stdout)
            error = re.search(r"error: [^\n]{0,200}?(?=\.\s|$)", str(e))
            _scan_c_failed.append("compat: Theano's C scan (scan_perform.c) did not compile "
                                  "(%s): theano.scan runs its Python implementation"
                                  % (error.group(0) if error else type(e).__name__))
            print(_scan_c_failed[0], file=sys.stderr)
            raise ImportError(_scan_c_failed[0])

    compile_str.compat_shim = True
    cmodule.GCC_compiler.compile_str = staticmethod(compile_str)


# --- Shim 8: matrix products with an empty operand ---------------------------
# numpy 1.23 gives every array with a zero-length dimension the strides 0
# (numpy PR 21477); a copy of it too. Theano 1.0.5's BLAS ops (Dot22,
# Dot22Scalar, Gemm: every CPU product of two matrices) copy a matrix whose
# strides are not positive, then tell the BLAS how it is laid out from its
# strides, and find none of their layouts in strides 0: `T.dot` of an empty
# batch, `X[:0]`, a layer of 0 units raised "some matrix has no unit stride"
# (11 of Theano's own BLAS tests). Only the layout the BLAS is told changes:
# an empty matrix is described as C-contiguous, with leading dimensions the
# BLAS accepts. Its elements are never read, and the BLAS gives what numpy
# gives: an empty result, or, with an inner dimension of 0, zeros (Gemm: b*z).
# The ops' version gains a tag, so no module compiled before is reused.
EMPTY_MATRIX_STRIDES = """
        /* An empty matrix has strides 0 since numpy 1.23: C-contiguous ones instead. */
        npy_intp compat_Sx[2], compat_Sy[2], compat_Sz[2];
        if (PyArray_SIZE(%(_x)s) == 0) {
            compat_Sx[1] = type_size; compat_Sx[0] = type_size * (Nx[1] > 1 ? Nx[1] : 1);
            Sx = compat_Sx;
        }
        if (PyArray_SIZE(%(_y)s) == 0) {
            compat_Sy[1] = type_size; compat_Sy[0] = type_size * (Ny[1] > 1 ? Ny[1] : 1);
            Sy = compat_Sy;
        }
        if (PyArray_SIZE(%(_zout)s) == 0) {
            compat_Sz[1] = type_size; compat_Sz[0] = type_size * (Nz[1] > 1 ? Nz[1] : 1);
            Sz = compat_Sz;
        }
"""


def register_empty_matrix_shim():
    from theano.tensor.blas import GemmRelated
    if GemmRelated.encode_strides_in_unit.startswith(EMPTY_MATRIX_STRIDES):
        return
    GemmRelated.encode_strides_in_unit = EMPTY_MATRIX_STRIDES + GemmRelated.encode_strides_in_unit
    original = GemmRelated.build_gemm_version

    def build_gemm_version(self):
        return original(self) + ("compat-empty-matrices",)

    GemmRelated.build_gemm_version = build_gemm_version


# --- Shim 9: SciPy's convolution helpers, moved in SciPy 1.8 ------------------
# Theano 1.0.5's convolutions (theano.tensor.nnet.conv and abstract_conv) take
# private helpers from scipy.signal.signaltools and scipy.signal.sigtools.
# SciPy 1.8 moved the code to scipy.signal._signaltools and _sigtools and left
# the old modules as shells without these names: Theano's import of them
# failed, and Theano took SciPy for missing. The Python implementation of
# conv2d (DebugMode's reference, and any graph compiled without the C
# convolutions, e.g. optimizer=None) raised NotImplementedError, and 21 of
# Theano's own CorrMM tests skipped themselves. The same functions, from where
# SciPy keeps them now.
def register_scipy_signal_shim():
    from theano.tensor.nnet import abstract_conv, conv
    if abstract_conv.imported_scipy_signal and conv.imported_scipy_signal:
        return
    try:
        from scipy.signal._signaltools import _bvalfromboundary, _valfrommode, convolve
        from scipy.signal._sigtools import _convolve2d
    except ImportError:
        return  # no SciPy, or another layout: Theano's NotImplementedError stands
    for module in (abstract_conv, conv):
        module._valfrommode, module._bvalfromboundary = _valfrommode, _bvalfromboundary
        module._convolve2d = _convolve2d
        module.imported_scipy_signal = True
    abstract_conv.convolve = convolve


# --- When they are applied ---------------------------------------------------
# THEANO_FLAGS as the user set it (None: unset), while Theano is being imported
# with our defaults in it: programs this one starts get the user's value back.
_user_flags = []


def before_theano():
    """What must hold before Theano's configuration is read."""
    check_versions()
    if not _user_flags:  # (install() and the startup hook may both come here)
        _user_flags.append(os.environ.get("THEANO_FLAGS"))
    set_default_flags()
    translate_old_gpu_device()
    register_pygpu_failure_filter()


def restore_user_flags():
    """THEANO_FLAGS back to the user's value: Theano has read it at import
    (theano.configparser), and the defaults are this process's only."""
    if _user_flags:
        flags = _user_flags.pop()
        if flags is None:
            os.environ.pop("THEANO_FLAGS", None)
        else:
            os.environ["THEANO_FLAGS"] = flags


def after_theano():
    """What patches Theano itself (idempotent)."""
    restore_user_flags()
    register_downsample_shim()
    register_cache_shims()
    register_cache_key_shim()
    register_opencl_kernel_shim()
    register_scan_perform_shim()
    register_empty_matrix_shim()
    register_scipy_signal_shim()


def install(script=False):
    """Apply every shim now, importing Theano (no-op when already done).

    script: this process is the command line, which reports a GPU that cannot
    start itself (Theano's log of it is silenced), and exits quietly with
    status 130 on a Ctrl-C while Theano and Lasagne are being imported.

    On a Python or numpy Theano cannot use, a program exits with one line on
    stderr (a REPL gets UnsupportedStack, an ImportError). A Theano
    imported before the shims, by a Python without the startup hook, cannot
    be repaired in the same process."""
    global _quiet_gpu
    _quiet_gpu = script
    if script:
        import signal
        signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))
    if "theano" not in sys.modules:
        try:
            before_theano()
        except UnsupportedStack as e:
            if hasattr(sys, "ps1") or sys.flags.interactive:
                raise  # a REPL keeps running: a plain ImportError
            raise SystemExit("error: %s" % e)  # a program: one line, exit status 1
    try:
        import theano  # noqa: F401
    except ValueError as e:
        # Theano refuses a setting of THEANO_FLAGS or .theanorc at import with
        # a ValueError that says which (device=foo, a base_compiledir it cannot
        # write): for the command line, that sentence is the error.
        restore_user_flags()
        if not script:
            raise
        raise SystemExit("error: Theano cannot start: %s (THEANO_FLAGS or .theanorc)"
                         % " ".join(str(e).split()))
    after_theano()
