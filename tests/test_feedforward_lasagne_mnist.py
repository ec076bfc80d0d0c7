"""Tests of the tutorial script: real Theano compilation, real MNIST (subsets)."""
import csv
import inspect
import io
import os
import re
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from PIL import Image

import feedforward_lasagne_mnist as flm
import lasagne

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The tutorial's printed lines, in order, for one epoch and for the end.
EPOCH_LINES = [r"Epoch \d+ of \d+ took \d+\.\d{3}s", r"training loss:\t\t\d+\.\d{6}",
               r"validation loss:\t\t\d+\.\d{6}", r"validation accuracy:\t\t\d+\.\d{2} %"]
FINAL_LINES = [r"Final results in \d+\.\d+ seconds:", r"  test loss:\t\t\t\d+\.\d{6}",
               r"  test accuracy:\t\t\d+\.\d{2} %"]


def tutorial_lines(text):
    """True when every line of `text` is one the tutorial prints (stdout)."""
    patterns = ["Loading data...", "Starting training..."] + EPOCH_LINES + FINAL_LINES
    return all(any(re.fullmatch(p, line) for p in patterns) for line in text.splitlines())


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, os.path.join(ROOT, "feedforward_lasagne_mnist.py")]
                          + list(args), capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, **(env or {})), timeout=300)


@pytest.fixture(scope="module")
def trained(small):
    """One network trained 2 epochs on the subset, shared by the tests below."""
    return flm.run_network(data=small, num_epochs=2, seed=1, progress=False)


# ------------------------------------------------------------ build_mlp -----
def test_build_mlp_architecture():
    network = flm.build_mlp()
    layers = lasagne.layers.get_all_layers(network)
    assert [type(l).__name__ for l in layers] == [
        "InputLayer", "DenseLayer", "DropoutLayer", "DenseLayer", "DropoutLayer", "DenseLayer"]
    assert layers[0].shape == (None, 1, 28, 28)
    assert [l.num_units for l in layers[1::2]] == [500, 300, 10]
    assert [l.p for l in layers[2:5:2]] == [0.4, 0.4]
    assert [l.nonlinearity for l in layers[1::2]] == [
        lasagne.nonlinearities.rectify, lasagne.nonlinearities.rectify,
        lasagne.nonlinearities.softmax]
    assert lasagne.layers.count_params(network, trainable=True) == 545810
    W1 = layers[1].W.get_value()
    assert W1.dtype == np.float32
    limit = np.sqrt(6.0 / (784 + 500))  # Glorot uniform bound
    assert np.abs(W1).max() <= limit and np.abs(W1).max() > 0.9 * limit


# ---------------------------------------------------- iterate_minibatches -----
def test_iterate_minibatches_sizes_and_order():
    X, y = np.arange(1050).reshape(1050, 1), np.arange(1050)
    batches = list(flm.iterate_minibatches(X, y, 500))
    assert [len(b[0]) for b in batches] == [500, 500]  # last partial batch dropped
    assert np.array_equal(np.concatenate([b[1] for b in batches]), np.arange(1000))
    assert all(np.array_equal(bx[:, 0], by) for bx, by in batches)


def test_iterate_minibatches_shuffle_is_a_permutation():
    X, y = np.arange(1000).reshape(1000, 1), np.arange(1000)
    np.random.seed(0)
    batches = list(flm.iterate_minibatches(X, y, 100, shuffle=True))
    seen = np.concatenate([b[1] for b in batches])
    assert len(batches) == 10 and sorted(seen) == list(range(1000))
    assert not np.array_equal(seen, np.arange(1000))
    assert all(np.array_equal(bx[:, 0], by) for bx, by in batches)  # pairs kept


def test_iterate_minibatches_length_mismatch():
    with pytest.raises(ValueError, match="3 inputs but 2 targets"):
        next(flm.iterate_minibatches(np.zeros(3), np.zeros(2), 1))


