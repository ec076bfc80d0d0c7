#!/usr/bin/env python3
"""Every CUDA kernel of the tutorial, compiled by NVRTC for today's GPUs, without a GPU.

Theano's gpuarray backend builds its kernels only once a CUDA context exists: the
graph itself depends on it (the reductions are GpuCAReduceCuda on CUDA, another op
on OpenCL), Theano writes the kernels of its ops for the context's kind, and
libgpuarray generates the elementwise loops, copies and fills when they are first
called, for the shapes they get. So the tutorial is run here on a CUDA context
whose driver is a stand-in (tools/cuda_standin.c: host memory, kernel launches and
cuBLAS calls that check their arguments and compute nothing) and whose NVRTC is
the real one from NVIDIA's wheels: `train_fn`, `val_fn` and the prediction
function are compiled by Theano as on a GPU (its C modules with g++, against
libgpuarray's headers) and called, and libgpuarray compiles each kernel with NVRTC
with its own preamble (cluda.h) and options (-arch compute_XX), exactly as on a
GPU. Each program NVRTC gets is recorded; the recorded programs are then compiled
again, each distinct source once, for every architecture and NVRTC release of the
matrix below, with the recorded header and options, the architecture replaced.

    python tools/cuda_kernels.py            # the full matrix (make cuda-kernels)
    python tools/cuda_kernels.py --quick    # what make test checks

NVRTC comes from the pinned wheels of requirements-nvrtc.txt, which
`tools/setup.sh --with-opencl` (make test) installs into .nvrtc/. Details:
docs/gpu.md.
"""
import argparse
import concurrent.futures
import ctypes
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import namedtuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from lasagne_mnist_port import gpu_env  # noqa: E402

NVRTC_DIR = os.path.join(ROOT, ".nvrtc")   # where setup installs the NVRTC wheels
STANDIN_SOURCE = os.path.join(ROOT, "tools", "cuda_standin.c")

# The architectures people train on, and the oldest each CUDA release still
# compiles for: CUDA 12 from compute_50 (Maxwell; 12.9 warns that everything
# before compute_75 is deprecated), CUDA 13 from compute_75 (Turing: it dropped
# Maxwell, Pascal and Volta).
ARCHS = ("compute_90", "compute_89", "compute_86", "compute_80")
OLDEST = {12: "compute_50", 13: "compute_75"}
# make test: every kernel with both NVRTC releases for H100/H200 (the run itself)
# and for each release's oldest architecture (the other end of what it takes).
QUICK_ARCHS = ("compute_90",)
# The run: an H100/H200 (compute capability 9.0) with a CUDA 13.0 driver.
RUN_CC, RUN_CUDA = 90, 13000

Kernel = namedtuple("Kernel", "name source options result log")
Nvrtc = namedtuple("Nvrtc", "version path builtins")


class KernelCheckError(RuntimeError):
    """The check could not run; the message says why."""


# --- NVRTC, through ctypes ---------------------------------------------------------
def nvrtc_releases(folder=NVRTC_DIR):
    """{major: Nvrtc} of the NVRTC wheels installed in folder (nvidia/*/lib)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(folder, "nvidia", "*", "lib", "libnvrtc.so.*"))):
        m = re.search(r"libnvrtc\.so\.(\d+)$", path)
        builtins = glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so.*.*"))
        if m and builtins:
            minor = re.search(r"\.so\.\d+\.(\d+)$", builtins[0]).group(1)
            found[int(m.group(1))] = Nvrtc((int(m.group(1)), int(minor)), path, builtins[0])
    return found


_libraries = {}


def _library(nvrtc):
    if nvrtc.path not in _libraries:
        # NVRTC opens its builtins by name (libnvrtc-builtins.so.M.m); loaded first,
        # they are found whatever LD_LIBRARY_PATH says.
        ctypes.CDLL(nvrtc.builtins, mode=ctypes.RTLD_GLOBAL)
        lib = ctypes.CDLL(nvrtc.path)
        lib.nvrtcGetErrorString.restype = ctypes.c_char_p
        _libraries[nvrtc.path] = lib
    return _libraries[nvrtc.path]


def compile_program(nvrtc, source, headers, options):
    """(result, log) of NVRTC compiling source with headers {name: text} and options."""
    lib = _library(nvrtc)
    prog = ctypes.c_void_p()
    names = list(headers)
    texts = (ctypes.c_char_p * len(names))(*[headers[n].encode() for n in names])
    includes = (ctypes.c_char_p * len(names))(*[n.encode() for n in names])
    result = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), None, len(names),
                                    texts, includes)
    if result != 0:
        return result, lib.nvrtcGetErrorString(result).decode()
    try:
        opts = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
        result = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value + 1)
        lib.nvrtcGetProgramLog(prog, log)
        return result, log.value.decode(errors="replace").strip()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def with_arch(options, arch):
    """libgpuarray's options with its architecture (the value after -arch) replaced."""
    options = list(options)
    options[options.index("-arch") + 1] = arch
    return options


