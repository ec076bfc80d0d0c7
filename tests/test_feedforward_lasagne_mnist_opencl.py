"""The tutorial on Theano's gpuarray backend through an OpenCL device (on a machine
without a GPU, POCL's, which runs on the CPU): train_fn's work runs on the device,
the losses are the CPU's for the same seed, model files go both ways, and the
command line trains there. (Without a driver: tests/test_cli.py.) The same backend as CUDA, minus NVRTC, cuBLAS and the
driver."""
import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import feedforward_lasagne_mnist as flm
from conftest import ROOT, run_cli
from lasagne_mnist_port import gpu_env


def opencl_problem():
    """Why there is no OpenCL device opencl0:0 here, or None. Asked in a child
    process: a driver may abort the process that asks (POCL does where /sys is
    not mounted, e.g. in a bare chroot)."""
    if importlib.util.find_spec("pygpu") is None:
        return "pygpu is not importable"
    probe = ("from lasagne_mnist_port import gpu_env\n"
             "try:\n    gpu_env.check_opencl('opencl0:0')\n"
             "except gpu_env.GpuEnvError as e:\n    print(e)\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        return "the OpenCL driver stopped the process listing its devices, status %d: %s" % (
            result.returncode, last)
    return result.stdout.strip() or None


PROBLEM = opencl_problem()
pytestmark = pytest.mark.skipif(
    PROBLEM is not None, reason="no OpenCL device here (%s): tools/setup.sh --with-opencl "
                                "installs %s" % (PROBLEM, gpu_env.OPENCL_PACKAGES))

DEVICE_RUN = r"""
import json, sys
import numpy as np, theano
import feedforward_lasagne_mnist as flm
compiled, function = [], theano.function
def keep(*args, **kwargs):
    compiled.append(function(*args, **kwargs))
    return compiled[-1]
theano.function = keep
data = [a[:2000] if i < 2 else a[:1000] for i, a in enumerate(flm.load_data())]
network = flm.run_network(data=data, num_epochs=2, seed=1, progress=False)
theano.function = function
nodes = compiled[0].maker.fgraph.toposort()
ops = [type(n.op).__name__ for n in nodes]
transfers = [[type(n.op).__name__, n.inputs[0].ndim] for n in nodes
             if type(n.op).__name__ in ("GpuFromHost", "HostFromGpu")]
flm.save_network(network, sys.argv[1])
loaded = flm.load_network(sys.argv[1])
X = data[4][:500]
print(json.dumps({"device": theano.config.device, "ops": ops, "transfers": transfers,
                  "history": network.history, "probabilities": flm.predict_proba(network, X).tolist(),
                  "loaded": flm.predict_proba(loaded, X).tolist()}))
"""


@pytest.fixture(scope="module")
def device_run(tmp_path_factory):
    model = str(tmp_path_factory.mktemp("opencl") / "device.npz")
    env = gpu_env.gpu_environment(dict(os.environ, THEANO_FLAGS="device=opencl0:0"))
    result = subprocess.run([sys.executable, "-c", DEVICE_RUN, model], capture_output=True,
                            text=True, cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^Device: OpenCL .* \(opencl0:0\), floatX=float32, BLAS: CLBlast, ",
                     result.stderr, re.M)
    assert "speed-ups: on, except the CPU-only 1, 4, 5, 6" in result.stderr
    return dict(json.loads(result.stdout.strip().splitlines()[-1]), model=model)


def test_train_fn_runs_on_the_device(device_run):
    ops = device_run["ops"]
    assert device_run["device"] == "opencl0:0"
    # the products (CLBlast), the elementwise loops, the reductions, both
    # cross-entropy ops and the dropout generator are device ops ...
    for op in ("GpuElemwise", "GpuCrossentropySoftmaxArgmax1HotWithBias",
               "GpuCrossentropySoftmax1HotWithBiasDx", "GPUA_mrg_uniform"):
        assert op in ops, op
    assert len([o for o in ops if o in ("GpuDot22", "GpuGemm")]) == 8
    assert any(o.startswith("GpuCAReduce") for o in ops)
    assert not any(o in ("Dot22", "Gemm", "Elemwise", "mrg_uniform") for o in ops)
    # ... and only the batch goes to the device (the images, the labels, and the
    # batch's size for the mean, a scalar), and only the loss comes back
    assert sorted(device_run["transfers"]) == [
        ["GpuFromHost", 0], ["GpuFromHost", 1], ["GpuFromHost", 4], ["HostFromGpu", 0]]


def test_the_losses_are_the_cpus_for_the_same_seed(device_run, mnist):
    """The CPU with the stock code paths draws the same dropout masks from the
    same seed (Theano's MRG generator, on the device bit for bit as on the CPU)."""
    data = [a[:2000] if i < 2 else a[:1000] for i, a in enumerate(mnist)]
    cpu = flm.run_network(data=data, num_epochs=2, seed=1, progress=False, speedups=False)
    device = device_run["history"]
    # float32 sums in another order (CLBlast, the device's reductions): 1e-5
    np.testing.assert_allclose(device["batch_loss"], cpu.history["batch_loss"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(device["val_loss"], cpu.history["val_loss"], rtol=0, atol=1e-5)
    assert device["val_acc"] == pytest.approx(cpu.history["val_acc"], abs=1e-3)


def test_a_device_trained_model_loads_on_the_device_and_on_the_cpu(device_run, mnist):
    probabilities = np.array(device_run["probabilities"])
    assert np.array_equal(np.array(device_run["loaded"]), probabilities)  # on the device
    on_cpu = flm.predict_proba(flm.load_network(device_run["model"]), mnist[4][:500])
    np.testing.assert_allclose(on_cpu, probabilities, rtol=0, atol=1e-5)
    assert np.mean(on_cpu.argmax(1) == mnist[5][:500]) > 0.6  # 2 epochs on 2,000; chance 0.1


@pytest.mark.slow  # two more runs of the command line, one on the device
def test_the_command_line_trains_on_the_device_to_the_cpus_accuracy():
    args = ["--limit", "2000", "--epochs", "1", "--seed", "1", "--no-progress"]
    device = run_cli(*args, "--device", "opencl0:0")
    cpu = run_cli(*args, "--no-speedups")  # Theano's own dropout generator, as on the device
    assert device.returncode == 0 and cpu.returncode == 0, device.stderr + cpu.stderr
    assert re.search(r"^Device: OpenCL .* \(opencl0:0\), floatX=float32", device.stderr, re.M)
    accuracy = [re.search(r"test accuracy:\t\t(\d+\.\d\d) %", r.stdout).group(1)
                for r in (device, cpu)]
    assert accuracy[0] == accuracy[1]

