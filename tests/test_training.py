"""training: run_network's helpers: the data checks, the progress bar."""
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_cli, tutorial_lines
from lasagne_mnist_port import training


def test_data_is_converted_when_safe(small):
    X, y = small[0][:600], small[1][:600]
    as_given = [X.reshape(600, 784).astype(np.float64).tolist(), y.astype(np.int64).tolist(),
                X[:, 0], y.astype(np.int32), X.astype(np.float64), y]
    checked = training.check_data(*as_given, batch_size=100, limit=500)
    for array, expected, dtype in zip(checked, [X[:500], y[:500], X, y, X, y],
                                      [np.float32, np.uint8] * 3):
        assert array.dtype == dtype and np.array_equal(array, expected)


@pytest.mark.parametrize("limit", [0, -5])
def test_limit_must_be_positive(small, limit):
    with pytest.raises(ValueError, match=r"^limit %d must be at least 1" % limit):
        training.check_data(*small, limit=limit)


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



ARM64_CPUINFO = """processor\t: 0
BogoMIPS\t: 243.75
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x3
CPU part\t: 0xd0c
CPU revision\t: 1

processor\t: 1
"""
X86_CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n\n"


@pytest.mark.parametrize("text, machine, expected", [
    (ARM64_CPUINFO, "aarch64", "Arm Neoverse-N1"),
    (ARM64_CPUINFO.replace("0x41", "0xc0").replace("0xd0c", "0xac3"), "aarch64", "Ampere Ampere-1"),
    (ARM64_CPUINFO.replace("0xd0c", "0xfff"), "aarch64", "Arm CPU part 0xfff"),
    # qemu-user: an arm64 program reads the x86 host's /proc/cpuinfo
    (X86_CPUINFO, "aarch64", "arm64, emulated on AMD EPYC"),
    (X86_CPUINFO, "x86_64", "AMD EPYC"),
    ("", "aarch64", "arm64"),
])
def test_the_device_line_names_the_cpu(tmp_path, text, machine, expected):
    (tmp_path / "cpuinfo").write_text(text)
    assert training.cpu_name(str(tmp_path / "cpuinfo"), machine) == expected
