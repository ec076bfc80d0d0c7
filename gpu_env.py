#!/usr/bin/env python3
"""Make Theano 1.0.5's GPU back end (libgpuarray 0.7 / pygpu) find a 2026 CUDA.

Why this module exists: libgpuarray dlopen()s exactly ``libcuda.so``,
``libnvrtc.so`` and ``libcublas.so`` -- unversioned names -- while current
NVIDIA drivers, CUDA toolkits and the ``nvidia-*`` pip wheels ship only
versioned sonames (``libcuda.so.1``, ``libnvrtc.so.12``, ``libcublas.so.13``).
Only the dynamic linker's search path can redirect those names, and it is read
once, when a process starts. So this module:

1. finds the driver (libcuda.so.1), NVRTC and cuBLAS/cuBLASLt;
2. checks that NVRTC is not newer than the driver (else every kernel fails to
   link with CUDA_ERROR_UNSUPPORTED_PTX_VERSION);
3. makes the three unversioned links in a private directory;
4. builds the environment of a new process: LD_LIBRARY_PATH and THEANO_FLAGS
   (device=cuda, floatX=float32, dnn.enabled=False, a compile cache of its own).

Use it from a script, before Theano picks its device::

    import gpu_env
    gpu_env.reexec_with_cuda(sys.argv)   # re-executes Python once, with the env
    import theano
    print(gpu_env.gpu_in_use())          # the GPU's name, or GpuEnvError

or from a shell: ``eval "$(python gpu_env.py)"`` (prints ``export`` lines, or
one line on stderr saying what is missing, ``false`` on stdout so that the eval
fails too, and exits 1).

Only the standard library is imported here: no Theano, no numpy.
"""
import argparse
import ctypes
import glob
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections import namedtuple

import compat

__all__ = ["GpuEnvError", "CudaLibs", "discover", "check_build_requirements",
           "make_links", "cuda_environment", "reexec_with_cuda", "gpu_in_use",
           "MARKER"]


class GpuEnvError(RuntimeError):
    """The GPU can't be used; the message says what is missing and what to do."""


# The environment variable that says "this process already has the CUDA
# environment": reexec_with_cuda() re-executes at most once because of it.
MARKER = "FLM_CUDA_ENV"

APP = "feedforward_lasagne_mnist"

# The three names libgpuarray 0.7.6 dlopen()s, and the versioned files the
# links point to. (NCCL and OpenCL, which it also tries, are optional.)
LINK_NAMES = ("libcuda.so", "libnvrtc.so", "libcublas.so")

# Theano flags we must own. device: the point of the exercise (a user's
# device=cudaN is kept). floatX: the tutorial trains in float32 on the GPU.
# dnn.enabled: Theano 1.0.5 knows cuDNN 5-7 only; today's cuDNN 8/9 would make
# it fail, and the MLP needs no convolution. base_compiledir: the GPU ops are
# compiled against libgpuarray's headers; a cache of their own keeps them apart
# from the CPU run's modules. compiledir/init_gpu_device/contexts would
# override or fight those, so the user's values of these are dropped.
OWNED_FLAGS = ("device", "floatX", "dnn.enabled", "base_compiledir")
DROPPED_FLAGS = ("compiledir", "init_gpu_device", "contexts")


# ------------------------------------------------------------- where to look
# Each default below is only a default: every search root is a parameter of
# discover()/cuda_environment(), so tests point them at fake trees.

# Where NVIDIA's installers, distributions and container runtimes put
# libcuda.so.1 (the driver's library is never in a toolkit or a wheel).
DRIVER_DIRS = (
    "/usr/lib/x86_64-linux-gnu",        # Debian/Ubuntu driver packages
    "/usr/lib64",                       # RHEL/Fedora/SUSE, runfile installs
    "/usr/lib",
    "/usr/local/nvidia/lib64",          # nvidia-container-toolkit mounts
    "/usr/local/nvidia/lib",
    "/usr/lib/wsl/lib",                 # WSL2
    "/run/opengl-driver/lib",           # NixOS
)

