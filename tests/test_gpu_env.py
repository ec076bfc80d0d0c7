"""gpu_env against fake CUDA installs in tmp_path: no GPU, no real CUDA needed.

Every library is a small non-ELF file named like the real one; the linker
cache (`ldconfig -p`), the driver's CUDA version and the build toolchain are
injected, and XDG_CACHE_HOME points into tmp_path, so the real machine's CUDA
(if any) never leaks into a result.
"""
import functools
import glob
import os
import re
import shutil
import subprocess
import sys
import types

import pytest

from lasagne_mnist_port import gpu_env
from lasagne_mnist_port.gpu_env import GpuEnvError, MARKER

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lib(path, target=None):
    """A fake library file (or a link to `target`, like a toolkit's sonames)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if target:
        os.symlink(target, path)
    else:
        with open(path, "wb") as f:
            f.write(b"not an ELF file\n")
    return str(path)


def wheels(site, major, minor):
    """The nvidia-* pip wheels' layout: per-library folders for CUDA 12, one
    nvidia/cu13/lib for CUDA 13."""
    if major >= 13:
        cublas_dir = nvrtc_dir = os.path.join(site, "nvidia", "cu%d" % major, "lib")
    else:
        cublas_dir = os.path.join(site, "nvidia", "cublas", "lib")
        nvrtc_dir = os.path.join(site, "nvidia", "cuda_nvrtc", "lib")
    lib(os.path.join(cublas_dir, "libcublas.so.%d" % major))
    lib(os.path.join(cublas_dir, "libcublasLt.so.%d" % major))
    lib(os.path.join(nvrtc_dir, "libnvrtc.so.%d" % major))
    lib(os.path.join(nvrtc_dir, "libnvrtc-builtins.so.%d.%d" % (major, minor)))
    return cublas_dir, nvrtc_dir


def toolkit(root, major, minor):
    """A CUDA toolkit: versioned files plus soname links in targets/.../lib,
    lib64 -> that folder, and the link-time stub libcuda.so."""
    libdir = os.path.join(root, "targets", "x86_64-linux", "lib")
    lib(os.path.join(libdir, "libnvrtc.so.%d.%d.127" % (major, minor)))
    lib(os.path.join(libdir, "libnvrtc.so.%d" % major), "libnvrtc.so.%d.%d.127" % (major, minor))
    lib(os.path.join(libdir, "libnvrtc-builtins.so.%d.%d.127" % (major, minor)))
    lib(os.path.join(libdir, "libnvrtc-builtins.so.%d.%d" % (major, minor)),
        "libnvrtc-builtins.so.%d.%d.127" % (major, minor))
    lib(os.path.join(libdir, "libcublas.so.%d.%d.5.8" % (major, minor)))
    lib(os.path.join(libdir, "libcublas.so.%d" % major), "libcublas.so.%d.%d.5.8" % (major, minor))
    lib(os.path.join(libdir, "libcublasLt.so.%d.%d.5.8" % (major, minor)))
    lib(os.path.join(libdir, "libcublasLt.so.%d" % major), "libcublasLt.so.%d.%d.5.8" % (major, minor))
    lib(os.path.join(libdir, "stubs", "libcuda.so"))
    os.symlink(os.path.join("targets", "x86_64-linux", "lib"), os.path.join(root, "lib64"))
    return libdir


@pytest.fixture
def fake(tmp_path):
    """A driver in driver/, no CUDA libraries yet, and the keyword arguments
    that confine gpu_env to tmp_path (driver CUDA 12.4, no build check)."""
    driver_dir = tmp_path / "driver"
    libcuda = lib(str(driver_dir / "libcuda.so.1"))
    site = str(tmp_path / "site")
    os.makedirs(site)
    cache = str(tmp_path / "xdg" / "feedforward_lasagne_mnist")
    env = {"HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin",
           "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    kw = dict(ldconfig_output="", driver_dirs=[str(driver_dir)], toolkit_roots=[],
              site_dirs=[site], driver_version=lambda path: (12, 4), check_build=False)
    return types.SimpleNamespace(tmp=tmp_path, site=site, libcuda=libcuda, env=env, kw=kw,
                                 links=os.path.join(cache, "gpu-libs"), driver_dir=str(driver_dir),
                                 compiledir=os.path.join(cache, "theano-gpu"))


def flags(env):
    return dict(item.split("=", 1) for item in env["THEANO_FLAGS"].split(","))


# ------------------------------------------------------------ success paths

def test_pip_wheels_links_library_path_and_flags(fake):
    cublas_dir, nvrtc_dir = wheels(fake.site, 12, 4)
    fake.env["LD_LIBRARY_PATH"] = "/opt/mine"
    env = gpu_env.gpu_environment(fake.env, **fake.kw)

    for name, target in [("libcuda.so", fake.libcuda),
                         ("libnvrtc.so", os.path.join(nvrtc_dir, "libnvrtc.so.12")),
                         ("libcublas.so", os.path.join(cublas_dir, "libcublas.so.12"))]:
        link = os.path.join(fake.links, name)
        assert os.path.islink(link) and os.readlink(link) == target
    # links first; cuBLASLt's and nvrtc-builtins' dirs; the (non-system) driver dir; the user's
    assert env["LD_LIBRARY_PATH"].split(":") == [
        fake.links, cublas_dir, nvrtc_dir, fake.driver_dir, "/opt/mine"]
    assert flags(env) == {"device": "cuda", "floatX": "float32", "dnn.enabled": "False",
                          "base_compiledir": fake.compiledir}
    assert env[MARKER] == fake.links
    assert env["HOME"] == fake.env["HOME"]          # the rest of env is kept
    assert "LD_LIBRARY_PATH" in fake.env and MARKER not in fake.env  # input not modified


def test_cuda13_wheels_one_lib_folder(fake):
    libdir, _ = wheels(fake.site, 13, 0)
    fake.kw["driver_version"] = lambda path: (13, 0)
    env = gpu_env.gpu_environment(fake.env, **fake.kw)
    assert os.readlink(os.path.join(fake.links, "libnvrtc.so")) == os.path.join(libdir, "libnvrtc.so.13")
    assert os.readlink(os.path.join(fake.links, "libcublas.so")) == os.path.join(libdir, "libcublas.so.13")
    assert env["LD_LIBRARY_PATH"].split(":")[:3] == [fake.links, libdir, fake.driver_dir]


def test_user_theano_flags_kept_unless_they_conflict(fake):
    wheels(fake.site, 12, 4)
    fake.env["THEANO_FLAGS"] = ("device=cpu,floatX=float64,blas.ldflags=-lopenblas,"
                                "optimizer=fast_compile,compiledir=/x,dnn.enabled=True,"
                                "base_compiledir=/y,gpuarray.preallocate=0.5")
    f = flags(gpu_env.gpu_environment(fake.env, **fake.kw))
    assert f == {"device": "cuda", "floatX": "float32", "dnn.enabled": "False",
                 "base_compiledir": fake.compiledir, "blas.ldflags": "-lopenblas",
                 "optimizer": "fast_compile", "gpuarray.preallocate": "0.5"}
    fake.env["THEANO_FLAGS"] = "device=cuda1"  # the user's choice of GPU stays
    assert flags(gpu_env.gpu_environment(fake.env, **fake.kw))["device"] == "cuda1"


def test_toolkit_layout_sonames_and_stub_ignored(fake, tmp_path):
    root = str(tmp_path / "cuda-12.4")
    toolkit(root, 12, 4)
    fake.kw.update(toolkit_roots=[root], site_dirs=[])
    libs = gpu_env.discover(fake.env, **{k: fake.kw[k] for k in (
        "ldconfig_output", "driver_dirs", "toolkit_roots", "site_dirs", "driver_version")})
    # the soname (not the fully versioned file), through lib64 -> targets/.../lib
    # (one folder, searched once); NVRTC's minor read off libnvrtc-builtins.so.12.4
    assert libs.nvrtc.path == os.path.join(root, "lib64", "libnvrtc.so.12")
    assert libs.nvrtc.version == (12, 4)
    assert libs.cublas.path == os.path.join(root, "lib64", "libcublas.so.12")
    assert libs.libcuda == fake.libcuda  # not lib64/stubs/libcuda.so
    env = gpu_env.gpu_environment(fake.env, **fake.kw)
    assert env["LD_LIBRARY_PATH"].split(":") == [
        fake.links, os.path.join(root, "lib64"), fake.driver_dir]


@pytest.mark.parametrize("var", ["CUDA_HOME", "CUDA_PATH"])
def test_cuda_home_searched_first(fake, tmp_path, var):
    home = str(tmp_path / "my-cuda")
    toolkit(home, 12, 4)
    fake.env[var] = home
    fake.kw.update(toolkit_roots=None, site_dirs=[])
    gpu_env.gpu_environment(fake.env, **fake.kw)
    assert os.readlink(os.path.join(fake.links, "libnvrtc.so")).startswith(home + os.sep)


def test_ld_library_path_dirs_are_searched(fake, tmp_path):
    mine = str(tmp_path / "mine")
    for name in ("libnvrtc.so.12", "libnvrtc-builtins.so.12.2", "libcublas.so.12",
                 "libcublasLt.so.12"):
        lib(os.path.join(mine, name))
    fake.env["LD_LIBRARY_PATH"] = mine
    fake.kw["site_dirs"] = []
    env = gpu_env.gpu_environment(fake.env, **fake.kw)
    assert os.readlink(os.path.join(fake.links, "libnvrtc.so")) == os.path.join(mine, "libnvrtc.so.12")
    assert env["LD_LIBRARY_PATH"].split(":") == [fake.links, mine, fake.driver_dir]


def test_libcuda_from_ldconfig_cache(fake, tmp_path):
    wheels(fake.site, 12, 4)
    real = lib(str(tmp_path / "sys" / "libcuda.so.1"))
    stub = lib(str(tmp_path / "cuda" / "lib64" / "stubs" / "libcuda.so.1"))
    fake.kw["ldconfig_output"] = (
        "3 libs found in cache `/etc/ld.so.cache'\n"
        "\tlibcuda.so.1 (libc6,x86-64) => %s\n"
        "\tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1\n"
        "\tlibcuda.so.1 (libc6,x86-64) => %s\n" % (stub, real))
    fake.kw["driver_dirs"] = []
    gpu_env.gpu_environment(fake.env, **fake.kw)
    assert os.readlink(os.path.join(fake.links, "libcuda.so")) == real


def test_newest_library_the_driver_supports_wins(fake, tmp_path):
    root = str(tmp_path / "cuda-12.4")
    toolkit(root, 12, 4)
    wheels(fake.site, 12, 8)
    wheels(fake.site, 13, 0)
    pick = functools.partial(gpu_env.discover, fake.env, ldconfig_output="",
                             driver_dirs=fake.kw["driver_dirs"], toolkit_roots=[root],
                             site_dirs=[fake.site])
    libs = pick(driver_version=lambda p: (12, 6))
    assert libs.nvrtc.version == (12, 4) and libs.cublas.version == (12,)
    assert libs.nvrtc.path.startswith(root) and libs.cublas.path.startswith(root)  # 1st of equals
    libs = pick(driver_version=lambda p: (12, 8))
    assert libs.nvrtc.version == (12, 8) and "cuda_nvrtc" in libs.nvrtc.path
    libs = pick(driver_version=lambda p: (13, 0))
    assert libs.nvrtc.version == (13, 0) and libs.cublas.version == (13,)


def test_incomplete_install_skipped_for_a_complete_one(fake, tmp_path):
    """An NVRTC without its libnvrtc-builtins (or a cuBLAS without its
    cuBLASLt) can't run: a complete older one is taken instead."""
    wheels(fake.site, 12, 4)
    broken = str(tmp_path / "broken")
    lib(os.path.join(broken, "libnvrtc.so.12"))
    lib(os.path.join(broken, "libcublas.so.12"))
    fake.env["LD_LIBRARY_PATH"] = broken  # searched first
    libs = gpu_env.discover(fake.env, **{k: fake.kw[k] for k in (
        "ldconfig_output", "driver_dirs", "toolkit_roots", "site_dirs", "driver_version")})
    assert libs.nvrtc.path.startswith(fake.site) and libs.cublas.path.startswith(fake.site)