# --- The run on the stand-in --------------------------------------------------------
def build_standin(folder):
    """The stand-in library, under the names libgpuarray and gpu_env look for."""
    os.makedirs(os.path.join(folder, "recorder"))
    library = os.path.join(folder, "libcuda-standin.so")
    result = subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", library, STANDIN_SOURCE,
                             "-ldl", "-lpthread"], capture_output=True, text=True)
    if result.returncode != 0:
        raise KernelCheckError("gcc could not build %s: %s" % (
            STANDIN_SOURCE, result.stderr.strip()[-500:]))
    for name in ("libcuda.so.1", "libcublas.so.13", "libcublasLt.so.13", "recorder/libnvrtc.so"):
        os.symlink(library, os.path.join(folder, name))
    return folder


RUN = r"""
import json, sys
import theano
import feedforward_lasagne_mnist as flm
from lasagne_mnist_port import gpu_env
functions, function = {}, theano.function
def keep(inputs, outputs, **kwargs):
    fn = function(inputs, outputs, **kwargs)
    functions[["train_fn", "val_fn", "predict"][len(functions)]] = fn
    return fn
theano.function = keep
device = gpu_env.gpu_in_use()
data = [a[:1000] if i < 2 else a[:500] for i, a in enumerate(flm.load_data())]
network = flm.run_network(data=data, num_epochs=1, seed=1, progress=False)
flm.predict_proba(network, data[4][:200])
print(json.dumps({"device": device, "theano_device": theano.config.device,
                  "ops": {k: [type(n.op).__name__ for n in f.maker.fgraph.toposort()]
                          for k, f in functions.items()}}))
"""


def run_on_standin(work, cc=RUN_CC, cuda=RUN_CUDA, nvrtc_dir=NVRTC_DIR, compiledir=None):
    """Runs the tutorial's functions on the stand-in in `work` (a new folder); returns
    (the run's JSON, the recorded kernels, the cluda.h header, launched kernel names)."""
    standin = build_standin(os.path.join(work, "standin"))
    record = os.path.join(work, "record")
    os.makedirs(record)
    env = {k: v for k, v in os.environ.items() if k != gpu_env.MARKER}
    # The links gpu_env makes go to a cache of this run's own, not the user's; the
    # stand-in's cuBLAS is found through LD_LIBRARY_PATH, NVRTC in the wheels' folder.
    env.update(XDG_CACHE_HOME=os.path.join(work, "cache"), LD_LIBRARY_PATH=standin,
               THEANO_FLAGS="device=cuda", FLM_STANDIN_CC=str(cc), FLM_STANDIN_CUDA=str(cuda),
               FLM_STANDIN_RECORD=record)
    try:
        env = gpu_env.gpu_environment(env, driver_dirs=[standin], toolkit_roots=[],
                                      site_dirs=[nvrtc_dir], ldconfig_output="")
    except gpu_env.GpuEnvError as e:
        raise KernelCheckError("gpu_env: %s" % e)
    # Theano's C modules in the compile cache a CUDA run uses (they are the same);
    # libgpuarray's kernel cache in this run's folder, so that NVRTC sees every
    # kernel; the recorder in front of the real NVRTC gpu_env chose.
    compiledir = compiledir or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"), "feedforward_lasagne_mnist", "theano-gpu")
    env["THEANO_FLAGS"] += ",base_compiledir=%s,gpuarray.cache_path=%s" % (
        compiledir, os.path.join(work, "kernel-cache"))
    env["FLM_STANDIN_NVRTC"] = os.path.realpath(
        os.path.join(work, "cache", "feedforward_lasagne_mnist", "gpu-libs", "libnvrtc.so"))
    env["LD_LIBRARY_PATH"] = os.path.join(standin, "recorder") + ":" + env["LD_LIBRARY_PATH"]
    result = subprocess.run([sys.executable, "-c", RUN], capture_output=True, text=True,
                            cwd=ROOT, env=env, timeout=900)
    if result.returncode != 0:
        raise KernelCheckError("the tutorial failed on the CUDA stand-in (compute_%d, CUDA "
                               "%d.%d):\n%s" % (cc, cuda // 1000, cuda % 1000 // 10,
                                                result.stderr[-6000:]))
    run = json.loads(result.stdout.strip().splitlines()[-1])
    run["stderr"] = result.stderr
    kernels, header = read_record(record)
    with open(os.path.join(record, "launches.txt")) as f:
        launched = [line.split()[0] for line in f]
    return run, kernels, header, launched


