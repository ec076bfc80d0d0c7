"""Makefile: the notebook's kernel, make run's stdout, make clean."""
import os
import re
import shutil
import subprocess

import nbformat

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def make(directory, *args):
    shutil.copy(os.path.join(ROOT, "Makefile"), str(directory))
    env = {k: v for k, v in os.environ.items()  # as typed in a shell, not from make test
           if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make"] + list(args), capture_output=True, text=True,
                          cwd=str(directory), env=env, timeout=60)


def test_make_notebook_registers_the_kernel_the_notebook_names(tmp_path):
    result = make(tmp_path, "-n", "notebook")
    assert result.returncode == 0, result.stderr
    line = [line for line in result.stdout.splitlines() if "ipykernel install" in line][0]
    notebook = nbformat.read(os.path.join(ROOT, "tutorial.ipynb"), as_version=4)
    assert re.search(r"--name (\S+)", line).group(1) == notebook.metadata.kernelspec.name
    assert "-r requirements-notebook.txt -c requirements.txt" in result.stdout


def fake_project(directory):
    """setup.sh and .venv/bin/python stand-ins that print what they are."""
    (directory / "tools").mkdir()
    (directory / ".venv" / "bin").mkdir(parents=True)
    for path, text in ((directory / "tools" / "setup.sh", "echo 'setup: Python 3.11.2'"),
                       (directory / ".venv" / "bin" / "python", "echo \"tutorial: $*\"")):
        path.write_text("#!/bin/sh\n%s\n" % text)
        path.chmod(0o755)


def test_make_run_prints_the_tutorials_lines_only_on_stdout(tmp_path):
    fake_project(tmp_path)
    result = make(tmp_path, "run", "ARGS=--seed 1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "tutorial: feedforward_lasagne_mnist.py --seed 1\n"
    assert "setup: Python 3.11.2" in result.stderr


def test_make_clean_removes_what_setup_and_runs_made_and_nothing_else(tmp_path):
    fake_project(tmp_path)
    made = [".venv/lib/site.py", ".python311/bin/python3.11", ".setup.lock", ".pytest_cache/x",
            ".hypothesis/x", "lasagne_mnist_port/__pycache__/a.pyc", "tests/__pycache__/b.pyc",
            "bench/.venv-peer/bin/python", "bench/.venv-jax/bin/python", ".device/run.sh",
            ".nvrtc/nvidia/x.so", ".upstream/Lasagne-0.1.tar.gz",
            "data/mnist/.mnist_verified.json"]
    own = ["model.npz", "history.csv", "curves.png", "data/mnist/train-images-idx3-ubyte.gz",
           ".venv.broken-20261202-134501-42/lib/mine.py", ".git/HEAD",
           ".git/objects/__pycache__/kept"]
    for name in made + own:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    result = make(tmp_path, "clean")
    assert result.returncode == 0, result.stderr
    assert [n for n in made if (tmp_path / n).exists()] == []
    assert [n for n in own if not (tmp_path / n).exists()] == []
    assert not (tmp_path / ".venv").exists() and not (tmp_path / "tests" / "__pycache__").exists()
    assert "kept (your packages may be in it): .venv.broken-20261202-134501-42" in result.stderr