def test_distribution_packages_from_the_ldconfig_cache(fake, tmp_path):
    """NVRTC and cuBLAS that a distribution's packages put in the system's own
    folders (e.g. /usr/lib/x86_64-linux-gnu), found through the linker cache."""
    multiarch = str(tmp_path / "usr-lib")
    for name in ("libnvrtc.so.12", "libnvrtc-builtins.so.12.0", "libcublas.so.12",
                 "libcublasLt.so.12"):
        lib(os.path.join(multiarch, name))
    fake.kw["ldconfig_output"] = "".join(
        "\t%s (libc6,x86-64) => %s\n" % (name, os.path.join(multiarch, name))
        for name in ("libnvrtc.so.12", "libcublas.so.12"))
    fake.kw["site_dirs"] = []
    env = gpu_env.gpu_environment(fake.env, **fake.kw)
    assert os.readlink(os.path.join(fake.links, "libnvrtc.so")) == os.path.join(
        multiarch, "libnvrtc.so.12")
    assert os.readlink(os.path.join(fake.links, "libcublas.so")) == os.path.join(
        multiarch, "libcublas.so.12")
    assert env["LD_LIBRARY_PATH"].split(":")[:2] == [fake.links, multiarch]


def test_unknown_driver_version_does_not_block(fake):
    wheels(fake.site, 13, 0)
    fake.kw["driver_version"] = lambda path: None
    gpu_env.gpu_environment(fake.env, **fake.kw)


