"""The tutorial script: build_mlp, iterate_minibatches, run_network and its
printed lines, the exercises, the REPL usage; real Theano compilation, real
MNIST (subsets)."""
import inspect
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import feedforward_lasagne_mnist as flm
import lasagne
from conftest import EPOCH_LINES, FINAL_LINES, ROOT


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


def test_smoke_training_prints_tutorial_lines(small, capsys):
    network = flm.run_network(data=small, num_epochs=2, seed=0, progress=False)
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[:2] == ["Loading data...", "Starting training..."]
    for line, pattern in zip(out[2:], EPOCH_LINES * 2 + FINAL_LINES):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert len(out) == 2 + 8 + 3
    err = captured.err.splitlines()  # what the tutorial did not print goes to stderr
    # (zero-skipping stays off where an earlier test of this process loaded OpenBLAS)
    assert re.fullmatch(r"Device: CPU .* \(cpu\), floatX=float32, BLAS: .*-l\S*openblas, "
                        r"speed-ups: on(, except 5 zero-skipping products \(OpenBLAS was "
                        r"loaded before OPENBLAS_THREAD_TIMEOUT could be set\))?", err[0])
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


def test_retrain_continues_from_given_parameters(small):
    network = flm.run_network(data=small, num_epochs=2, seed=2, progress=False)
    before = [p.copy() for p in lasagne.layers.get_all_param_values(network)]
    first_loss = network.history["train_loss"][0]
    same = flm.run_network(data=small, network=network, num_epochs=1, progress=False)
    assert same is network
    assert network.history["epoch"] == [1, 2, 3]
    # It started where the 2 epochs ended: its first batch loss is far below
    # a fresh network's, and the parameters moved on from the saved ones.
    assert network.history["batch_loss"][12] < 0.6 * network.history["batch_loss"][0]
    assert network.history["train_loss"][2] < first_loss
    after = lasagne.layers.get_all_param_values(network)
    assert all(b.shape == a.shape and not np.array_equal(b, a) for b, a in zip(before, after))


def test_diverging_training_stops_with_a_message(small, capsys):
    with pytest.raises(flm.TrainingDiverged, match=r"training diverged in epoch 1"):
        flm.run_network(data=small, num_epochs=3, learning_rate=1e30, progress=False)
    out = capsys.readouterr().out
    assert "nan" not in out.lower() and "Epoch 1 of 3" not in out


def test_get_class_on_real_test_digits(trained, small):
    X_test, y_test = small[4], small[5]
    digits = [flm.get_class(trained, x) for x in X_test[:200]]
    assert all(isinstance(d, int) and 0 <= d <= 9 for d in digits)
    assert np.mean(np.array(digits) == y_test[:200]) > 0.8
    assert len([n for n in flm._predict_fns.keys() if n is trained]) == 1  # compiled once


def test_save_load_round_trip(trained, small, tmp_path):
    path = str(tmp_path / "model.npz")
    flm.save_network(trained, path)
    loaded = flm.load_network(path)
    X = small[4][:500]
    assert np.array_equal(flm.predict_proba(loaded, X), flm.predict_proba(trained, X))
    assert os.listdir(tmp_path) == ["model.npz"]


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