# -------------------------------------------------------------- training -----
def test_smoke_training_prints_tutorial_lines(small, capsys):
    network = flm.run_network(data=small, num_epochs=2, seed=0, progress=False)
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[:2] == ["Loading data...", "Starting training..."]
    for line, pattern in zip(out[2:], EPOCH_LINES * 2 + FINAL_LINES):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert len(out) == 2 + 8 + 3
    err = captured.err.splitlines()  # what the tutorial did not print goes to stderr
    assert re.fullmatch(r"Device: CPU .* \(cpu\), floatX=float32, BLAS: .*-l\S*openblas, "
                        r"speed-ups: on", err[0])
    assert re.fullmatch(r"Compiled train_fn and val_fn in \d+\.\d\ds", err[1])
    history = network.history
    assert history["epoch"] == [1, 2]
    assert history["train_loss"][1] < history["train_loss"][0]
    assert history["val_acc"][-1] > 0.8  # chance is 0.1
    assert len(history["batch_loss"]) == 2 * 6  # 3000 examples / 500
    assert np.isclose(np.mean(history["batch_loss"][6:]), history["train_loss"][1])


def test_run_network_has_the_tutorials_loops_inline():
    """The epoch and batch loops are in run_network itself, as the tutorial shows them."""
    source = inspect.getsource(flm.run_network)
    order = ["print('Loading data...')", "input_var = T.tensor4('inputs')\n"
             "        target_var = T.ivector('targets')", "network = build_mlp(input_var)",
             "loss = loss.mean()", "test_acc = T.mean(", "params = ", "updates = rmsprop(",
             "train_fn = theano.function(", "val_fn = theano.function(",
             'print("Starting training...")', "for epoch in range(num_epochs):",
             "train_err = 0", "train_batches = 0", "\n            start_time = time.time()",
             "iterate_minibatches(X_train, y_train,", "inputs, targets = batch",
             "train_fn(inputs, targets)", "train_err += ", "train_batches += 1",
             "val_err = 0", "val_acc = 0", "val_batches = 0",
             "iterate_minibatches(X_val, y_val, batch_size, shuffle=False)",
             "err, acc = val_fn(inputs, targets)", "val_batches += 1",
             'print("Epoch {} of {} took', "test_err = 0",
             "iterate_minibatches(X_test, y_test, batch_size, shuffle=False)",
             "test_batches += 1", 'print("Final results in', "return network",
             "except KeyboardInterrupt:"]
    positions = [source.find(piece) for piece in order]
    assert -1 not in positions, [p for p, i in zip(order, positions) if i == -1]
    assert positions == sorted(positions)


def test_data_is_converted_when_safe(small):
    X, y = small[0][:600], small[1][:600]
    as_given = [X.reshape(600, 784).astype(np.float64).tolist(), y.astype(np.int64).tolist(),
                X[:, 0], y.astype(np.int32), X.astype(np.float64), y]
    checked = flm.check_data(*as_given, batch_size=100, limit=500)
    for array, expected, dtype in zip(checked, [X[:500], y[:500], X, y, X, y],
                                      [np.float32, np.uint8] * 3):
        assert array.dtype == dtype and np.array_equal(array, expected)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.__setitem__(0, (d[0] * 256).astype(np.uint8)),
     "X_train has values from 0 to 255: expected [0, 1]; divide by 256 as load_data does"),
    (lambda d: d.__setitem__(3, d[3] + 5), "y_val must hold the digits 0 to 9 as integers "
                                           "(it holds uint8 from 5 to 14)"),
    (lambda d: d.__setitem__(5, d[5][:-1]), "y_test has shape (1999,): expected one label "
                                            "per image of X_test, shape (2000,)"),
    (lambda d: d.__setitem__(2, d[2][:, :, :14]), "X_val has shape (2000, 1, 14, 28)"),
    (lambda d: d.__setitem__(1, d[1].astype(np.float32)), "y_train must hold the digits"),
])
def test_bad_data_is_refused_before_compiling(small, change, message, monkeypatch):
    data = list(small)
    change(data)
    monkeypatch.setattr(flm.theano, "function", None)  # nothing may be compiled
    with pytest.raises(ValueError) as error:
        flm.run_network(data=data, num_epochs=1, progress=False)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("limit", [0, -5])