# ------------------------------------------------------------ what's missing

def test_missing_driver(fake):
    os.remove(fake.libcuda)
    wheels(fake.site, 12, 4)
    with pytest.raises(GpuEnvError) as e:
        gpu_env.gpu_environment(fake.env, **fake.kw)
    msg = str(e.value)
    assert "libcuda.so.1" in msg and fake.driver_dir in msg and "NVIDIA driver" in msg
    assert "\n" not in msg


def test_missing_nvrtc(fake):
    cublas_dir, nvrtc_dir = wheels(fake.site, 12, 4)
    os.remove(os.path.join(nvrtc_dir, "libnvrtc.so.12"))
    with pytest.raises(GpuEnvError) as e:
        gpu_env.gpu_environment(fake.env, **fake.kw)
    msg = str(e.value)
    assert msg.startswith("no NVRTC libnvrtc.so.N with the libnvrtc-builtins.so.N.M it loads "
                          "beside it (looked in ")
    assert fake.site in msg and "nvidia/*/lib" in msg  # where it looked
    assert "pip install 'nvidia-cuda-nvrtc-cu12==12.4.*'" in msg and "CUDA_HOME" in msg
    assert not os.path.exists(fake.links)  # nothing made on failure


def test_missing_nvrtc_with_a_cuda13_driver(fake):
    fake.kw["driver_version"] = lambda path: (13, 0)
    with pytest.raises(GpuEnvError, match=re.escape("pip install 'nvidia-cuda-nvrtc==13.0.*'")):
        gpu_env.gpu_environment(fake.env, **fake.kw)


