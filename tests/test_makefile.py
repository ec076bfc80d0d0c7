"""Makefile: each clone registers its notebook kernel under a name of its own."""
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def kernel_install_line(directory):
    shutil.copy(os.path.join(ROOT, "Makefile"), str(directory))
    result = subprocess.run(["make", "-n", "notebook"], capture_output=True, text=True,
                            cwd=str(directory), timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if "ipykernel install" in line][0]


def test_each_clone_has_its_own_kernel(tmp_path):
    names = []
    for clone in ("a", "b", "b"):
        (tmp_path / clone).mkdir(exist_ok=True)
        line = kernel_install_line(tmp_path / clone)
        names.append(re.search(r"--name (\S+)", line).group(1))
    assert names[0] != names[1] and names[1] == names[2]  # stable for one clone
    assert all(re.fullmatch(r"feedforward-lasagne-mnist-[0-9a-f]{8}", n) for n in names)
