#!/usr/bin/env python3
"""Make Theano 1.0.5's GPU back end (libgpuarray 0.7 / pygpu) find a 2026 CUDA, or an
OpenCL device.

CUDA: libgpuarray dlopen()s exactly libcuda.so, libnvrtc.so and libcublas.so, but the
driver, toolkits and nvidia-* wheels ship only versioned names (libcuda.so.1, ...): this
finds them, checks them against the driver, links the old names in a folder of its own
and puts it on a new process's LD_LIBRARY_PATH (read only as a process starts), with GPU
THEANO_FLAGS. OpenCL: libgpuarray dlopen()s libOpenCL.so (the ICD loader, which finds
the drivers) and libclblast.so; this checks that both load and that the platform and
device exist, and sets THEANO_FLAGS. Standard library and compat only (no Theano, no
numpy). Details: docs/gpu.md.
"""
import argparse
import ctypes
import glob
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from collections import namedtuple

from . import compat


class GpuEnvError(RuntimeError):
    """The GPU can't be used; the one-line message says what is missing and what to do."""


MARKER = "FLM_GPU_ENV"  # set in the re-executed process, so that it re-executes once

# Theano flags we own: device (a user's cudaN is kept), floatX=float32 (the tutorial on
# the GPU), dnn.enabled=False (Theano 1.0.5 knows cuDNN 5-7 only; the MLP needs none),
# base_compiledir (a cache for GPU ops). The user's compiledir, init_gpu_device and
# contexts would fight these, so they are dropped.
OWNED_FLAGS = ("device", "floatX", "dnn.enabled", "base_compiledir")
DROPPED_FLAGS = ("compiledir", "init_gpu_device", "contexts")

# libcuda.so.1 when the linker cache lacks it (only the driver ships it): Debian/Ubuntu,
# RHEL/SUSE, nvidia-container-toolkit's mounts, WSL2, NixOS.
DRIVER_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/nvidia/lib64",
               "/usr/local/nvidia/lib", "/usr/lib/wsl/lib", "/run/opengl-driver/lib")
TOOLKIT_LIB_DIRS = ("lib64", "lib", "targets/x86_64-linux/lib")  # in each CUDA toolkit
# Other Pythons' site-packages that may hold nvidia-* wheels (on a GPU machine, the
# one PyTorch came with); globbed, missing ones skipped.
SITE_GLOBS = ("/opt/*/.venv/lib/python3*/site-packages", "/opt/*/venv/lib/python3*/site-packages",
              "/opt/*/lib/python3*/site-packages", "/usr/local/lib/python3*/dist-packages",
              "/usr/local/lib/python3*/site-packages", "/usr/lib/python3/dist-packages",
              "~/.local/lib/python3*/site-packages")
# Searched by the linker anyway: the driver's folder goes on LD_LIBRARY_PATH if not one.
SYSTEM_DIRS = [p + s for p in ("/", "/usr/") for s in ("lib", "lib64", "lib/x86_64-linux-gnu")]
# NVRTC and cuBLAS: the soname's stem; the companion each loads by name from its folder;
# whether the driver check goes to the minor version (NVRTC's, read off its companion's
# name); the pip wheel that ships it.
CudaLib = namedtuple("CudaLib", "stem companion checks_minor wheel")
CUDA_LIBS = {"NVRTC": CudaLib("libnvrtc", "libnvrtc-builtins", True, "nvidia-cuda-nvrtc"),
             "cuBLAS": CudaLib("libcublas", "libcublasLt", False, "nvidia-cublas")}

Lib = namedtuple("Lib", "path version")  # version: (major, minor) for NVRTC, (major,) for cuBLAS
CudaLibs = namedtuple("CudaLibs", "libcuda driver_version nvrtc cublas")


def _env_path(env, *names):
    return [d for n in names for d in env.get(n, "").split(":") if d]


def _dedupe(dirs):
    """dirs in order without repeats, a link and its target counting as one."""
    real = [os.path.realpath(d) for d in dirs]
    return [d for i, d in enumerate(dirs) if real.index(real[i]) == i]