def test_missing_nvrtc_builtins(fake):
    _, nvrtc_dir = wheels(fake.site, 12, 4)
    os.remove(os.path.join(nvrtc_dir, "libnvrtc-builtins.so.12.4"))
    with pytest.raises(GpuEnvError, match=r"^no NVRTC libnvrtc\.so\.N with the "
                       r"libnvrtc-builtins\.so\.N\.M it loads beside it"):
        gpu_env.gpu_environment(fake.env, **fake.kw)


def test_missing_cublas(fake):
    cublas_dir, _ = wheels(fake.site, 12, 4)
    os.remove(os.path.join(cublas_dir, "libcublas.so.12"))
    with pytest.raises(GpuEnvError) as e:
        gpu_env.gpu_environment(fake.env, **fake.kw)
    assert str(e.value).startswith("no cuBLAS libcublas.so.N with the libcublasLt.so.N it "
                                   "loads beside it (looked in ")
    assert "pip install 'nvidia-cublas-cu12==12.*'" in str(e.value)


def test_missing_cublaslt(fake):
    cublas_dir, _ = wheels(fake.site, 12, 4)
    os.remove(os.path.join(cublas_dir, "libcublasLt.so.12"))
    with pytest.raises(GpuEnvError, match=r"^no cuBLAS libcublas\.so\.N with the "
                       r"libcublasLt\.so\.N it loads beside it"):
        gpu_env.gpu_environment(fake.env, **fake.kw)