def kernel_name(source):
    """The name of the (first) kernel a program defines."""
    m = re.search(r"\bKERNEL\s+void\s+(\w+)\s*\(", source) or re.search(
        r"__global__\s+void\s+(\w+)\s*\(", source)
    return m.group(1) if m else "?"


def read_record(record):
    """The programs the recorder wrote ([Kernel]) and the header {name: text}."""
    kernels = []
    for path in sorted(glob.glob(os.path.join(record, "*.cu"))):
        with open(path) as f:
            source = f.read()
        with open(path[:-3] + ".txt") as f:
            lines = f.read().split("\n")
        result = int(lines[0].split()[1])
        options = [line[len("option "):] for line in lines[1:] if line.startswith("option ")]
        log = "\n".join(line for line in lines[1:] if not line.startswith("option ")).strip()
        kernels.append(Kernel(kernel_name(source), source, options, result, log))
    headers = {}
    for path in glob.glob(os.path.join(record, "*.h")):
        with open(path) as f:
            headers[os.path.basename(path)] = f.read()
    return kernels, headers


# --- The matrix ---------------------------------------------------------------------
def matrix(releases, quick=False):
    """[(Nvrtc, arch)] to check."""
    out = []
    for major in sorted(releases):
        archs = QUICK_ARCHS if quick else ARCHS
        out += [(releases[major], a) for a in archs + (OLDEST.get(major, "compute_75"),)]
    return out


def compile_matrix(kernels, headers, combos, threads=2):
    """[(kernel, Nvrtc, arch, result, log)] of each distinct source compiled for each
    combination, in threads (NVRTC programs are independent)."""
    distinct = list({k.source: k for k in kernels}.values())
    jobs = [(k, nvrtc, arch) for nvrtc, arch in combos for k in distinct]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        results = pool.map(lambda j: compile_program(j[1], j[0].source, headers,
                                                     with_arch(j[0].options, j[2])), jobs)
        return [(k, nvrtc, arch) + tuple(r) for (k, nvrtc, arch), r in zip(jobs, results)]


def check(quick=False, work=None, compiledir=None, threads=2):
    """The whole check: a dict report; KernelCheckError when it cannot run."""
    releases = nvrtc_releases()
    if 13 not in releases or 12 not in releases:
        raise KernelCheckError("no NVRTC 12 and 13 wheels in %s: tools/setup.sh --with-opencl "
                               "installs requirements-nvrtc.txt there" % NVRTC_DIR)
    own = work is None
    work = work or tempfile.mkdtemp(prefix="cuda-kernels-")
    try:
        run, kernels, headers, launched = run_on_standin(work, compiledir=compiledir)
        combos = matrix(releases, quick)
        compiled = compile_matrix(kernels, headers, combos, threads)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    failures = ["%s (NVRTC %d.%d, %s): %s" % (k.name, n.version[0], n.version[1], arch,
                                               log.splitlines()[0] if log else "result %d" % r)
                for k, n, arch, r, log in compiled if r != 0]
    failures += ["%s (NVRTC in the run, %s): %s" % (k.name, " ".join(k.options), k.log)
                 for k in kernels if k.result != 0]
    warnings = sorted({"NVRTC %d.%d, %s: %s" % (n.version + (arch, line)) for k, n, arch, r, log
                       in compiled if r == 0 for line in log.splitlines() if line})
    return {"run": run, "kernels": kernels, "headers": headers, "launched": launched,
            "distinct": len({k.source for k in kernels}), "combos": combos,
            "compiled": len(compiled), "failures": failures, "warnings": warnings}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="compute_90 and each release's oldest only (what make test checks)")
    args = parser.parse_args(argv)
    try:
        report = check(quick=args.quick)
    except KernelCheckError as e:
        print("cuda_kernels: %s" % e, file=sys.stderr)
        return 1
    kernels = report["kernels"]
    counts = {}
    for k in kernels:
        counts[k.name] = counts.get(k.name, 0) + 1
    print("%d programs compiled by libgpuarray in the run (%s, options %s), %d distinct:" % (
        len(kernels), report["run"]["device"], " ".join(kernels[0].options) if kernels else "",
        report["distinct"]))
    for name in sorted(counts):
        print("  %-50s %d" % (name, counts[name]))
    print("launched: %d kernel and cuBLAS calls" % len(report["launched"]))
    print("matrix: %s" % ", ".join("NVRTC %d.%d %s" % (n.version + (a,))
                                     for n, a in report["combos"]))
    print("%d compilations, %d failed" % (report["compiled"], len(report["failures"])))
    for line in report["warnings"]:
        print("warning: %s" % line)
    for line in report["failures"]:
        print("FAILED: %s" % line)
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