def _where(items, limit=6):
    more = " and %d more" % (len(items) - limit) if len(items) > limit else ""
    return (", ".join(items[:limit]) or "none") + more


def _fmt(version):
    return ".".join(map(str, version)) if version else "?"


# --- Discovery and the version checks -----------------------------------------------
def ldconfig_entries(output=None):
    """[(soname, path)] of the linker cache's 64-bit entries, what a plain dlopen()
    finds (`ldconfig -p` lines: "libcuda.so.1 (libc6,x86-64) => /path")."""
    if output is None:
        try:  # /sbin: not on a user's PATH in Debian; elsewhere a link to /usr/sbin or /usr/bin
            output = subprocess.run(["/sbin/ldconfig", "-p"], stdout=subprocess.PIPE, timeout=30,
                                    stderr=subprocess.DEVNULL, universal_newlines=True).stdout
        except (OSError, subprocess.SubprocessError):
            output = ""
    return re.findall(r"^\s*(\S+)\s+\([^)]*64[^)]*\)\s+=>\s+(.*?)\s*$", output, re.M)


def cuda_driver_version(libcuda):
    """(major, minor) of the CUDA release the driver supports, or None if it won't load."""
    try:
        v = ctypes.c_int(0)
        if ctypes.CDLL(libcuda).cuDriverGetVersion(ctypes.byref(v)) == 0 and v.value > 0:
            return (v.value // 1000, v.value % 1000 // 10)
    except (OSError, AttributeError):
        pass
    return None


def _pip_hint(library, driver):
    """The wheel for the driver's CUDA: nvidia-*-cu12 for 12, unsuffixed for 13."""
    lib = CUDA_LIBS[library]
    major, minor = driver or (12, None)
    name = lib.wheel + ("-cu%d" % max(major, 11) if major < 13 else "")
    version = (major, minor) if lib.checks_minor and minor is not None else (major,)
    return "pip install '%s==%s.*'" % (name, _fmt(version))


def find_cuda_lib(library, dirs, driver, where):
    """The newest NVRTC or cuBLAS (`library`) in dirs, with its companion beside it, that the
    driver can use (the first found of equals). NVRTC must not be newer than the driver's
    major.minor (else CUDA_ERROR_UNSUPPORTED_PTX_VERSION), cuBLAS than its major."""
    stem, companion, to_minor, _ = CUDA_LIBS[library]
    minor_rx, found = r"\.(\d+)" if to_minor else "", []
    for d in dirs:
        names = sorted(os.listdir(d))
        for name in names:
            m = re.match(r"%s\.so\.(\d+)$" % stem, name)
            if not m or not os.path.isfile(os.path.join(d, name)):
                continue
            rx = re.compile(r"%s\.so\.%s%s$" % (companion, m.group(1), minor_rx))
            beside = [tuple(map(int, m.groups() + c.groups())) for c in map(rx.match, names) if c]
            if beside:
                found.append(Lib(os.path.join(d, name), max(beside)))
    if not found:
        raise GpuEnvError("no %s %s.so.N with the %s.so.N%s it loads beside it (looked in %s): "
                          "%s, or install the CUDA toolkit and set CUDA_HOME" % (
                              library, stem, companion, ".M" if to_minor else "", where,
                              _pip_hint(library, driver)))
    usable = [lib for lib in found if not driver or lib.version <= driver[:len(lib.version)]]
    if not usable:
        lib = min(found, key=lambda lib: lib.version)
        raise GpuEnvError("%s %s (%s) is newer than the driver's CUDA %s: install %s <= %s (%s) "
                          "or update the NVIDIA driver" % (
                              library, _fmt(lib.version), lib.path, _fmt(driver), library,
                              _fmt(driver[:len(lib.version)]), _pip_hint(library, driver)))
    return max(usable, key=lambda lib: lib.version)


def discover(env=None, ldconfig_output=None, driver_dirs=DRIVER_DIRS, toolkit_roots=None,
             site_dirs=None, driver_version=cuda_driver_version):
    """The driver's libcuda.so.1 (the linker cache's, else the first in driver_dirs),
    NVRTC and cuBLAS (looked for in LD_LIBRARY_PATH, the toolkits, the wheels'
    nvidia/*/lib, the folders of the linker cache's, in this order), or GpuEnvError.
    Every default is a parameter, for tests."""
    env = os.environ if env is None else env
    if toolkit_roots is None:
        toolkit_roots = [env[k] for k in ("CUDA_HOME", "CUDA_PATH") if env.get(k)] + [
            "/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"))
    if site_dirs is None:  # this Python's, the active venv's or conda env's, SITE_GLOBS
        site_dirs = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
        for var in ("VIRTUAL_ENV", "CONDA_PREFIX"):
            if env.get(var):
                site_dirs += glob.glob(os.path.join(env[var], "lib", "python3*", "site-packages"))
        home = env.get("HOME") or os.path.expanduser("~")
        site_dirs += [d for p in SITE_GLOBS for d in sorted(glob.glob(p.replace("~", home, 1)))]
    entries = ldconfig_entries(ldconfig_output)
    candidates = [p for n, p in entries if n == "libcuda.so.1"] + [
        os.path.join(d, "libcuda.so.1") for d in driver_dirs]
    libcuda = next((p for p in candidates if os.path.isfile(p) and "/stubs/" not in p), None)
    if not libcuda:  # (a toolkit's stubs/ has a link-time stand-in)
        raise GpuEnvError(
            "no NVIDIA driver library libcuda.so.1 (looked in the ldconfig cache and %s): "
            "install the NVIDIA driver (nvidia-smi must work), or in a container start it "
            "with the GPU exposed (docker run --gpus all)" % _where(list(driver_dirs)))
    driver = driver_version(libcuda)
    sites = _dedupe(site_dirs)
    dirs = (_env_path(env, "LD_LIBRARY_PATH")
            + [os.path.join(r, d) for r in toolkit_roots for d in TOOLKIT_LIB_DIRS]
            + [d for s in sites for d in sorted(glob.glob(os.path.join(s, "nvidia", "*", "lib")))]
            + [os.path.dirname(p) for n, p in entries if n.startswith(("libnvrtc.", "libcublas."))])
    dirs = [d for d in _dedupe(dirs) if os.path.isdir(d)]
    where = "LD_LIBRARY_PATH; toolkits %s; nvidia/*/lib in %s; the ldconfig cache" % (
        _where(_dedupe([r for r in toolkit_roots if os.path.isdir(r)])), _where(sites, 3))
    return CudaLibs(libcuda, driver, find_cuda_lib("NVRTC", dirs, driver, where),
                    find_cuda_lib("cuBLAS", dirs, driver, where))