def test_nvrtc_newer_than_driver(fake):
    wheels(fake.site, 13, 0)
    with pytest.raises(GpuEnvError) as e:
        gpu_env.gpu_environment(fake.env, **fake.kw)
    assert str(e.value).startswith(
        "NVRTC 13.0 (%s) is newer than the driver's CUDA 12.4: install NVRTC <= 12.4 "
        "(pip install 'nvidia-cuda-nvrtc-cu12==12.4.*')"
        % os.path.join(fake.site, "nvidia", "cu13", "lib", "libnvrtc.so.13"))


def test_nvrtc_newer_minor_than_driver(fake):
    wheels(fake.site, 12, 8)
    with pytest.raises(GpuEnvError, match=r"^NVRTC 12\.8 .* newer than the driver's CUDA 12\.4"):
        gpu_env.gpu_environment(fake.env, **fake.kw)


def test_cublas_newer_than_driver(fake, tmp_path):
    _, nvrtc_dir = wheels(fake.site, 12, 4)
    lib(str(tmp_path / "other" / "libcublas.so.13"))
    lib(str(tmp_path / "other" / "libcublasLt.so.13"))
    for name in ("libcublas.so.12", "libcublasLt.so.12"):
        os.remove(os.path.join(fake.site, "nvidia", "cublas", "lib", name))
    fake.env["LD_LIBRARY_PATH"] = str(tmp_path / "other")
    with pytest.raises(GpuEnvError, match=r"^cuBLAS 13 .* is newer than the driver's CUDA "
                       r"12\.4: install cuBLAS <= 12 \(pip install 'nvidia-cublas-cu12==12\.\*'\)"):
        gpu_env.gpu_environment(fake.env, **fake.kw)


@pytest.mark.parametrize("folder", ["a,b", "a b", "a#b", "it's", "a:b"])
def test_a_cache_path_that_breaks_theano_flags_is_refused(fake, folder):
    wheels(fake.site, 12, 4)
    fake.env["XDG_CACHE_HOME"] = str(fake.tmp / folder)
    with pytest.raises(GpuEnvError, match="can't hold a path with a space, a comma, a colon, "
                                          "a quote or a #; set XDG_CACHE_HOME"):
        gpu_env.gpu_environment(fake.env, **fake.kw)


# ------------------------------------------------------------ build toolchain

def pygpu_metadata(site, version):
    """pygpu as Debian's python3-pygpu installs it: the package and an .egg-info folder."""
    lib(os.path.join(site, "pygpu", "__init__.py"))
    for old in glob.glob(os.path.join(site, "pygpu-*.egg-info")):
        shutil.rmtree(old)
    info = os.path.join(site, "pygpu-%s.egg-info" % version)
    os.makedirs(info)
    with open(os.path.join(info, "PKG-INFO"), "w") as f:
        f.write("Metadata-Version: 1.1\nName: pygpu\nVersion: %s\n" % version)


@pytest.fixture
def toolchain(tmp_path):
    inc, pyinc, site = (tmp_path / d for d in ("inc", "pyinc", "dist-packages"))
    lib(str(inc / "gpuarray" / "types.h"))
    lib(str(pyinc / "Python.h"))
    pygpu_metadata(str(site), "0.7.6")
    return dict(include_dirs=[str(inc)], python_include=str(pyinc), pygpu_path=[str(site)],
                which=lambda name, path=None: "/usr/bin/" + name)


def test_build_requirements_met(toolchain):
    gpu_env.check_build_requirements({"PATH": "/usr/bin"}, **toolchain)


@pytest.mark.parametrize("breakage, message", [
    (lambda t: t.update(which=lambda name, path=None: None), "no C++ compiler 'g++'"),
    (lambda t: os.remove(os.path.join(t["python_include"], "Python.h")), "python3-dev"),
    (lambda t: t.update(include_dirs=[]), "no libgpuarray headers gpuarray/types.h"),
    (lambda t: t.update(pygpu_path=[]), "apt-get install python3-pygpu"),
    (lambda t: pygpu_metadata(t["pygpu_path"][0], "0.8.0"),
     "pygpu 0.8.0: Theano 1.0.5 needs pygpu 0.7.x"),
])
def test_build_requirement_missing(toolchain, breakage, message):
    breakage(toolchain)
    with pytest.raises(GpuEnvError, match=re.escape(message)):
        gpu_env.check_build_requirements({"PATH": "/usr/bin"}, **toolchain)