def test_limit_must_be_positive(small, limit):
    with pytest.raises(ValueError, match=r"^limit %d must be at least 1" % limit):
        flm.check_data(*small, limit=limit)


def test_seed_makes_runs_identical(small):
    data = small[:2] + small[2:4] * 2  # validation doubles as test: less work
    histories = [flm.run_network(data=data, num_epochs=1, seed=7, progress=False).history
                 for _ in range(2)]
    assert histories[0]["batch_loss"] == histories[1]["batch_loss"]
    assert histories[0]["val_loss"] == histories[1]["val_loss"]
    other = flm.run_network(data=data, num_epochs=1, seed=8, progress=False).history
    assert other["batch_loss"] != histories[0]["batch_loss"]


def test_keyboard_interrupt_returns_trained_network(small, monkeypatch, capsys):
    real_iterate, calls = flm.iterate_minibatches, []

    def interrupt_in_epoch_2(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # epoch 1's training and validation passes, then epoch 2
            raise KeyboardInterrupt
        return real_iterate(*args, **kwargs)

    monkeypatch.setattr(flm, "iterate_minibatches", interrupt_in_epoch_2)
    network = flm.run_network(data=small, num_epochs=5, seed=0, progress=False)
    assert "Interrupted: returning the network trained so far." in capsys.readouterr().out
    assert network.history["epoch"] == [1]  # the epoch that finished
    assert network.interrupted
    digits = [flm.get_class(network, x) for x in small[4][:200]]
    assert np.mean(np.array(digits) == small[5][:200]) > 0.7


def test_keyboard_interrupt_before_the_network_exists(monkeypatch):
    def interrupted_load(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(flm, "load_data", interrupted_load)
    assert flm.run_network() is None  # the original raised UnboundLocalError


def test_retrain_continues_from_given_parameters(trained, small):
    before = [p.copy() for p in lasagne.layers.get_all_param_values(trained)]
    first_loss = trained.history["train_loss"][0]
    same = flm.run_network(data=small, network=trained, num_epochs=1, progress=False)
    assert same is trained
    assert trained.history["epoch"] == [1, 2, 3]
    # It started where the 2 epochs ended: its first batch loss is far below
    # a fresh network's, and the parameters moved on from the saved ones.
    assert trained.history["batch_loss"][12] < 0.6 * trained.history["batch_loss"][0]
    assert trained.history["train_loss"][2] < first_loss
    after = lasagne.layers.get_all_param_values(trained)
    assert all(b.shape == a.shape and not np.array_equal(b, a) for b, a in zip(before, after))


def test_diverging_training_stops_with_a_message(small, capsys):
    with pytest.raises(flm.TrainingDiverged, match=r"training diverged in epoch 1"):
        flm.run_network(data=small, num_epochs=3, learning_rate=1e30, progress=False)
    out = capsys.readouterr().out
    assert "nan" not in out.lower() and "Epoch 1 of 3" not in out


# ---------------------------------------------------- history and plots -----
def test_history_csv(trained, tmp_path):
    path = tmp_path / "history.csv"
    flm.save_history(trained.history, str(path))
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["epoch", "train_loss", "val_loss", "val_acc", "epoch_time"]
    assert [int(r[0]) for r in rows[1:]] == trained.history["epoch"]
    assert [float(r[2]) for r in rows[1:]] == trained.history["val_loss"]
    assert os.listdir(tmp_path) == ["history.csv"]  # no temporary file left


def test_plot_is_a_real_png(trained, tmp_path):
    path = tmp_path / "curves.png"
    flm.plot_history(trained.history, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20000
    with Image.open(path) as image:
        assert image.size == (1000, 400)
        assert len(image.convert("L").getcolors(1 << 16)) > 50  # lines, text, not blank


# ----------------------------------------------------- save, load, predict ---
def test_save_load_round_trip(trained, small, tmp_path):
    path = str(tmp_path / "model.npz")
    flm.save_network(trained, path)
    loaded = flm.load_network(path)
    X = small[4][:500]
    assert np.array_equal(flm.predict_proba(loaded, X), flm.predict_proba(trained, X))
    assert os.listdir(tmp_path) == ["model.npz"]


def test_float64_checkpoint_loads_as_float32(trained, small, tmp_path):
    path = str(tmp_path / "m64.npz")
    values = [v.astype(np.float64) for v in lasagne.layers.get_all_param_values(trained)]
    np.savez(path, architecture=np.array("784-500-300-10"),
             **{"param_%d" % i: v for i, v in enumerate(values)})
    loaded = flm.load_network(path)
    assert np.allclose(flm.predict_proba(loaded, small[4][:100]),
                       flm.predict_proba(trained, small[4][:100]), atol=1e-6)


@pytest.mark.parametrize("kind", ["other architecture", "truncated", "not npz", "missing",
                                  "empty", "npy", "nan", "integers", "many arrays"])
def test_bad_checkpoints_are_refused(trained, tmp_path, kind):
    path = tmp_path / "model.npz"
    values = lasagne.layers.get_all_param_values(trained)
    if kind == "other architecture":
        np.savez(path, architecture=np.array("784-100-10"), param_0=np.zeros((784, 100)))
    elif kind == "truncated":
        flm.save_network(trained, str(path))
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
    elif kind in ("nan", "integers"):
        values[0] = values[0] * np.nan if kind == "nan" else values[0].astype(np.int32)
        np.savez(path, architecture=np.array("784-500-300-10"),
                 **{"param_%d" % i: v for i, v in enumerate(values)})
    with pytest.raises(flm.CheckpointError) as error:
        flm.load_network(str(path))
    message = str(error.value)
    assert message.startswith(str(path) + ": ") and "\n" not in message and len(message) < 400


def test_a_crafted_npz_is_refused_before_anything_is_allocated(trained, tmp_path):
    """A 2 GB param_0 declared in a small file: refused from its header, under a
    memory limit that np.load itself does not survive."""
    good, crafted = tmp_path / "good.npz", tmp_path / "crafted.npz"
    flm.save_network(trained, str(good))
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
        vm = [int(l.split()[1]) * 1024 for l in open("/proc/self/status")
              if l.startswith("VmSize")][0]
        resource.setrlimit(resource.RLIMIT_AS, (vm + 512 * 2 ** 20, resource.RLIM_INFINITY))
        try:
            flm.load_network(sys.argv[1])
        except flm.CheckpointError as e:
            print("refused:", e)
        try:
            np.load(sys.argv[1])["param_0"]
        except MemoryError:
            print("np.load: MemoryError")
    """)
    result = subprocess.run([sys.executable, "-c", code, str(crafted)], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("refused: %s: saved from another network" % crafted), result
    assert lines[1] == "np.load: MemoryError"  # the limit would have caught an allocation


def test_a_model_file_with_an_extra_array_names_it(trained, tmp_path):
    path = tmp_path / "m.npz"
    values = lasagne.layers.get_all_param_values(trained)
    np.savez(path, architecture=np.array("784-500-300-10"), notes=np.zeros(3),
             **{"param_%d" % i: v for i, v in enumerate(values)})
    with pytest.raises(flm.CheckpointError, match=r": holds notes besides a 784-500-300-10"):
        flm.load_network(str(path))
    with pytest.raises(flm.CheckpointError, match=r"^%s: a directory; " % tmp_path):
        flm.load_network(str(tmp_path))


def test_get_class_on_real_test_digits(trained, small):
    X_test, y_test = small[4], small[5]
    digits = [flm.get_class(trained, x) for x in X_test[:200]]
    assert all(isinstance(d, int) and 0 <= d <= 9 for d in digits)
    assert np.mean(np.array(digits) == y_test[:200]) > 0.8
    assert len([n for n in flm._predict_fns.keys() if n is trained]) == 1  # compiled once


def write_digit_png(path, pixels, invert=False, scale=1, mode="L"):
    image = Image.fromarray(255 - pixels if invert else pixels).convert(mode)
    image.resize((28 * scale, 28 * scale)).save(path)


def test_predict_cli(trained, mnist, tmp_path):
    model = tmp_path / "m.npz"
    flm.save_network(trained, str(model))
    X_test, y_test = mnist[4], mnist[5]
    raw = (X_test[:3, 0] * 256).astype(np.uint8)
    write_digit_png(tmp_path / "a.png", raw[0])
    write_digit_png(tmp_path / "b.png", raw[1], invert=True, scale=3, mode="RGB")  # ink on paper
    write_digit_png(tmp_path / "c.png", raw[2], scale=2)
    result = run_cli("--load-model", str(model), "--predict",
                     *(str(tmp_path / n) for n in ("a.png", "b.png", "c.png")))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    for line, name, label in zip(lines, "abc", y_test[:3]):
        match = re.fullmatch(r"(.*): (\d) \((\d+\.\d) %\)", line)
        assert match and match.group(1).endswith(name + ".png")
        assert int(match.group(2)) == label and 10 < float(match.group(3)) <= 100

    ink = Image.fromarray(raw[1])  # a black digit drawn on a transparent background
    Image.merge("RGBA", [Image.new("L", ink.size, 0)] * 3 + [ink]).save(tmp_path / "rgba.png")
    result = run_cli("--load-model", str(model), "--predict", str(tmp_path / "rgba.png"))
    assert result.returncode == 0 and result.stdout.startswith(
        "%s: %d (" % (tmp_path / "rgba.png", y_test[1]))

    Image.new("L", (1, 1), 200).save(tmp_path / "blank.png")
    result = run_cli("--load-model", str(model), "--predict", str(tmp_path / "blank.png"))
    assert result.returncode == 1 and "blank.png: no digit to read" in result.stderr

    (tmp_path / "bad.png").write_bytes(b"not an image")
    result = run_cli("--load-model", str(model), "--predict", str(tmp_path / "bad.png"),
                     str(tmp_path / "a.png"), str(tmp_path / "blank.png"))
    assert result.returncode == 1  # every image tried, each bad one on its own line
    assert result.stdout.startswith("%s: %d (" % (tmp_path / "a.png", y_test[0]))
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and "bad.png: not a readable image" in errors[0]
    assert "blank.png: no digit to read" in errors[1]


# ------------------------------------------------------------ command line ---
def test_cli_quick_run_with_limit(tmp_path):
    out = {n: str(tmp_path / n) for n in ("m.npz", "h.csv", "p.png")}
    result = run_cli("--limit", "1000", "--epochs", "2", "--seed", "3", "--no-progress",
                     "--save-model", out["m.npz"], "--history", out["h.csv"],
                     "--plot", out["p.png"])
    assert result.returncode == 0, result.stderr
    assert "ERROR" not in result.stderr and "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert "Epoch 2 of 2 took" in result.stdout and re.search(FINAL_LINES[2], result.stdout)
    assert all(os.path.getsize(p) > 0 for p in out.values())
    assert len(list(csv.reader(open(out["h.csv"])))) == 3
    assert flm.load_network(out["m.npz"]) is not None
    assert "\r" not in result.stdout + result.stderr and len(lines) == 13  # no progress bar
    assert tutorial_lines(result.stdout)
    umask = os.umask(0)
    os.umask(umask)
    assert all(os.stat(p).st_mode & 0o777 == 0o666 & ~umask for p in out.values())


BAD_ARGUMENTS = [
    (["--limit", "10"], "--batch-size 500 --limit 10: batch size 500 is larger than the "
                        "smallest data set (10 examples)"),
    (["--limit", "0"], "--limit must be >= 1"),
    (["--predict", "x.png"], "--predict needs --load-model"),
    (["--save-model", "/nonexistent/m.npz"], "cannot write there (no directory /nonexistent)"),
    (["--load-model", "/nonexistent.npz", "--epochs", "0"], "/nonexistent.npz: no such file"),
    (["--history", "/tmp"], "--history /tmp: cannot write there (a directory)"),
    (["--batch-size", "20000"], "--batch-size 20000: batch size 20000 is larger than the "
                                "smallest data set (10000 examples)"),
    (["--batch-size", "0"], "batch size 0 is not a positive number"),
    (["--load-model", "m.npz", "--predict", "x.png", "--plot", "p.png"], "--predict does not"),
    (["--lr", "1e30", "--limit", "1000", "--epochs", "1"], "error: training diverged in epoch 1"),
    (["--load-model", "m.npz", "--history", "m.npz"], "--history m.npz: the same file as "
                                                      "--load-model"),
    (["--history", "out", "--plot", "./out"], "--plot ./out: the same file as --history"),
    (["--save-model", ""], "--save-model: an empty path"),
    (["--seed", "-1"], "argument --seed: -1 is not between 0 and 2**32 - 1"),
    (["--seed", "99999999999"], "argument --seed: 99999999999 is not between 0 and 2**32 - 1"),
    (["--lr", "1e-300"], "--lr 1e-300 is 0 in float32 (floatX): no training would happen"),
    (["--data-dir", os.path.join(ROOT, "README.md")],
     "README.md is not a directory: point --data-dir or MNIST_DATA_DIR at the directory "
     "holding the four MNIST files"),
]


@pytest.mark.parametrize("args, message", BAD_ARGUMENTS)
def test_cli_bad_arguments(args, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit:
        flm.main(args)
    code, err = exit.value.code, capsys.readouterr().err
    if isinstance(code, str):  # a one-line error: Python prints it and exits 1
        assert message in code and "\n" not in code
    else:  # argparse: usage and the message, exit 2
        assert code == 2 and message in err


@pytest.mark.parametrize("args, status", [(["--batch-size", "0"], 2),
                                          (["--load-model", "/nonexistent.npz"], 1),
                                          ("floatX=float16", 1)])
def test_cli_bad_arguments_exit_status(args, status):
    if isinstance(args, str):
        result = run_cli("--limit", "500", "--epochs", "1", env={"THEANO_FLAGS": args})
    else:
        result = run_cli(*args)
    assert result.returncode == status and "error: " in result.stderr
    assert "Traceback" not in result.stderr and "ERROR" not in result.stderr


def test_cli_corrupt_data_file(tmp_path):
    source = os.path.join(ROOT, "data", "mnist")
    for name in os.listdir(source):
        data = open(os.path.join(source, name), "rb").read()
        (tmp_path / name).write_bytes(data)
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-200])  # truncated
    result = run_cli("--epochs", "1", env={"MNIST_DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    error = result.stderr.strip()
    assert "\n" not in error and "t10k-labels-idx1-ubyte" in error


def test_tutorial_repl_usage_verbatim():
    """The tutorial's REPL session, on a subset so that it runs quickly."""
    script = textwrap.dedent("""
        import importlib
        import feedforward_lasagne_mnist as flm

        data = flm.load_data()
        data = [a[:1000] for a in data]   # the subset (the tutorial uses all of it)
        network = flm.run_network(data=data, num_epochs=1)
        first = network

        importlib.reload(flm)
        network = flm.run_network(data=data, num_epochs=1)
        print("RELOADED", network is not first, type(network).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Starting training...") == 2
    assert result.stdout.count("  test accuracy:") == 2
    assert result.stdout.strip().endswith("RELOADED True DenseLayer")


@pytest.mark.skipif(os.path.exists("/dev/nvidia0"), reason="this machine has a GPU")
@pytest.mark.parametrize("args, env", [(["--device", "cuda"], {}),
                                       ([], {"THEANO_FLAGS": "device=cuda"}),
                                       ([], {"THEANO_FLAGS": "device=gpu"}),  # 2016's
                                       ([], {"THEANO_FLAGS": "device=opencl0:0"})])
def test_gpu_asked_for_but_unavailable_fails_loudly(args, env):
    result = run_cli(*args, "--epochs", "1", "--limit", "500", env=env)
    assert result.returncode == 1
    assert "Starting training" not in result.stdout  # never a silent CPU run
    lines = [l for l in result.stderr.strip().splitlines()
             if not l.startswith("compat: device=gpu is Theano's old CUDA backend")]
    assert len(lines) == 1, result.stderr  # no traceback from Theano either
    last = lines[0]
    assert last.startswith("error: ") and any(
        word in last for word in ("libcuda", "pygpu", "only Theano's CUDA backend"))


def test_progress_bar_on_stderr_only_on_a_terminal(tmp_path):
    """A tqdm bar over the batches when stderr is a terminal; stdout stays the tutorial's."""
    import fcntl
    import pty
    import struct
    import termios
    try:
        master, slave = pty.openpty()
    except OSError as e:  # e.g. a chroot without /dev/pts
        pytest.skip("no pseudo-terminal here: %s" % e)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # 100 columns
    with open(tmp_path / "log.txt", "w") as log:  # python feedforward_lasagne_mnist.py > log.txt
        process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "feedforward_lasagne_mnist.py"),
             "--limit", "1000", "--epochs", "2", "--batch-size", "100"],
            stdout=log, stderr=slave, cwd=ROOT)
    os.close(slave)
    output = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=300) == 0
    assert re.search(r"\d+/10 \[.*batch/s", output.decode())  # 10 batches per epoch
    stdout = (tmp_path / "log.txt").read_text()
    assert tutorial_lines(stdout) and stdout.count("Epoch ") == 2

    piped = run_cli("--limit", "1000", "--epochs", "1", "--batch-size", "100")
    assert piped.returncode == 0 and "batch/s" not in piped.stdout + piped.stderr


@pytest.mark.parametrize("signame, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_ctrl_c_and_sigterm_on_the_command_line(tmp_path, signame, status):
    """SIGINT (Ctrl-C) or SIGTERM: exit 130 or 143; the model is saved only if
    an epoch completed. The child gets SIGINT at its default disposition even
    when the tests run with it ignored (a background job, nohup)."""
    import signal
    signum = getattr(signal, signame)
    for wait_for, saved in (("Loading data...", False), ("Epoch 1 of", True)):
        model = tmp_path / ("m-%s.npz" % saved)
        process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "feedforward_lasagne_mnist.py"), "--limit",
             "5000", "--epochs", "200", "--no-progress", "--save-model", str(model)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),  # each line as soon as printed
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        for line in process.stdout:
            if line.startswith(wait_for):
                break
        process.send_signal(signum)
        out, err = process.communicate(timeout=120)
        assert process.returncode == status, err
        assert "Traceback" not in err
        assert model.exists() == saved
        if saved:
            assert flm.load_network(str(model)) is not None


def test_ctrl_c_while_importing_exits_quietly():
    import signal
    import time
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "feedforward_lasagne_mnist.py"), "--epochs", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(0.3)  # the interpreter is up; Theano and Lasagne are being imported
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in err, err