def check_build_requirements(env=None, include_dirs=None, python_include=None,
                             pygpu_path=None, which=shutil.which):
    """What Theano builds and runs its GPU ops with: g++, Python.h, libgpuarray-dev (its
    headers; libgpuarray.so comes with them), pygpu 0.7.x. A missing one is one line
    here, not a compiler error or "Could not initialize pygpu" and a CPU run."""
    env = os.environ if env is None else env
    cxx = compat.flags_dict(env.get("THEANO_FLAGS", "")).get("cxx", "g++")
    python_include = python_include or sysconfig.get_paths()["include"]
    if include_dirs is None:
        include_dirs = _env_path(env, "CPATH", "CPLUS_INCLUDE_PATH", "C_INCLUDE_PATH") + [
            "/usr/local/include", "/usr/include"]
    # pygpu's version from its metadata: importing pygpu would import numpy
    pygpu = next((d.version for d in importlib.metadata.distributions(
        name="pygpu", path=sys.path if pygpu_path is None else pygpu_path)), None)
    for ok, message in [
            (cxx and which(cxx.split()[0], path=env.get("PATH", os.defpath)),
             "no C++ compiler %r on PATH, which Theano compiles its GPU ops with: apt-get "
             "install g++" % (cxx or "g++")),
            (os.path.isfile(os.path.join(python_include, "Python.h")),
             "no Python.h in %s, which Theano compiles its ops against: apt-get install "
             "python3-dev" % python_include),
            (any(os.path.isfile(os.path.join(d, "gpuarray", "types.h")) for d in include_dirs),
             "no libgpuarray headers gpuarray/types.h (looked in %s): apt-get install "
             "libgpuarray-dev" % _where(include_dirs)),
            (pygpu, "pygpu is not importable by %s: apt-get install python3-pygpu (0.7.x), and "
             "make the venv with --system-site-packages" % sys.executable),
            (not pygpu or pygpu.startswith("0.7."), "pygpu %s: Theano 1.0.5 needs pygpu 0.7.x "
             "(Debian's python3-pygpu 0.7.6)" % pygpu)]:
        if not ok:
            raise GpuEnvError(message)