def test_build_check_runs_in_gpu_environment(fake, toolchain):
    wheels(fake.site, 12, 4)
    fake.kw.update(toolchain, check_build=True, include_dirs=[])
    with pytest.raises(GpuEnvError, match="libgpuarray-dev"):
        gpu_env.gpu_environment(fake.env, **fake.kw)


# ------------------------------------------------------------ links, re-exec

def test_rerun_replaces_links_atomically(fake):
    wheels(fake.site, 12, 4)
    os.makedirs(fake.links)
    lib(os.path.join(fake.links, "libcublas.so"))           # a stale plain file
    os.symlink("/gone/libnvrtc.so.11", os.path.join(fake.links, "libnvrtc.so"))  # a dangling link
    first = gpu_env.gpu_environment(fake.env, **fake.kw)
    assert gpu_env.gpu_environment(fake.env, **fake.kw) == first  # idempotent
    wheels(fake.site, 13, 0)                                 # a newer CUDA appears
    fake.kw["driver_version"] = lambda path: (13, 0)
    gpu_env.gpu_environment(fake.env, **fake.kw)
    assert sorted(os.listdir(fake.links)) == ["libcublas.so", "libcuda.so", "libnvrtc.so"]
    assert os.readlink(os.path.join(fake.links, "libnvrtc.so")).endswith("cu13/lib/libnvrtc.so.13")
    assert os.readlink(os.path.join(fake.links, "libcublas.so")).endswith("cu13/lib/libcublas.so.13")


def test_reexec_once_then_marker_stops_the_loop(fake, monkeypatch):
    wheels(fake.site, 12, 4)
    gpu_theano = types.SimpleNamespace(config=types.SimpleNamespace(device="cuda"))
    monkeypatch.setitem(sys.modules, "theano", gpu_theano)  # as in the re-executed process
    calls = []
    execve = lambda exe, argv, env: calls.append((exe, argv, env))  # noqa: E731
    kw = dict(fake.kw, execve=execve)
    assert gpu_env.reexec_on_gpu(["train.py", "--device", "cuda"], env=fake.env, **kw)
    (exe, argv, env), = calls
    assert exe == sys.executable and argv == [sys.executable, "train.py", "--device", "cuda"]
    assert env[MARKER] == fake.links and env["THEANO_FLAGS"].startswith("device=cuda,")
    # the re-executed process calls it again: no second exec
    assert gpu_env.reexec_on_gpu(["train.py"], env=env, **kw) is False
    assert len(calls) == 1


def test_reexec_refuses_a_cpu_theano_after_reexec(monkeypatch):
    cpu_theano = types.SimpleNamespace(config=types.SimpleNamespace(device="cpu"))
    monkeypatch.setitem(sys.modules, "theano", cpu_theano)
    with pytest.raises(GpuEnvError, match="already re-executed .* device is 'cpu'"):
        gpu_env.reexec_on_gpu(["x.py"], env={MARKER: "/links"}, execve=None)


def test_reexec_failure_is_reported(fake):
    wheels(fake.site, 12, 4)

    def execve(exe, argv, env):
        raise OSError(8, "Exec format error")
    with pytest.raises(GpuEnvError, match="cannot re-execute"):
        gpu_env.reexec_on_gpu(["x.py"], env=fake.env, execve=execve, **fake.kw)


# ------------------------------------------------------------ after import theano

def fake_theano(device, activated, init_error=None):
    class Pygpu:
        @staticmethod
        def init(dev):
            raise init_error
    ctx = types.SimpleNamespace(devname="NVIDIA H200")
    ga = types.SimpleNamespace(pygpu_activated=activated, pygpu=Pygpu,
                               get_context=lambda name: ctx)
    return types.SimpleNamespace(config=types.SimpleNamespace(device=device), gpuarray=ga)


