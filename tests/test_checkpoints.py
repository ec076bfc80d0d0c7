"""checkpoints: model files checked before they are read; another network's
file refused naming both architectures."""
import io
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import lasagne

import feedforward_lasagne_mnist as flm
from conftest import ROOT
from lasagne_mnist_port.checkpoints import CheckpointError, load_parameters, save_network


def test_float64_checkpoint_loads_as_float32(trained, small, tmp_path):
    path = str(tmp_path / "m64.npz")
    values = [v.astype(np.float64) for v in lasagne.layers.get_all_param_values(trained)]
    np.savez(path, architecture=np.array("784-500-300-10"),
             **{"param_%d" % i: v for i, v in enumerate(values)})
    loaded = flm.load_network(path)
    assert np.allclose(flm.predict_proba(loaded, small[4][:100]),
                       flm.predict_proba(trained, small[4][:100]), atol=1e-6)


@pytest.mark.parametrize("kind", ["other architecture", "truncated", "not npz", "missing",
                                  "empty", "npy", "nan", "integers", "many arrays",
                                  "float32 overflow", "bias shape", "extra param", "param_00",
                                  "no label", "text member"])
def test_bad_checkpoints_are_refused(trained, tmp_path, kind):
    path = tmp_path / "model.npz"
    values = lasagne.layers.get_all_param_values(trained)
    if kind == "other architecture":
        np.savez(path, architecture=np.array("784-100-10"), param_0=np.zeros((784, 100)))
    elif kind == "truncated":
        save_network(trained, str(path))
        path.write_bytes(path.read_bytes()[:100000])
    elif kind == "not npz":
        path.write_text("hello, not a model\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "npy":
        np.save(str(path), values[0])
        (tmp_path / "model.npz.npy").rename(path)
    elif kind == "many arrays":
        np.savez(path, **{"a%d" % i: np.zeros(1) for i in range(1000)})
    elif kind == "missing":
        pass
    elif kind == "text member":
        save_network(trained, str(path))
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("README.txt", "notes")
    else:
        arrays = {"param_%d" % i: v for i, v in enumerate(values)}
        if kind in ("nan", "integers", "float32 overflow"):
            arrays["param_0"] = {"nan": values[0] * np.nan, "integers": values[0].astype(np.int32),
                                 "float32 overflow": values[0].astype(np.float64) * 1e42}[kind]
        elif kind == "bias shape":
            arrays["param_1"] = values[1][:-1]
        elif kind == "extra param":
            arrays["param_6"] = np.zeros(10, np.float32)
        elif kind == "param_00":
            arrays["param_00"] = arrays.pop("param_0")
        label = {} if kind == "no label" else {"architecture": np.array("784-500-300-10")}
        np.savez(path, **label, **arrays)
    with pytest.raises(CheckpointError) as error:
        flm.load_network(str(path))
    message = str(error.value)
    assert message.startswith(str(path) + ": ") and "\n" not in message and len(message) < 400
    assert "a 784-500-300-10 network; this one is 784-500-300-10" not in message
    expected = {"float32 overflow": "not all finite numbers in float32",
                "bias shape": "param_1 has shape (499,), where this 784-500-300-10 network's "
                              "has (500,)",
                "extra param": "holds 7 parameter arrays", "param_00": "holds param_00 besides",
                "no label": "not labelled with its architecture", "text member": "README.txt"}
    assert expected.get(kind, "") in message


def test_a_crafted_npz_is_refused_before_anything_is_allocated(trained, tmp_path):
    """A 2 GB param_0 declared in a small file: refused from its header, under a
    memory limit that np.load itself does not survive."""
    good, crafted = tmp_path / "good.npz", tmp_path / "crafted.npz"
    save_network(trained, str(good))
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (25000, 20000)})
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(crafted, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "param_0.npy":
                data = header.getvalue() + b"\0" * 1024  # the magic, the header, 1 KB
            dst.writestr(info.filename, data)
    code = textwrap.dedent("""
        import resource, sys
        import numpy as np
        import feedforward_lasagne_mnist as flm
        from lasagne_mnist_port.checkpoints import CheckpointError
        vm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status")
              if l.startswith("VmSize")][0]
        resource.setrlimit(resource.RLIMIT_AS, (vm + 512 * 2 ** 20, resource.RLIM_INFINITY))
        try:
            flm.load_network(sys.argv[1])
        except CheckpointError as e:
            print("refused:", e)
        try:
            np.load(sys.argv[1])["param_0"]
        except MemoryError:
            print("np.load: MemoryError")
    """)
    result = subprocess.run([sys.executable, "-c", code, str(crafted)], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("refused: %s: saved from a 25000-20000-300-10 network; this one is "
                               "784-500-300-10" % crafted), result
    assert lines[1] == "np.load: MemoryError"  # the limit would have caught an allocation


def test_a_model_file_with_an_extra_array_names_it(trained, tmp_path):
    path = tmp_path / "m.npz"
    values = lasagne.layers.get_all_param_values(trained)
    np.savez(path, architecture=np.array("784-500-300-10"), notes=np.zeros(3),
             **{"param_%d" % i: v for i, v in enumerate(values)})
    with pytest.raises(CheckpointError, match=r": holds notes besides a model's arrays"):
        flm.load_network(str(path))
    with pytest.raises(CheckpointError, match=r"^%s: a directory; " % tmp_path):
        flm.load_network(str(tmp_path))



def test_a_file_records_the_network_it_holds(trained, tmp_path):
    """A 784-100-10 network is saved as one; loading it into the tutorial's
    784-500-300-10 says both, in one line; it loads into a network like itself."""
    from lasagne.layers import DenseLayer, InputLayer
    from lasagne.nonlinearities import softmax

    def small_mlp():
        return DenseLayer(DenseLayer(InputLayer((None, 1, 28, 28)), num_units=100),
                          num_units=10, nonlinearity=softmax)
    other, path = small_mlp(), str(tmp_path / "small.npz")
    save_network(other, path)
    with np.load(path) as f:
        assert str(f["architecture"]) == "784-100-10"
    with pytest.raises(CheckpointError) as error:
        flm.load_network(path)
    assert str(error.value) == ("%s: saved from a 784-100-10 network; this one is "
                                "784-500-300-10" % path)
    again = load_parameters(small_mlp(), path)
    for a, b in zip(lasagne.layers.get_all_param_values(again),
                    lasagne.layers.get_all_param_values(other)):
        np.testing.assert_array_equal(a, b)
    bigger = str(tmp_path / "big.npz")
    save_network(trained, bigger)
    with pytest.raises(CheckpointError, match=r"saved from a 784-500-300-10 network; this one "
                                              r"is 784-100-10$"):
        load_parameters(small_mlp(), bigger)