# --- OpenCL -----------------------------------------------------------------------------
# What an OpenCL device needs, as Debian names it: the ICD loader's libOpenCL.so, a driver
# (POCL runs on the CPU; GPU vendors ship their own), and CLBlast for the matrix products.
OPENCL_PACKAGES = "ocl-icd-opencl-dev pocl-opencl-icd libclblast-dev"


def check_opencl(device, cdll=ctypes.CDLL):
    """That libgpuarray will find what device openclP:D needs: libOpenCL.so, platform P
    with a device D, libclblast.so. Each missing piece is one GpuEnvError line."""
    platform, number = map(int, re.match(r"^opencl(\d+):(\d+)$", device).groups())
    try:
        opencl = cdll("libOpenCL.so")
    except OSError:
        raise GpuEnvError("device=%s: no OpenCL loader libOpenCL.so, which libgpuarray opens: "
                          "apt-get install %s (pocl-opencl-icd: an OpenCL device on the CPU)"
                          % (device, OPENCL_PACKAGES))
    count = ctypes.c_uint(0)
    opencl.clGetPlatformIDs(0, None, ctypes.byref(count))
    if count.value == 0:
        raise GpuEnvError("device=%s: no OpenCL platform: install an OpenCL driver (your GPU's "
                          "vendor's, or pocl-opencl-icd, which runs on the CPU); `clinfo -l` "
                          "lists what is found" % device)
    if count.value <= platform:
        raise GpuEnvError("device=%s: there is no OpenCL platform %d (platforms 0 to %d); "
                          "`clinfo -l` lists them" % (device, platform, count.value - 1))
    platforms = (ctypes.c_void_p * count.value)()
    opencl.clGetPlatformIDs(count, platforms, None)
    devices = ctypes.c_uint(0)
    opencl.clGetDeviceIDs(ctypes.c_void_p(platforms[platform]), ctypes.c_ulong(0xFFFFFFFF),
                          0, None, ctypes.byref(devices))  # CL_DEVICE_TYPE_ALL
    if devices.value <= number:
        raise GpuEnvError("device=%s: OpenCL platform %d has no device %d (devices 0 to %d); "
                          "`clinfo -l` lists them" % (device, platform, number, devices.value - 1))
    try:
        cdll("libclblast.so")
    except OSError:
        raise GpuEnvError("device=%s: no CLBlast libclblast.so, which Theano's matrix products "
                          "use on OpenCL: apt-get install libclblast-dev" % device)


# --- The environment ------------------------------------------------------------------
def gpu_device(user_flags):
    """The GPU device to use: cudaN (or the 2016 gpuN) or openclP:D as THEANO_FLAGS say,
    else cuda; any other device is refused."""
    device = compat.flags_dict(user_flags).get("device") or "cpu"
    cuda = re.match(r"^(cuda|gpu)(\d*)$", device)
    if cuda or not compat.is_gpu_device(device):
        return "cuda" + (cuda.group(2) if cuda else "")
    if re.match(r"^opencl\d+:\d+$", device):
        return device
    raise GpuEnvError("device=%s: Theano's GPU devices are cuda, cudaN and openclP:D (e.g. "
                      "opencl0:0); change THEANO_FLAGS or .theanorc" % device)


def gpu_theano_flags(user_flags, compiledir):
    """Our GPU flags first, then the user's entries that don't conflict."""
    ours = [("device", gpu_device(user_flags)), ("floatX", "float32"),
            ("dnn.enabled", "False"), ("base_compiledir", compiledir)]
    kept = [(k, v) for k, v in compat.parse_flags(user_flags)
            if k not in OWNED_FLAGS + DROPPED_FLAGS]
    return ",".join(k if v is None else "%s=%s" % (k, v) for k, v in ours + kept)