def test_gpu_in_use():
    assert gpu_env.gpu_in_use(fake_theano("cuda", True)) == "NVIDIA H200"
    assert gpu_env.gpu_in_use(fake_theano("cpu", False)) is None


def test_gpu_asked_but_pygpu_not_activated():
    # pygpu's GpuArrayException carries bytes
    theano = fake_theano("cuda0", False, RuntimeError(b'Could not load "libcuda.so": '
                                                      b'libcuda.so: cannot open shared object file'))
    with pytest.raises(GpuEnvError) as e:
        gpu_env.gpu_in_use(theano)
    assert "device=cuda0" in str(e.value) and 'Could not load "libcuda.so"' in str(e.value)
    assert "python -m lasagne_mnist_port.gpu_env" in str(e.value)


# ------------------------------------------------------------ CLI and imports

def test_cli_prints_eval_able_exports(fake, monkeypatch, capsys):
    wheels(fake.site, 12, 4)
    kw = dict(fake.kw)
    kw.pop("check_build")
    real = gpu_env._prepare
    monkeypatch.setattr(gpu_env, "_prepare", lambda env, check_build:
                        real(fake.env, check_build, **kw))  # (with the build check, it fails)
    assert gpu_env.main(["--no-build-check"]) == 0
    out = capsys.readouterr().out
    assert "# NVRTC 12.4: " in out
    shown = subprocess.run(["bash", "-c", 'eval "$1"; echo "$THEANO_FLAGS|$LD_LIBRARY_PATH|$%s"'
                            % MARKER, "-", out], stdout=subprocess.PIPE,
                           universal_newlines=True, check=True).stdout.strip()
    theano_flags, ld_path, marker = shown.split("|")
    assert theano_flags.startswith("device=cuda,floatX=float32,dnn.enabled=False,base_compiledir=")
    assert ld_path.split(":")[0] == fake.links and marker == fake.links


def test_cli_failure_is_one_line_and_exit_1(monkeypatch, capsys):
    def fail(*args):
        raise GpuEnvError("no NVIDIA driver library libcuda.so.1 (looked in /x)")
    monkeypatch.setattr(gpu_env, "_prepare", fail)
    assert gpu_env.main([]) == 1
    out, err = capsys.readouterr()
    assert err == "gpu_env: no NVIDIA driver library libcuda.so.1 (looked in /x)\n"
    # stdout makes the eval fail, so `eval ... && python ...` stops there
    ran = subprocess.run(["bash", "-c", 'eval "$1" && echo RAN', "-", out],
                         stdout=subprocess.PIPE, universal_newlines=True)
    assert ran.returncode == 1 and ran.stdout == ""


def _driver_installed():
    return any(os.path.isfile(p) for p in
               [p for name, p in gpu_env.ldconfig_entries() if name == "libcuda.so.1"]
               + [os.path.join(d, "libcuda.so.1") for d in gpu_env.DRIVER_DIRS])


@pytest.mark.skipif(_driver_installed(), reason="this machine has an NVIDIA driver")
def test_cli_in_a_real_process_without_a_driver(tmp_path):
    """`python -m lasagne_mnist_port.gpu_env` started as a shell starts it, on a machine
    without a driver."""
    ran = subprocess.run([sys.executable, "-m", "lasagne_mnist_port.gpu_env"], cwd=ROOT, universal_newlines=True,
                         env=dict(os.environ, XDG_CACHE_HOME=str(tmp_path)),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert (ran.returncode, ran.stdout) == (1, "false\n")
    assert ran.stderr.startswith("gpu_env: no NVIDIA driver library libcuda.so.1 (looked in "
                                 "the ldconfig cache and /usr/lib/x86_64-linux-gnu, ")
    assert ran.stderr.count("\n") == 1 and not os.listdir(str(tmp_path))  # nothing made


def test_import_needs_only_the_standard_library():
    code = ("import sys, lasagne_mnist_port.gpu_env; bad = [m for m in ('theano', 'numpy', 'pygpu') "
            "if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.parametrize("flags, device", [("", "cuda"), ("device=cpu", "cuda"),
                                           ("device=cuda1", "cuda1"), ("device=gpu2", "cuda2"),
                                           ("floatX=float32,device=cuda0", "cuda0"),
                                           ("device=opencl0:0", "opencl0:0"),
                                           ("device=opencl1:2", "opencl1:2")])
