"""tools/cuda_kernels.py and its CUDA stand-in (tools/cuda_standin.c): every kernel of the
tutorial's CUDA graph compiled by the NVRTC of NVIDIA's wheels, without a GPU.

The whole check (the tutorial on the stand-in, then every kernel for every architecture
and NVRTC release) runs with FLM_CUDA_KERNELS=1 or `make cuda-kernels`; make test runs
the rest, which costs about a second."""
import ctypes
import importlib.util
import os
import subprocess

import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("cuda_kernels",
                                              os.path.join(ROOT, "tools", "cuda_kernels.py"))
ck = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ck)

RELEASES = ck.nvrtc_releases()
needs_nvrtc = pytest.mark.skipif(
    sorted(RELEASES) != [12, 13], reason="no NVRTC 12 and 13 wheels in .nvrtc/: "
    "tools/setup.sh --with-opencl installs requirements-nvrtc.txt there")
TINY = 'extern "C" __global__ void k(float *a) { a[threadIdx.x] = 1.0f; }\n'


def test_the_matrix():
    releases = {12: "nvrtc12", 13: "nvrtc13"}
    archs = ["compute_90", "compute_89", "compute_86", "compute_80"]
    assert ck.matrix(releases) == [("nvrtc12", a) for a in archs + ["compute_50"]] + [
        ("nvrtc13", a) for a in archs + ["compute_75"]]
    assert ck.matrix(releases, quick=True) == [
        ("nvrtc12", "compute_90"), ("nvrtc12", "compute_50"),
        ("nvrtc13", "compute_90"), ("nvrtc13", "compute_75")]
    assert ck.with_arch(["-arch", "compute_90"], "compute_75") == ["-arch", "compute_75"]


def test_kernel_names():
    assert ck.kernel_name('#include "cluda.h"\nKERNEL void elem(const ga_size n) {}') == "elem"
    assert ck.kernel_name('extern "C" __global__ void k(float *a) {}') == "k"


@needs_nvrtc
@pytest.mark.parametrize("major, oldest, too_old", [(12, "compute_50", "compute_35"),
                                                     (13, "compute_75", "compute_70")])
def test_each_release_compiles_down_to_its_oldest_architecture(major, oldest, too_old):
    """What the docs say: CUDA 12 compiles for compute_50 (deprecated before compute_75),
    CUDA 13 from compute_75 only."""
    nvrtc = RELEASES[major]
    for arch in ("compute_90", oldest):
        assert ck.compile_program(nvrtc, TINY, {}, ["-arch", arch])[0] == 0, arch
    result, log = ck.compile_program(nvrtc, TINY, {}, ["-arch", too_old])
    assert result != 0 and "invalid value for --gpu-architecture" in log


def test_a_kernel_that_does_not_compile_is_reported(tmp_path):
    """NVRTC's error comes back with the kernel's name (not a pass)."""
    if not RELEASES:
        pytest.skip("no NVRTC wheels in .nvrtc/: tools/setup.sh --with-opencl installs them")
    nvrtc = RELEASES[max(RELEASES)]
    kernel = ck.Kernel("k", TINY.replace("1.0f;", "undeclared;"), ["-arch", "compute_90"], 0, "")
    (found,) = ck.compile_matrix([kernel], {}, [(nvrtc, "compute_90")])
    assert found[0] is kernel and found[3] != 0 and "undeclared" in found[4]


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    folder = ck.build_standin(str(tmp_path_factory.mktemp("standin")))
    return ctypes.CDLL(os.path.join(folder, "libcuda.so.1"))


PTX = "//\n.version %s\n.target sm_%d\n.address_size 64\n.visible .entry %s(\n)\n{\nret;\n}\n"