def gpu_environment(env=None, check_build=True, **search):
    """A copy of `env` (default os.environ) with THEANO_FLAGS and MARKER set for a process
    that runs Theano on the GPU its THEANO_FLAGS name (default cuda); for CUDA, with
    LD_LIBRARY_PATH too, and the links made. search: keyword arguments of discover(),
    check_build_requirements() and check_opencl(), for tests."""
    return _prepare(env, check_build, **search)[0]


def _prepare(env, check_build, **search):
    """gpu_environment(), and what discover() found for CUDA (for the CLI)."""
    env = dict(os.environ if env is None else env)
    # The project-local Python (.python311, built by make setup where the system has no
    # 3.10/3.11) holds Debian 12's libgpuarray in its own include and lib folders: the
    # compiler must look there too, when Theano builds its GPU ops.
    base = os.path.realpath(sys.base_prefix)
    if base not in ("/usr", "/usr/local") and os.path.isdir(os.path.join(base, "include",
                                                                          "gpuarray")):
        for var, sub in (("CPATH", "include"), ("LIBRARY_PATH", "lib")):
            env[var] = ":".join(_dedupe([os.path.join(base, sub)] + _env_path(env, var)))
    build = {k: search.pop(k) for k in ("include_dirs", "python_include", "pygpu_path", "which")
             if k in search}
    device = gpu_device(env.get("THEANO_FLAGS", ""))  # another device: said before looking
    cache = os.path.abspath(os.path.join(env.get("XDG_CACHE_HOME") or os.path.join(
        env.get("HOME") or os.path.expanduser("~"), ".cache"), "feedforward_lasagne_mnist"))
    if not compat.SAFE_IN_FLAGS.fullmatch(cache):
        raise GpuEnvError("%r can't be used: THEANO_FLAGS and LD_LIBRARY_PATH can't hold a "
                          "path with a space, a comma, a colon, a quote or a #; set "
                          "XDG_CACHE_HOME to another folder" % cache)
    if device.startswith("opencl"):
        check_opencl(device, **{k: search[k] for k in ("cdll",) if k in search})
        if check_build:
            check_build_requirements(env, **build)
        env["THEANO_FLAGS"] = gpu_theano_flags(env.get("THEANO_FLAGS", ""),
                                               os.path.join(cache, "theano-opencl"))
        env[MARKER] = device
        return env, None
    search.pop("cdll", None)
    libs = discover(env, **search)
    if check_build:
        check_build_requirements(env, **build)
    link_dir, compiledir = os.path.join(cache, "gpu-libs"), os.path.join(cache, "theano-gpu")
    # The links, in a folder of our own (no root needed, nothing else affected), each made
    # under a temporary name and renamed over the old one, so that runs never see half.
    try:
        os.makedirs(link_dir, exist_ok=True)
        for name, target in [("libcuda.so", libs.libcuda), ("libnvrtc.so", libs.nvrtc.path),
                             ("libcublas.so", libs.cublas.path)]:
            tmp = os.path.join(link_dir, ".%s.%d.tmp" % (name, os.getpid()))
            if os.path.lexists(tmp):
                os.remove(tmp)
            os.symlink(os.path.abspath(target), tmp)
            os.replace(tmp, os.path.join(link_dir, name))
    except OSError as e:
        raise GpuEnvError("cannot make the CUDA library links in %s (%s): set XDG_CACHE_HOME "
                          "to a folder of yours" % (link_dir, e))
    # Then cuBLAS's and NVRTC's folders, for the companions they load by name; the
    # driver's unless a system one (its PTX JIT compiler is loaded from there).
    driver_dir = os.path.dirname(libs.libcuda)
    env["LD_LIBRARY_PATH"] = ":".join(_dedupe(
        [link_dir, os.path.dirname(libs.cublas.path), os.path.dirname(libs.nvrtc.path)]
        + [d for d in [driver_dir] if d not in SYSTEM_DIRS] + _env_path(env, "LD_LIBRARY_PATH")))
    env["THEANO_FLAGS"] = gpu_theano_flags(env.get("THEANO_FLAGS", ""), compiledir)
    env[MARKER] = link_dir
    return env, libs


