"""cli: the command line of feedforward_lasagne_mnist.py, in real processes
where it matters (exit statuses, signals, terminals)."""
import csv
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import feedforward_lasagne_mnist as flm
from conftest import FINAL_LINES, ROOT, run_cli, tutorial_lines
from lasagne_mnist_port import cli
from lasagne_mnist_port.checkpoints import save_network


def write_digit_png(path, pixels, invert=False, scale=1, mode="L"):
    image = Image.fromarray(255 - pixels if invert else pixels).convert(mode)
    image.resize((28 * scale, 28 * scale)).save(path)


def test_predict_cli(trained, mnist, tmp_path):
    model = tmp_path / "m.npz"
    save_network(trained, str(model))
    X_test, y_test = mnist[4], mnist[5]
    raw = (X_test[:3, 0] * 256).astype(np.uint8)
    write_digit_png(tmp_path / "a.png", raw[0])
    write_digit_png(tmp_path / "b.png", raw[1], invert=True, scale=3, mode="RGB")  # ink on paper
    write_digit_png(tmp_path / "c.png", raw[2], scale=2)
    ink = Image.fromarray(raw[1])  # a black digit drawn on a transparent background
    Image.merge("RGBA", [Image.new("L", ink.size, 0)] * 3 + [ink]).save(tmp_path / "rgba.png")
    result = run_cli("--load-model", str(model), "--predict",
                     *(str(tmp_path / n) for n in ("a.png", "b.png", "c.png", "rgba.png")))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 4
    for line, name, label in zip(lines, ["a", "b", "c", "rgba"], list(y_test[:3]) + [y_test[1]]):
        match = re.fullmatch(r"(.*): (\d) \((\d+\.\d) %\)", line)
        assert match and match.group(1).endswith(name + ".png")
        assert int(match.group(2)) == label and 10 < float(match.group(3)) <= 100

    # every image tried, each bad one on its own line, and the exit status 1
    Image.new("L", (1, 1), 200).save(tmp_path / "blank.png")
    (tmp_path / "bad.png").write_bytes(b"not an image")
    result = run_cli("--load-model", str(model), "--predict", str(tmp_path / "bad.png"),
                     str(tmp_path / "a.png"), str(tmp_path / "blank.png"))
    assert result.returncode == 1
    assert result.stdout.startswith("%s: %d (" % (tmp_path / "a.png", y_test[0]))
    # (Theano may add lines of its own: waiting for another process's compile lock)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2 and "bad.png: not a readable image" in errors[0]
    assert "blank.png: no digit to read" in errors[1]


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
    # --device: the forms docs/cli.md lists, exactly (never read as a default)
    (["--device", ""], "argument --device: '': choose cpu, cuda, cudaN or openclP:D"),
    (["--device", "cpu "], "argument --device: 'cpu ': choose cpu, cuda, cudaN or openclP:D"),
    (["--device", " cuda"], "argument --device: ' cuda': choose cpu"),
    (["--device", "cuda,floatX=float64"], "argument --device: 'cuda,floatX=float64': choose"),
    (["--device", "opencl0"], "argument --device: 'opencl0': choose cpu"),
    (["--data-dir", os.path.join(ROOT, "README.md")],
     "README.md is not a directory: point --data-dir or MNIST_DATA_DIR at the directory "
     "holding the four MNIST files"),
]


@pytest.mark.parametrize("args, message", BAD_ARGUMENTS)
def test_cli_bad_arguments(args, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit:
        cli.main(flm, args)
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


@pytest.mark.skipif(os.path.exists("/dev/nvidia0"), reason="this machine has a GPU")
@pytest.mark.parametrize("args, env", [(["--device", "cuda"], {}),
                                       ([], {"THEANO_FLAGS": "device=cuda"}),
                                       ([], {"THEANO_FLAGS": "device=gpu"}),  # 2016's
                                       ([], {"THEANO_FLAGS": "device=opencl0:0",
                                             "OCL_ICD_VENDORS": os.devnull})])  # no driver
def test_gpu_asked_for_but_unavailable_fails_loudly(args, env):
    result = run_cli(*args, "--epochs", "1", "--limit", "500", env=env)
    assert result.returncode == 1
    assert "Starting training" not in result.stdout  # never a silent CPU run
    lines = [l for l in result.stderr.strip().splitlines()
             if not l.startswith("compat: device=gpu is Theano's old CUDA backend")]
    assert len(lines) == 1, result.stderr  # no traceback from Theano either
    last = lines[0]
    assert last.startswith("error: ") and any(
        word in last for word in ("libcuda", "pygpu", "OpenCL"))


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



@pytest.mark.parametrize("text, device", [("cpu", "cpu"), ("cuda", "cuda"), ("cuda1", "cuda1"),
                                          ("gpu", "cuda"), ("gpu2", "cuda2"),
                                          ("opencl0:1", "opencl0:1")])
def test_the_devices_the_docs_list(text, device):
    assert cli.device_name(text) == device


def read_only_folder(tmp_path):
    """A folder no one may write in, and the command that runs a program as a
    user who respects that (root does not: then as nobody, through setpriv)."""
    import shutil
    import stat
    import tempfile
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        return str(folder), []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, without setpriv to run as another user")
    top = tempfile.mkdtemp()  # (pytest's tmp_path is root's alone)
    os.chmod(top, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    folder = os.path.join(top, "read-only")
    os.mkdir(folder, 0o555)
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if subprocess.run(prefix + [sys.executable, "-c", "open(%r).close()" % os.path.join(
            ROOT, "feedforward_lasagne_mnist.py")], capture_output=True).returncode != 0:
        pytest.skip("running as root, in a project that another user cannot read (e.g. under "
                    "/root)")
    return folder, prefix


@pytest.mark.parametrize("case", ["device=foo", "read-only base_compiledir"])
def test_theanos_refusals_at_import_are_one_line(tmp_path, case):
    """A setting Theano refuses when it is imported: one line naming it, exit
    1, not Theano's traceback."""
    prefix, flags = [], case
    if case.startswith("read-only"):
        folder, prefix = read_only_folder(tmp_path)
        flags = "base_compiledir=" + folder
    result = subprocess.run(prefix + [sys.executable, os.path.join(ROOT, "feedforward_lasagne_mnist.py"),
                                      "--epochs", "1"], capture_output=True, text=True, cwd=ROOT,
                            env=dict(os.environ, THEANO_FLAGS=flags, HOME=str(tmp_path)),
                            timeout=120)
    assert result.returncode == 1 and result.stdout == ""
    line = result.stderr.strip()
    assert "\n" not in line and line.startswith("error: Theano cannot start: "), result.stderr
    assert ('"foo"' if case == "device=foo" else "compiledir") in line
