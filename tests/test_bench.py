"""bench/bench.py's variants: each is the tutorial script with a reader's
lines replaced exactly, and builds the network it says; a line that is no
longer in the script stops the benchmark with its name. (The benchmark
itself is timing, run by `make bench`, not here.)"""
import importlib.util
import inspect
import os
import sys

import lasagne
import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench  # noqa: E402
import peer_data  # noqa: E402


def variant_module(name, tmp_path):
    """The variant's copy of the script, written by the benchmark and imported."""
    folder = bench.write_variant(ROOT, name, str(tmp_path))
    spec = importlib.util.spec_from_file_location(
        "variant_" + name.replace("-", "_"), os.path.join(folder, "feedforward_lasagne_mnist.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def layer_sizes(network):
    return [layer.num_units for layer in lasagne.layers.get_all_layers(network)
            if isinstance(layer, lasagne.layers.DenseLayer)]


def dropouts(network):
    return [layer.p for layer in lasagne.layers.get_all_layers(network)
            if isinstance(layer, lasagne.layers.DropoutLayer)]


@pytest.mark.parametrize("name", list(bench.VARIANTS))
def test_each_variant_builds_what_it_says(name, tmp_path):
    flm = variant_module(name, tmp_path)
    network = flm.build_mlp()
    sizes, batch = bench.VARIANTS[name][3]
    assert [784] + layer_sizes(network) == list(sizes)
    assert dropouts(network) == [0.4] * (len(sizes) - 2)
    assert inspect.signature(flm.run_network).parameters["batch_size"].default == batch
    # the update rule run_network calls: imported by the script under its name
    rule = "adam" if name == "adam" else "rmsprop"
    assert rule in vars(flm) and ({"adam", "rmsprop"} - {rule}).isdisjoint(vars(flm))
    # the peers get the same net and batch from their flags
    flags = dict(zip(bench.VARIANTS[name][2][::2], bench.VARIANTS[name][2][1::2]))
    hidden = peer_data.hidden_sizes(flags.get("--hidden", "500,300"))
    assert peer_data.sizes_of(hidden) == sizes
    assert int(flags.get("--batch-size", 500)) == batch


def test_a_line_no_longer_in_the_script_is_named(tmp_path):
    source = open(os.path.join(ROOT, "feedforward_lasagne_mnist.py")).read()
    with pytest.raises(bench.VariantError, match="variant adam: 'from lasagne.updates import "
                       "rmsprop' is in feedforward_lasagne_mnist.py 0 times"):
        bench.variant_source(source.replace("import rmsprop", "import (rmsprop)"), "adam")
    (tmp_path / "feedforward_lasagne_mnist.py").write_text(source.replace("batch_size=500", "b"))
    result = bench_cli("--faithful-dir", str(tmp_path), "--variants", "batch-100")
    assert result.returncode != 0 and "variant batch-100: 'batch_size=500,'" in result.stderr
    assert result.stdout == ""  # stopped before running anything


def bench_cli(*args):
    import subprocess
    return subprocess.run([sys.executable, os.path.join(ROOT, "bench", "bench.py")] + list(args),
                          capture_output=True, text=True, timeout=120)


def test_unknown_variant_is_refused():
    result = bench_cli("--variants", "adam,wider")
    assert result.returncode == 2 and "--variants: choose among" in result.stderr