def reexec_on_gpu(argv=None, env=None, execve=os.execve, **search):
    """Re-execute this program once with the GPU environment of THEANO_FLAGS' device
    (Theano picks its device at import, and the linker reads LD_LIBRARY_PATH only as a
    process starts); argv: the interpreter's arguments (default sys.orig_argv[1:]).
    Re-executed: False, or GpuEnvError if Theano isn't on a GPU."""
    env = os.environ if env is None else env
    if env.get(MARKER):
        device = getattr(getattr(sys.modules.get("theano"), "config", None), "device", "cuda")
        if not compat.is_gpu_device(device):
            raise GpuEnvError("already re-executed with the GPU environment (%s=%s) but "
                              "Theano's device is %r: THEANO_FLAGS was overridden (unset %s "
                              "to start over)" % (MARKER, env[MARKER], device, MARKER))
        return False
    new_env = gpu_environment(env, **search)
    if argv is None:
        argv = getattr(sys, "orig_argv", [sys.executable] + sys.argv)[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        execve(sys.executable, [sys.executable] + list(argv), new_env)
    except OSError as e:
        raise GpuEnvError("cannot re-execute %s with the GPU environment: %s"
                          % (sys.executable, e))
    return True  # only reached when execve is a stand-in (tests)


def gpu_in_use(theano_module=None):
    """After `import theano`: the name of its GPU; None when not asked for one. When
    asked but pygpu did not initialise (Theano then only logs "Could not initialize
    pygpu" and runs on the CPU), GpuEnvError with pygpu's reason."""
    if theano_module is None:
        import theano as theano_module
    device = theano_module.config.device
    if not compat.is_gpu_device(device):
        return None
    ga = theano_module.gpuarray  # which `import theano` imports for a GPU device
    if getattr(ga, "pygpu_activated", False):
        return str(getattr(ga.get_context(None), "devname", device))
    reason = "pygpu is not importable: apt-get install python3-pygpu libgpuarray3"
    try:  # once more, for the first line of pygpu's error
        if getattr(ga, "pygpu", None) is not None:
            ga.pygpu.init(device)
            reason = "it initialises now, so Theano's own checks failed: see its log above"
    except Exception as e:  # pygpu raises GpuArrayException (with bytes) and others
        text = e.args[0] if e.args else str(e)
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        reason = "%s: %s" % (type(e).__name__, (text.strip().splitlines() or [""])[0])
    raise GpuEnvError("Theano was asked for device=%s but could not initialise pygpu (%s): run "
                      "`python -m lasagne_mnist_port.gpu_env` to check the GPU's libraries, and start the program "
                      "through gpu_env.reexec_on_gpu()" % (device, reason))


def main(argv=None):
    """`eval "$(python -m lasagne_mnist_port.gpu_env)"`: export lines; on failure the
    reason on stderr and `false` on stdout, so that the eval fails and `&& python ...`
    never runs on the CPU."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build-check", action="store_true",
                        help="don't check g++, Python.h, libgpuarray-dev and pygpu")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != MARKER}
    try:
        new, libs = _prepare(env, not args.no_build_check)
    except GpuEnvError as e:
        print("gpu_env: %s" % e, file=sys.stderr)
        print("false")
        return 1
    if libs is None:
        print("# OpenCL device %s: libOpenCL.so and libclblast.so load" % new[MARKER])
    else:
        print("# driver: %s (CUDA %s)" % (libs.libcuda, _fmt(libs.driver_version)))
        print("# NVRTC %s: %s" % (_fmt(libs.nvrtc.version), libs.nvrtc.path))
        print("# cuBLAS %s: %s" % (_fmt(libs.cublas.version), libs.cublas.path))
    for key in ("LD_LIBRARY_PATH", "THEANO_FLAGS", MARKER):
        if key in new:
            print("export %s=%s" % (key, shlex.quote(new[key])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