# Python environments other than this one may hold the nvidia-* wheels (on a
# GPU machine: the one PyTorch came with). Globbed; missing ones are skipped.
SITE_GLOBS = (
    "/opt/*/.venv/lib/python3*/site-packages",
    "/opt/*/venv/lib/python3*/site-packages",
    "/opt/*/lib/python3*/site-packages",
    "/usr/local/lib/python3*/dist-packages",
    "/usr/local/lib/python3*/site-packages",
    "/usr/lib/python3/dist-packages",
    "~/.local/lib/python3*/site-packages",
)


def default_toolkit_roots(env):
    """$CUDA_HOME/$CUDA_PATH/$CUDA_ROOT first, then /usr/local/cuda*, newest first."""
    roots = [env[k] for k in ("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT") if env.get(k)]
    versioned = sorted(glob.glob("/usr/local/cuda-*"), key=_version_key, reverse=True)
    return roots + ["/usr/local/cuda"] + versioned + ["/opt/cuda"]


def default_site_dirs(env):
    """This interpreter's sys.path, the active venv/conda, then SITE_GLOBS."""
    dirs = [p for p in sys.path if os.path.basename(p) in ("site-packages", "dist-packages")
            and os.path.isdir(p)]
    for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
        if env.get(var):
            dirs += glob.glob(os.path.join(env[var], "lib", "python3*", "site-packages"))
    home = env.get("HOME") or os.path.expanduser("~")
    for pattern in SITE_GLOBS:
        dirs += sorted(glob.glob(pattern.replace("~", home, 1)))
    return dirs


def toolkit_lib_dirs(root):
    """A CUDA toolkit keeps its libraries in lib64 (a link to targets/...) or lib."""
    return [os.path.join(root, sub) for sub in
            ("lib64", "lib", os.path.join("targets", "x86_64-linux", "lib"))]


def wheel_lib_dirs(site_dir):
    """nvidia-* wheels: nvidia/cublas/lib, nvidia/cuda_nvrtc/lib (CUDA 12) or
    nvidia/cu13/lib (CUDA 13)."""
    return sorted(glob.glob(os.path.join(site_dir, "nvidia", "*", "lib")))


# ------------------------------------------------------------ ldconfig cache
# The dynamic linker's own cache is the truth about what a plain dlopen()
# finds; `ldconfig -p` prints it ("libcuda.so.1 (libc6,x86-64) => /path").

