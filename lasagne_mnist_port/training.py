"""The helpers run_network() calls: its data checked and converted, the
progress bar, the seeds, and the Device line; all of it on stderr, since
stdout is the tutorial's."""
import os
import platform
import sys

import lasagne
import numpy as np
import theano
from tqdm import tqdm

from . import compat, gpu_env, speedups

PROJECT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
DATA_NAMES = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite. (Not wrong matrix products:
    describe_backend checks the BLAS before the training starts.)"""


def log(message):
    """Everything that is not the tutorial's output goes to stderr."""
    print(message, file=sys.stderr)


def progress_bar(batches, total, progress=None):
    """The batches, with a progress bar on stderr when `progress` (default:
    when stderr is a terminal); it disappears at the end of the epoch."""
    if progress is None:
        progress = sys.stderr.isatty()
    return tqdm(batches, total=total, unit="batch", leave=False,
                disable=not progress, file=sys.stderr)


def batch_size_problem(batch_size, *set_sizes):
    """Why `batch_size` cannot work with data sets of these sizes, or None."""
    if batch_size < 1:
        return "batch size {} is not a positive number".format(batch_size)
    if batch_size > min(set_sizes):
        return ("batch size {} is larger than the smallest data set ({} examples): "
                "no full batch".format(batch_size, min(set_sizes)))
    return None


def check_data(X_train, y_train, X_val, y_val, X_test, y_test, batch_size=500, limit=None):
    """The six arrays as run_network() needs them, checked before anything is
    compiled: what is safe to convert is converted (lists, float64 images,
    (N, 28, 28) or (N, 784) images, int32/int64 labels); anything else is a
    ValueError with one sentence naming the array."""
    for name, value in (("batch_size", batch_size), ("limit", limit)):
        if value is not None and not isinstance(value, (int, np.integer)):
            raise ValueError("{} {!r} must be a whole number".format(name, value))
    if limit is not None:
        if limit < 1:
            raise ValueError("limit {} must be at least 1 (None: all the training "
                             "examples)".format(limit))
        X_train, y_train = X_train[:limit], y_train[:limit]
    arrays = [X_train, y_train, X_val, y_val, X_test, y_test]
    for i in range(0, 6, 2):
        X, y = np.asarray(arrays[i]), np.asarray(arrays[i + 1])
        X_name, y_name = DATA_NAMES[i], DATA_NAMES[i + 1]
        if X.ndim in (2, 3) and X.shape[1:] in ((784,), (28, 28)):
            X = X.reshape(-1, 1, 28, 28)
        if X.shape[1:] != (1, 28, 28) or X.dtype.kind not in "biuf":
            raise ValueError("{} has shape {} and dtype {}: expected numbers of shape "
                             "(N, 1, 28, 28), (N, 28, 28) or (N, 784)".format(
                                 X_name, X.shape, X.dtype))
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError("{} has shape {}: expected one label per image of {}, "
                             "shape ({},)".format(y_name, y.shape, X_name, len(X)))
        if not np.isfinite(X).all():
            raise ValueError("{} holds NaN or infinite values".format(X_name))
        if X.size and not (X.min() >= 0 and X.max() <= 1):
            raise ValueError("{} has values from {} to {}: expected [0, 1]; divide by 256 "
                             "as load_data does".format(X_name, X.min(), X.max()))
        if y.dtype.kind not in "iu" or y.size and not (y.min() >= 0 and y.max() <= 9):
            raise ValueError("{} must hold the digits 0 to 9 as integers (it holds {}{})".format(
                y_name, y.dtype, " from {} to {}".format(y.min(), y.max()) if y.size else ""))
        arrays[i] = X.astype(theano.config.floatX, copy=False)
        arrays[i + 1] = y.astype(np.uint8, copy=False)
    problem = batch_size_problem(batch_size, *(len(X) for X in arrays[::2]))
    if problem:
        raise ValueError(problem)
    return arrays


def seed_rngs(seed):
    """Seeds the shuffling, the initial weights and the dropout masks: numpy's
    global RNG and Lasagne's, from which each layer draws its own."""
    np.random.seed(seed)
    lasagne.random.set_rng(np.random.RandomState(seed))


# An arm64 kernel's /proc/cpuinfo has no "model name": it gives the core's
# implementer and part numbers (its MIDR register), which lscpu names from a
# table; these are the common ones (phones and boards, servers, Apple Silicon).
ARM_VENDORS = {0x41: "Arm", 0x42: "Broadcom", 0x43: "Cavium", 0x46: "Fujitsu",
               0x48: "HiSilicon", 0x4e: "NVIDIA", 0x51: "Qualcomm", 0x61: "Apple",
               0xc0: "Ampere"}