def test_gpu_device(flags, device):
    assert gpu_env.gpu_device(flags) == device


@pytest.mark.parametrize("device", ["opencl0", "metal", "cuda:1"])
def test_another_device_is_refused(device):
    with pytest.raises(GpuEnvError, match=r"^device=%s: Theano's GPU devices are cuda, cudaN "
                                          r"and openclP:D" % device):
        gpu_env.gpu_device("device=" + device)


class FakeOpenCL(object):
    """libOpenCL.so with `platforms` platforms of `devices` devices each."""

    def __init__(self, platforms, devices):
        self.platforms, self.devices = platforms, devices

    def clGetPlatformIDs(self, n, ids, count):
        if count is not None:
            count._obj.value = self.platforms
        return 0

    def clGetDeviceIDs(self, platform, kind, n, ids, count):
        count._obj.value = self.devices
        return 0


def fake_cdll(platforms=1, devices=1, missing=()):
    def cdll(name):
        if name in missing:
            raise OSError("%s: cannot open shared object file" % name)
        return FakeOpenCL(platforms, devices) if name == "libOpenCL.so" else object()
    return cdll


@pytest.mark.parametrize("device, cdll, message", [
    ("opencl0:0", fake_cdll(missing=("libOpenCL.so",)),
     "device=opencl0:0: no OpenCL loader libOpenCL.so, which libgpuarray opens: apt-get install "
     "ocl-icd-opencl-dev pocl-opencl-icd libclblast-dev"),
    ("opencl0:0", fake_cdll(platforms=0), "device=opencl0:0: no OpenCL platform: install an "
                                          "OpenCL driver"),
    ("opencl1:0", fake_cdll(platforms=1), "device=opencl1:0: there is no OpenCL platform 1 "
                                          "(platforms 0 to 0)"),
    ("opencl0:2", fake_cdll(devices=2), "device=opencl0:2: OpenCL platform 0 has no device 2 "
                                        "(devices 0 to 1)"),
    ("opencl0:0", fake_cdll(missing=("libclblast.so",)),
     "device=opencl0:0: no CLBlast libclblast.so, which Theano's matrix products use on "
     "OpenCL: apt-get install libclblast-dev"),
])
def test_what_an_opencl_device_lacks_is_one_line(device, cdll, message):
    with pytest.raises(GpuEnvError) as error:
        gpu_env.check_opencl(device, cdll=cdll)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_an_opencl_environment_sets_the_flags_only(fake):
    fake.env["THEANO_FLAGS"] = "device=opencl0:0,optimizer=fast_run"
    env = gpu_env.gpu_environment(fake.env, cdll=fake_cdll(), **fake.kw)
    assert env["THEANO_FLAGS"].startswith("device=opencl0:0,floatX=float32,dnn.enabled=False,")
    assert env["THEANO_FLAGS"].endswith(",optimizer=fast_run")
    assert env[MARKER] == "opencl0:0" and env.get("LD_LIBRARY_PATH") == fake.env.get(
        "LD_LIBRARY_PATH")
    assert not os.path.exists(fake.links)  # no CUDA links made


def test_a_project_local_pythons_libgpuarray_is_on_the_compilers_paths(fake, monkeypatch):
    wheels(fake.site, 12, 4)
    local = fake.tmp / "python311" / "usr"
    (local / "include" / "gpuarray").mkdir(parents=True)
    monkeypatch.setattr(gpu_env.sys, "base_prefix", str(local))
    fake.env["CPATH"] = "/opt/mine/include"
    env = gpu_env.gpu_environment(fake.env, **fake.kw)
    assert env["CPATH"].split(":") == [str(local / "include"), "/opt/mine/include"]
    assert env["LIBRARY_PATH"] == str(local / "lib")
    monkeypatch.setattr(gpu_env.sys, "base_prefix", "/usr")  # a system Python: untouched
    del fake.env["CPATH"]
    assert "CPATH" not in gpu_env.gpu_environment(fake.env, **fake.kw)