def read_ldconfig():
    for exe in ("/sbin/ldconfig", "/usr/sbin/ldconfig", "ldconfig"):
        try:
            return subprocess.run([exe, "-p"], stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, universal_newlines=True,
                                  timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            continue
    return ""


def parse_ldconfig(text):
    """[(name, path)] of the 64-bit entries of `ldconfig -p` output."""
    entries = []
    for line in text.splitlines():
        m = re.match(r"\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S.*)$", line)
        if m and "64" in m.group(2):
            entries.append((m.group(1), m.group(3).strip()))
    return entries


# ------------------------------------------------------------------ versions
# NVRTC emits PTX of its own CUDA release; a driver of an older release can't
# load it. Versions come from the libraries themselves when they load
# (nvrtcVersion, cuDriverGetVersion), else from file names.

def _version_key(path):
    return tuple(int(n) for n in re.findall(r"\d+", os.path.basename(path)))


def cuda_driver_version(libcuda):
    """(major, minor) of the CUDA release the driver supports, or None."""
    try:
        lib = ctypes.CDLL(libcuda)
        v = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(v)) == 0 and v.value > 0:
            return (v.value // 1000, v.value % 1000 // 10)
    except (OSError, AttributeError):
        pass
    try:  # nvidia-smi's banner says "CUDA Version: 12.4"
        out = subprocess.run(["nvidia-smi"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             universal_newlines=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def nvrtc_library_version(path):
    """(major, minor) from nvrtcVersion(), or None when the file doesn't load."""
    try:
        lib = ctypes.CDLL(path)
        major, minor = ctypes.c_int(0), ctypes.c_int(0)
        if lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor)) == 0:
            return (major.value, minor.value)
    except (OSError, AttributeError):
        pass
    return None


def _fmt(version):
    return ".".join(str(n) for n in version if n is not None) if version else "?"


# ----------------------------------------------------------------- discovery
# A found library: the file to link to, its (major, minor) (minor may be None),
# and the directory that must also be on LD_LIBRARY_PATH (libnvrtc-builtins
# for NVRTC, libcublasLt for cuBLAS: each is loaded from the search path).
Lib = namedtuple("Lib", "path version companion_dir")
CudaLibs = namedtuple("CudaLibs", "libcuda driver_version nvrtc cublas")


def _versioned_files(dirs, stem):
    """[(path, major, minor_or_None)] for files named `stem.so.N[.M...]` in dirs.

    Several names of one file (libnvrtc.so.12 -> libnvrtc.so.12.4.127) count
    once: the shortest name (the soname) is kept, with the longest's minor.
    """
    rx = re.compile(r"^%s\.so\.(\d+)(?:\.(\d+))?[.\d]*$" % re.escape(stem))
    groups, order = {}, []
    for d in dirs:
        if not os.path.isdir(d) or os.path.basename(d) == "stubs":
            continue  # toolkits' lib64/stubs/libcuda.so is a link-time stand-in
        for name in sorted(os.listdir(d)):
            m = rx.match(name)
            path = os.path.join(d, name)
            if not m or not os.path.isfile(path):
                continue
            real = os.path.realpath(path)
            if real not in groups:
                groups[real] = []
                order.append(real)
            groups[real].append((path, int(m.group(1)),
                                 int(m.group(2)) if m.group(2) else None))
    found = []
    for real in order:
        names = sorted(groups[real], key=lambda t: len(os.path.basename(t[0])))
        minors = [t[2] for t in names if t[2] is not None]
        found.append((names[0][0], names[0][1], minors[-1] if minors else None))
    return found


def _dedupe(dirs):
    seen, out = set(), []
    for d in dirs:
        key = os.path.realpath(d) if d else d
        if d and key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _where(dirs, limit=6):
    shown = ", ".join(dirs[:limit])
    return shown + (" and %d more" % (len(dirs) - limit) if len(dirs) > limit else "")


def find_libcuda(ldconfig_entries, driver_dirs):
    """The driver's libcuda.so.1: the linker cache first, then the usual dirs."""
    for name, path in ldconfig_entries:
        if name == "libcuda.so.1" and os.path.isfile(path) and "/stubs/" not in path:
            return path
    for d in driver_dirs:
        path = os.path.join(d, "libcuda.so.1")
        if os.path.isfile(path):
            return path
    raise GpuEnvError(
        "no NVIDIA driver library libcuda.so.1 (looked in the ldconfig cache and %s): "
        "install the NVIDIA driver (nvidia-smi must work), or in a container start it "
        "with the GPU exposed (docker run --gpus all)" % _where(list(driver_dirs)))


def _pip_hint(what, driver):
    """The pip wheels matching a driver's CUDA: nvidia-*-cu12 for CUDA 12, the
    unsuffixed nvidia-* 13.x wheels for CUDA 13."""
    major, minor = driver or (12, None)
    name = {"nvrtc": "nvidia-cuda-nvrtc", "cublas": "nvidia-cublas"}[what]
    if major < 13:
        name += "-cu%d" % max(major, 11)
    if what == "nvrtc" and minor is not None:  # NVRTC must match the driver's minor too
        return "pip install '%s==%d.%d.*'" % (name, major, minor)
    return "pip install '%s==%d.*'" % (name, major)


def find_nvrtc(lib_dirs, driver, nvrtc_version=nvrtc_library_version, where=None):
    """The newest NVRTC not newer than the driver, with its libnvrtc-builtins."""
    candidates = []
    for path, major, minor in _versioned_files(lib_dirs, "libnvrtc"):
        version = nvrtc_version(path) or (major, minor)
        builtins = _builtins_dir(path, version, lib_dirs)
        if builtins and version[1] is None:  # the builtins' file name has the minor
            version = (major, builtins[1])
        candidates.append(Lib(path, version, builtins and builtins[0]))
    if not candidates:
        raise GpuEnvError(
            "no CUDA NVRTC library libnvrtc.so.N (looked in %s): %s, or install the "
            "CUDA toolkit and set CUDA_HOME" % (where or _where(lib_dirs),
                                                _pip_hint("nvrtc", driver)))
    usable = [c for c in candidates if driver is None or _not_newer(c.version, driver)]
    if not usable:
        oldest = min(candidates, key=_order)
        raise GpuEnvError(
            "NVRTC %s (%s) is newer than the driver's CUDA %s: install an NVRTC <= %s "
            "(%s) or update the NVIDIA driver" % (
                _fmt(oldest.version), oldest.path, _fmt(driver), _fmt(driver),
                _pip_hint("nvrtc", driver)))
    best = max(usable, key=_order)  # max() keeps the first of equals: search order
    if not best.companion_dir:
        raise GpuEnvError(
            "NVRTC %s (%s) has no libnvrtc-builtins.so.%s beside it, which it loads at "
            "run time: reinstall it (%s)" % (_fmt(best.version), best.path,
                                             _fmt(best.version), _pip_hint("nvrtc", driver)))
    return best


def _order(lib):
    return (lib.version[0], lib.version[1] or 0)


def _not_newer(version, driver):
    if version[0] != driver[0]:
        return version[0] < driver[0]
    return version[1] is None or version[1] <= driver[1]


def _builtins_dir(nvrtc_path, version, lib_dirs):
    """(dir, minor) of libnvrtc-builtins.so.MAJOR.MINOR: beside NVRTC, or, when
    the minor is known, anywhere in lib_dirs. None when there is none."""
    major, minor = version
    rx = re.compile(r"^libnvrtc-builtins\.so\.%d\.(%s)(\.\d+)*$"
                    % (major, minor if minor is not None else r"\d+"))
    here = os.path.dirname(nvrtc_path)
    dirs = [here] if minor is None else _dedupe([here] + list(lib_dirs))
    for d in dirs:
        if os.path.isdir(d):
            minors = sorted(int(m.group(1)) for m in map(rx.match, os.listdir(d)) if m)
            if minors:
                return d, minors[-1]
    return None


def find_cublas(lib_dirs, driver, where=None):
    """The newest cuBLAS whose major the driver supports, with its cuBLASLt."""
    candidates = [Lib(p, (major, minor), None)
                  for p, major, minor in _versioned_files(lib_dirs, "libcublas")]
    if not candidates:
        raise GpuEnvError(
            "no cuBLAS library libcublas.so.N (looked in %s): %s, or install the CUDA "
            "toolkit and set CUDA_HOME" % (where or _where(lib_dirs),
                                           _pip_hint("cublas", driver)))
    # cuBLAS follows CUDA's minor-version compatibility: any 12.x runs on a 12.y driver.
    usable = [c for c in candidates if driver is None or c.version[0] <= driver[0]]
    if not usable:
        c = min(candidates, key=_order)
        raise GpuEnvError(
            "cuBLAS %s (%s) needs a driver for CUDA %d, but the driver's CUDA is %s: "
            "install a cuBLAS for CUDA %d (%s) or update the NVIDIA driver" % (
                _fmt(c.version), c.path, c.version[0], _fmt(driver), driver[0],
                _pip_hint("cublas", driver)))
    best = max(usable, key=_order)
    lts = _versioned_files(_dedupe([os.path.dirname(best.path)] + list(lib_dirs)), "libcublasLt")
    lts = [p for p, major, _ in lts if major == best.version[0]]
    if not lts:
        raise GpuEnvError(
            "cuBLAS %s (%s) has no libcublasLt.so.%d beside it, which it loads at run "
            "time: reinstall cuBLAS (%s)" % (_fmt(best.version), best.path, best.version[0],
                                             _pip_hint("cublas", driver)))
    return best._replace(companion_dir=os.path.dirname(lts[0]))


def cuda_lib_dirs(env, toolkit_roots=None, site_dirs=None, ldconfig_entries=()):
    """Where NVRTC and cuBLAS may be, in order: the user's LD_LIBRARY_PATH, the
    toolkits, the pip wheels, the linker cache's directories. Returns the
    existing directories and a description of the search for error messages."""
    if toolkit_roots is None:
        toolkit_roots = default_toolkit_roots(env)
    if site_dirs is None:
        site_dirs = default_site_dirs(env)
    user = [d for d in env.get("LD_LIBRARY_PATH", "").split(":") if d]
    dirs = list(user)
    for root in toolkit_roots:
        dirs += toolkit_lib_dirs(root)
    for site in site_dirs:
        dirs += wheel_lib_dirs(site)
    dirs += [os.path.dirname(p) for name, p in ldconfig_entries
             if name.startswith(("libnvrtc.so.", "libcublas.so."))]
    roots = [r for r in _dedupe(list(toolkit_roots)) if os.path.isdir(r)]
    sites = _dedupe(list(site_dirs))
    where = "; ".join(part for part in (
        user and "LD_LIBRARY_PATH (%s)" % _where(user),
        roots and "toolkits %s" % _where(roots),
        "nvidia/*/lib of the pip wheels in %d site-packages dirs%s" % (
            len(sites), " (%s)" % _where(sites, 3) if sites else ""),
        "the ldconfig cache") if part)
    return [d for d in _dedupe(dirs) if os.path.isdir(d)], where


def discover(env=None, ldconfig_output=None, driver_dirs=DRIVER_DIRS, toolkit_roots=None,
             site_dirs=None, driver_version=cuda_driver_version,
             nvrtc_version=nvrtc_library_version):
    """Find libcuda.so.1, NVRTC and cuBLAS; raise GpuEnvError naming what is missing."""
    env = os.environ if env is None else env
    entries = parse_ldconfig(read_ldconfig() if ldconfig_output is None else ldconfig_output)
    libcuda = find_libcuda(entries, driver_dirs)
    driver = driver_version(libcuda)
    dirs, where = cuda_lib_dirs(env, toolkit_roots, site_dirs, entries)
    nvrtc = find_nvrtc(dirs, driver, nvrtc_version, where)
    cublas = find_cublas(dirs, driver, where)
    return CudaLibs(libcuda, driver, nvrtc, cublas)


# ---------------------------------------------------------- build toolchain
# Theano compiles each GPU op as a C++ Python extension at run time: it needs
# g++, Python.h, libgpuarray's headers (libgpuarray-dev) and -lgpuarray, and
# pygpu 0.7.x. Checked here so that a missing one is one clear line instead of
# Theano's "Could not initialize pygpu" traceback and a quiet CPU fallback.

def _env_dirs(env, *names):
    return [d for n in names for d in env.get(n, "").split(":") if d]


def check_build_requirements(env=None, include_dirs=None, library_dirs=None,
                             python_include=None, pygpu_dir=None, which=shutil.which):
    env = os.environ if env is None else env
    flags = compat.parse_flags(env.get("THEANO_FLAGS", ""))
    cxx = dict(flags).get("cxx", "g++")
    if not cxx or not which(cxx.split()[0], path=env.get("PATH", os.defpath)):
        raise GpuEnvError("no C++ compiler %r on PATH: Theano compiles its GPU ops with it "
                          "(apt-get install g++)" % (cxx or "g++"))
    if python_include is None:
        python_include = sysconfig.get_paths()["include"]
    if not os.path.isfile(os.path.join(python_include, "Python.h")):
        raise GpuEnvError("no Python.h in %s: Theano compiles its ops against it (apt-get "
                          "install python3-dev)" % python_include)
    if include_dirs is None:
        include_dirs = _env_dirs(env, "CPATH", "CPLUS_INCLUDE_PATH", "C_INCLUDE_PATH") + \
            ["/usr/local/include", "/usr/include"]
    if not any(os.path.isfile(os.path.join(d, "gpuarray", "types.h")) for d in include_dirs):
        raise GpuEnvError("no libgpuarray headers gpuarray/types.h (looked in %s): apt-get "
                          "install libgpuarray-dev" % _where(include_dirs))
    if library_dirs is None:
        library_dirs = _env_dirs(env, "LIBRARY_PATH") + \
            ["/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib"]
    if not any(os.path.exists(os.path.join(d, "libgpuarray.so")) for d in library_dirs):
        raise GpuEnvError("no libgpuarray.so to link with -lgpuarray (looked in %s): apt-get "
                          "install libgpuarray-dev" % _where(library_dirs))
    if pygpu_dir is None:
        spec = importlib.util.find_spec("pygpu")
        pygpu_dir = os.path.dirname(spec.origin) if spec and spec.origin else None
    version = _pygpu_version(pygpu_dir) if pygpu_dir else None
    if version is None:
        raise GpuEnvError("pygpu is not importable by %s: apt-get install python3-pygpu "
                          "(0.7.x), and make the venv with --system-site-packages"
                          % sys.executable)
    if not version.startswith("0.7."):
        raise GpuEnvError("pygpu %s in %s: Theano 1.0.5 needs pygpu 0.7.x (Debian's "
                          "python3-pygpu 0.7.6)" % (version, pygpu_dir))


def _pygpu_version(pygpu_dir):
    """pygpu's version from its _version.py, without importing it (nor numpy)."""
    try:
        with open(os.path.join(pygpu_dir, "_version.py")) as f:
            m = re.search(r'"version":\s*"([^"]+)"', f.read())
    except OSError:
        return None
    return m.group(1) if m else "unknown"


# --------------------------------------------------------------------- links
# The unversioned names, in a directory of our own (never in system dirs: no
# root needed, nothing else affected). Each link is made under a temporary
# name and renamed over the old one, so a concurrent run never sees a
# half-made directory and re-runs simply refresh the links.

def default_cache_dir(env):
    base = env.get("XDG_CACHE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".cache")
    return os.path.join(base, APP)


def make_links(link_dir, targets):
    """Make link_dir/NAME -> PATH for each (NAME, PATH) in targets, atomically."""
    try:
        os.makedirs(link_dir, exist_ok=True)
        for name, target in targets:
            tmp = os.path.join(link_dir, ".%s.%d.tmp" % (name, os.getpid()))
            if os.path.lexists(tmp):
                os.remove(tmp)
            os.symlink(os.path.abspath(target), tmp)
            os.replace(tmp, os.path.join(link_dir, name))
    except OSError as e:
        raise GpuEnvError("cannot make the CUDA library links in %s (%s): pass another "
                          "directory (link_dir / --link-dir)" % (link_dir, e))


# --------------------------------------------------------------- environment

def cuda_device(user_flags):
    """The CUDA device to use: cudaN (or the 2016 gpuN) as THEANO_FLAGS say,
    else cuda; any other device (OpenCL's openclN:M) is refused."""
    device = compat.flags_dict(user_flags).get("device") or "cpu"
    cuda = re.match(r"^(cuda|gpu)(\d*)$", device)
    if compat.is_gpu_device(device) and not cuda:
        raise GpuEnvError("device=%s: only Theano's CUDA backend is set up here (device=cuda "
                          "or cudaN); change THEANO_FLAGS or .theanorc" % device)
    return "cuda" + cuda.group(2) if cuda else "cuda"


def gpu_theano_flags(user_flags, compiledir):
    """Our GPU flags first, then the user's entries that don't conflict."""
    user = compat.parse_flags(user_flags)
    ours = [("device", cuda_device(user_flags)),
            ("floatX", "float32"), ("dnn.enabled", "False"),
            ("base_compiledir", compiledir)]
    kept = [(k, v) for k, v in user if k not in OWNED_FLAGS + DROPPED_FLAGS]
    return ",".join(k if v is None else "%s=%s" % (k, v) for k, v in ours + kept)


def library_path(link_dir, libs, existing):
    """The link dir first; then where cuBLASLt and nvrtc-builtins live, and the
    driver's dir (its PTX JIT compiler, libnvidia-ptxjitcompiler, is loaded
    from there) unless it is a system dir; then the user's value."""
    system = {"/lib", "/usr/lib", "/lib64", "/usr/lib64",
              "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu"}
    driver_dir = os.path.dirname(libs.libcuda)
    dirs = [link_dir, libs.cublas.companion_dir, libs.nvrtc.companion_dir]
    if driver_dir not in system:
        dirs.append(driver_dir)
    return ":".join(_dedupe(dirs + [d for d in existing.split(":") if d]))


def cuda_environment(env=None, link_dir=None, compiledir=None, check_build=True,
                     **search_roots):
    """A copy of `env` (default os.environ) with LD_LIBRARY_PATH, THEANO_FLAGS
    and MARKER set for a process that runs Theano on the GPU.

    search_roots: ldconfig_output, driver_dirs, toolkit_roots, site_dirs,
    driver_version, nvrtc_version (see discover) and include_dirs,
    library_dirs, python_include, pygpu_dir, which (see check_build_requirements).
    Raises GpuEnvError with a one-line, actionable message.
    """
    return _prepare(env, link_dir, compiledir, check_build, **search_roots)[0]


def _prepare(env, link_dir, compiledir, check_build, **search_roots):
    """cuda_environment(), also returning what discover() found (for the CLI)."""
    env = dict(os.environ if env is None else env)
    build_keys = ("include_dirs", "library_dirs", "python_include", "pygpu_dir", "which")
    build_args = {k: search_roots.pop(k) for k in build_keys if k in search_roots}
    cuda_device(env.get("THEANO_FLAGS", ""))  # an OpenCL device: say so before looking
    libs = discover(env, **search_roots)
    if check_build:
        check_build_requirements(env, **build_args)
    cache = default_cache_dir(env)
    link_dir = os.path.abspath(link_dir or os.path.join(cache, "gpu-libs"))
    compiledir = os.path.abspath(compiledir or os.path.join(cache, "theano-gpu"))
    for path in (link_dir, compiledir):
        if "," in path or ":" in path:
            raise GpuEnvError("%r can't be used: THEANO_FLAGS and LD_LIBRARY_PATH can't "
                              "hold ',' or ':' in a path; pass another directory" % path)
    make_links(link_dir, [("libcuda.so", libs.libcuda), ("libnvrtc.so", libs.nvrtc.path),
                          ("libcublas.so", libs.cublas.path)])
    env["LD_LIBRARY_PATH"] = library_path(link_dir, libs, env.get("LD_LIBRARY_PATH", ""))
    env["THEANO_FLAGS"] = gpu_theano_flags(env.get("THEANO_FLAGS", ""), compiledir)
    env[MARKER] = link_dir
    return env, libs


def reexec_with_cuda(argv=None, env=None, execve=os.execve, **search_roots):
    """Re-execute this Python program with the CUDA environment, once.

    LD_LIBRARY_PATH is read by the dynamic linker when a process starts, so
    the only way to give it to this program is to start it again. argv: the
    interpreter's arguments (default: sys.orig_argv[1:]; sys.argv works for a
    script). Returns False, without exec, when MARKER says this process is the
    re-executed one; raises GpuEnvError when the libraries are missing or when
    it already re-executed and Theano still isn't on a GPU (no silent CPU run).
    """
    env = os.environ if env is None else env
    if env.get(MARKER):
        theano = sys.modules.get("theano")
        device = getattr(getattr(theano, "config", None), "device", "cuda")
        if not compat.is_gpu_device(device):
            raise GpuEnvError(
                "already re-executed with the CUDA environment (%s=%s) but Theano's device "
                "is %r: THEANO_FLAGS was overridden (unset %s to start over)"
                % (MARKER, env[MARKER], device, MARKER))
        return False
    new_env = cuda_environment(env, **search_roots)
    if argv is None:
        argv = getattr(sys, "orig_argv", [sys.executable] + sys.argv)[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        execve(sys.executable, [sys.executable] + list(argv), new_env)
    except OSError as e:
        raise GpuEnvError("cannot re-execute %s with the CUDA environment: %s"
                          % (sys.executable, e))
    return True  # only reached when execve is a stand-in (tests)


def gpu_in_use(theano_module=None):
    """The name of the GPU Theano computes on, after `import theano`.

    Returns None when Theano was not asked for a GPU (device=cpu). When it was
    (any other device) but pygpu did not initialise -- Theano then only logs
    "Could not initialize pygpu, support disabled" and runs on the CPU --
    raises GpuEnvError with pygpu's own reason.
    """
    if theano_module is None:
        import theano as theano_module
    device = theano_module.config.device
    if not compat.is_gpu_device(device):
        return None
    ga = getattr(theano_module, "gpuarray", None)
    if ga is None:  # a submodule: imported by `import theano`, but be sure
        import theano.gpuarray as ga
    if not getattr(ga, "pygpu_activated", False):
        raise GpuEnvError("Theano was asked for device=%s but could not initialise pygpu (%s): "
                          "run `python gpu_env.py` to check the CUDA libraries, and start "
                          "the program through gpu_env.reexec_with_cuda()"
                          % (device, _pygpu_failure(ga, device)))
    ctx = ga.get_context(None)
    return str(getattr(ctx, "devname", device))


def _pygpu_failure(ga, device):
    """Why pygpu can't initialise: try once more, to get the error's text."""
    pygpu = getattr(ga, "pygpu", None)
    if pygpu is None:
        return "pygpu is not importable: apt-get install python3-pygpu libgpuarray3"
    try:
        pygpu.init(device)
    except Exception as e:  # pygpu raises GpuArrayException and others
        text = e.args[0] if e.args else str(e)
        if isinstance(text, bytes):  # GpuArrayException carries bytes
            text = text.decode("utf-8", "replace")
        lines = str(text).strip().splitlines()
        return "%s: %s" % (type(e).__name__, lines[0] if lines else "")
    return "it initialises now, so Theano's own checks failed: see its log above"


# ----------------------------------------------------------------------- CLI
# `eval "$(python gpu_env.py)"` sets up the current shell; on failure the
# one-line reason goes to stderr, the exit status is 1, and stdout is `false`,
# so that the eval itself fails: `eval "$(python gpu_env.py)" && python ...`
# never goes on to run on the CPU.

def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--link-dir", help="directory for the unversioned links "
                        "(default ~/.cache/%s/gpu-libs)" % APP)
    parser.add_argument("--compiledir", help="Theano's base_compiledir for the GPU "
                        "(default ~/.cache/%s/theano-gpu)" % APP)
    parser.add_argument("--no-build-check", action="store_true",
                        help="don't check g++, Python.h, libgpuarray-dev and pygpu")
    args = parser.parse_args(argv)
    env = dict(os.environ)
    env.pop(MARKER, None)
    try:
        new, libs = _prepare(env, args.link_dir, args.compiledir, not args.no_build_check)
    except GpuEnvError as e:
        print("gpu_env: %s" % e, file=sys.stderr)
        print("false")  # so that `eval "$(python gpu_env.py)" && ...` stops here
        return 1
    print("# driver: %s (CUDA %s)" % (libs.libcuda, _fmt(libs.driver_version)))
    print("# NVRTC %s: %s" % (_fmt(libs.nvrtc.version), libs.nvrtc.path))
    print("# cuBLAS %s: %s" % (_fmt(libs.cublas.version), libs.cublas.path))
    for key in ("LD_LIBRARY_PATH", "THEANO_FLAGS", MARKER):
        print("export %s=%s" % (key, shlex.quote(new[key])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
