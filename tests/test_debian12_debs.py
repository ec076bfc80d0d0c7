"""tools/debian12_debs.sh: what it refuses before going to the network, in
one line each (fetching itself is checked by `make setup` on systems without
a Python 3.10/3.11, see the README's Supported systems)."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(ROOT, "tools", "debian12_debs.sh")

pytestmark = pytest.mark.skipif(not (shutil.which("apt-get") and shutil.which("dpkg-deb")),
                                reason="not a Debian or Ubuntu system")


def run(*args, **env):
    return subprocess.run(["bash", TOOL] + list(args), capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=30)


def one_line_error(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, (result.returncode, result.stderr)
    assert lines[0].startswith("debian12_debs: ") and result.stdout == ""
    return lines[0]


def test_usage():
    assert "usage: tools/debian12_debs.sh ROOT PACKAGE..." in one_line_error(run())
    assert "usage" in one_line_error(run("only-a-root"))


def test_without_debians_keyring_nothing_is_fetched(tmp_path):
    line = one_line_error(run(str(tmp_path / "root"), "python3.11-minimal",
                              DEBIAN12_KEYRING=str(tmp_path / "no-keyring.gpg")))
    assert "needs Debian's archive keyring" in line
    assert "apt-get install debian-archive-keyring" in line
    assert not os.path.exists(str(tmp_path / "root"))