ARM_CORES = {
    (0x41, 0xd03): "Cortex-A53", (0x41, 0xd04): "Cortex-A35", (0x41, 0xd05): "Cortex-A55",
    (0x41, 0xd07): "Cortex-A57", (0x41, 0xd08): "Cortex-A72", (0x41, 0xd09): "Cortex-A73",
    (0x41, 0xd0a): "Cortex-A75", (0x41, 0xd0b): "Cortex-A76", (0x41, 0xd0c): "Neoverse-N1",
    (0x41, 0xd0d): "Cortex-A77", (0x41, 0xd40): "Neoverse-V1", (0x41, 0xd41): "Cortex-A78",
    (0x41, 0xd44): "Cortex-X1", (0x41, 0xd46): "Cortex-A510", (0x41, 0xd47): "Cortex-A710",
    (0x41, 0xd48): "Cortex-X2", (0x41, 0xd49): "Neoverse-N2", (0x41, 0xd4f): "Neoverse-V2",
    (0x41, 0xd80): "Cortex-A520", (0x41, 0xd81): "Cortex-A720", (0x41, 0xd82): "Cortex-X4",
    (0x41, 0xd84): "Neoverse-V3", (0x41, 0xd8e): "Neoverse-N3",
    (0x43, 0x0af): "ThunderX2", (0x46, 0x001): "A64FX", (0x48, 0xd01): "Kunpeng-920",
    (0x4e, 0x004): "Carmel", (0x61, 0x022): "M1 Icestorm", (0x61, 0x023): "M1 Firestorm",
    (0x61, 0x032): "M2 Blizzard", (0x61, 0x033): "M2 Avalanche",
    (0xc0, 0xac3): "Ampere-1", (0xc0, 0xac4): "Ampere-1a"}


def cpu_fields(cpuinfo="/proc/cpuinfo"):
    """The first processor's lines of /proc/cpuinfo, as {name: value}."""
    fields = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def cpu_flags():
    """The CPU's feature flags (x86's avx2, fma, avx512f ...; empty on arm64)."""
    return set(cpu_fields().get("flags", "").split())


def cpu_name(cpuinfo="/proc/cpuinfo", machine=None):
    """The CPU as the Device line names it: x86's model name; an arm64 core by
    its implementer and part. Under user-mode emulation (qemu-user, e.g. an
    arm64 container on an x86 host) /proc/cpuinfo is the host's: then both."""
    machine = machine or platform.machine()
    fields = cpu_fields(cpuinfo)
    model = fields.get("model name")
    if machine not in ("aarch64", "arm64"):
        return model or machine
    try:
        vendor, part = int(fields["CPU implementer"], 16), int(fields["CPU part"], 16)
    except (KeyError, ValueError):
        return "arm64, emulated on " + model if model else "arm64"
    name = ARM_CORES.get((vendor, part), "CPU part 0x%03x" % part)
    return "%s %s" % (ARM_VENDORS.get(vendor, "implementer 0x%02x" % vendor), name)


def describe_backend(compile_mode):
    """The device and BLAS Theano really uses (a GPU asked for must be active;
    a CPU BLAS must compute right products: compat.check_blas), and the
    speed-ups of the mode train_fn and val_fn were compiled in."""
    compat.check_blas()
    blas = [w if not w.startswith("-L") or os.path.relpath(w[2:], PROJECT).startswith("..")
            else "-L" + os.path.relpath(w[2:], PROJECT)  # the project's .venv: a short path
            for w in theano.config.blas.ldflags.split() if w.startswith(("-l", "-L"))]
    blas = " ".join(blas) or "none (numpy fallback)"
    if theano.config.device.startswith("opencl"):  # a GPU's or POCL's CPU device
        device, blas = "OpenCL " + gpu_env.gpu_in_use(), "CLBlast"
    elif compat.is_gpu_device(theano.config.device):
        device, blas = "GPU " + gpu_env.gpu_in_use(), "cuBLAS"
    else:
        device = "CPU " + cpu_name()
    return ("Device: {} ({}), floatX={}, BLAS: {}, speed-ups: {}".format(
        device, theano.config.device, theano.config.floatX, blas,
        speedups.describe(compile_mode)))