@pytest.mark.parametrize("version, target, cuda, expected", [
    ("9.0", 90, 13000, 0), ("8.8", 90, 12090, 0), ("8.8", 50, 12090, 0),
    ("9.0", 90, 12090, 222),   # CUDA_ERROR_UNSUPPORTED_PTX_VERSION: NVRTC newer than the driver
    ("8.5", 100, 12060, 209)])  # CUDA_ERROR_NO_BINARY_FOR_GPU: for a newer GPU than this one
def test_the_standin_loads_ptx_as_a_driver_would(standin, monkeypatch, version, target, cuda,
                                                  expected):
    monkeypatch.setenv("FLM_STANDIN_CUDA", str(cuda))
    monkeypatch.setenv("FLM_STANDIN_CC", "90")
    module = ctypes.c_void_p()
    ptx = (PTX % (version, target, "k")).encode()
    assert standin.cuModuleLoadData(ctypes.byref(module), ptx) == expected


def test_the_standin_finds_kernels_by_name_and_checks_launches(standin, monkeypatch):
    monkeypatch.setenv("FLM_STANDIN_CUDA", "13000")
    monkeypatch.delenv("FLM_STANDIN_RECORD", raising=False)
    module, function = ctypes.c_void_p(), ctypes.c_void_p()
    assert standin.cuModuleLoadData(ctypes.byref(module), (PTX % ("9.0", 90, "kern")).encode()) == 0
    assert standin.cuModuleGetFunction(ctypes.byref(function), module, b"ker") == 500  # NOT_FOUND
    assert standin.cuModuleGetFunction(ctypes.byref(function), module, b"kern") == 0

    def launch(grid, block, shared=0):
        return standin.cuLaunchKernel(function, *grid, *block, shared, None, None, None)
    assert launch((1, 1, 1), (1024, 1, 1)) == 0
    assert launch((1, 1, 1), (512, 4, 1)) == 1       # 2048 threads: CUDA_ERROR_INVALID_VALUE
    assert launch((1, 65536, 1), (32, 1, 1)) == 1    # gridDim.y past 65535
    assert launch((1, 1, 1), (32, 1, 1), 65536) == 1  # 64 KiB of shared memory without opt-in


@needs_nvrtc
@pytest.mark.skipif(os.environ.get("FLM_CUDA_KERNELS") != "1",
                    reason="the whole check (about 80 s with a cold Theano cache): "
                           "FLM_CUDA_KERNELS=1, or make cuda-kernels")
def test_every_kernel_of_the_tutorial_compiles_for_every_architecture(tmp_path):
    report = ck.check(work=str(tmp_path))
    run = report["run"]
    assert run["theano_device"] == "cuda" and "CUDA stand-in" in run["device"]
    assert "Device: GPU CUDA stand-in" in run["stderr"] and "BLAS: cuBLAS" in run["stderr"]
    # The CUDA graph: its reductions are GpuCAReduceCuda (another op on OpenCL)
    ops = run["ops"]
    assert sorted(ops) == ["predict", "train_fn", "val_fn"]
    for op in ("GpuCrossentropySoftmaxArgmax1HotWithBias", "GpuCrossentropySoftmax1HotWithBiasDx",
               "GPUA_mrg_uniform", "GpuElemwise"):
        assert op in ops["train_fn"], op
    assert any(o.startswith("GpuCAReduceCuda") for o in ops["train_fn"])
    # Every program libgpuarray compiled in the run, with its own options
    kernels = report["kernels"]
    names = {k.name for k in kernels}
    assert {"elem", "k_xent_sm_1hot_bias", "kCrossEntropySoftmax1HotWithBiasDx", "mrg_uniform",
            "kSoftmaxWithBias"} <= names
    assert all(k.options == ["-arch", "compute_90"] for k in kernels)
    assert "#ifndef CLUDA_H" in report["headers"]["cluda.h"]
    # and each kernel the functions launched was among them
    assert {n for n in report["launched"] if not n.startswith("cublas")} <= names
    assert report["compiled"] == report["distinct"] * len(report["combos"]) == len(
        {k.source for k in kernels}) * 10
    assert report["failures"] == [], "\n".join(report["failures"])
