"""atomic_file: all of a file or nothing, and never a link, pipe or device
replaced by a regular file."""
import os
import stat
import threading

import pytest

from lasagne_mnist_port import atomic_file


def test_writes_the_whole_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "out.txt"
    atomic_file.write(str(path), lambda f: f.write("hello\n"), mode="w")
    assert path.read_text() == "hello\n" and os.listdir(tmp_path) == ["out.txt"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("error", [ValueError("bad data"), KeyboardInterrupt()])
def test_a_failure_keeps_the_old_file(tmp_path, error):
    path = tmp_path / "model.npz"
    path.write_bytes(b"the good model")

    def fail(f):
        f.write(b"half a mod")
        raise error
    with pytest.raises(type(error)):
        atomic_file.write(str(path), fail)
    assert path.read_bytes() == b"the good model" and os.listdir(tmp_path) == ["model.npz"]


def test_replacing_keeps_the_permissions(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"old")
    path.chmod(0o640)
    atomic_file.write(str(path), lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_symlink_is_written_through(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "links").mkdir()
    target = tmp_path / "real" / "model.npz"
    target.write_bytes(b"old")
    target.chmod(0o600)
    link = tmp_path / "links" / "model.npz"
    link.symlink_to(os.path.join("..", "real", "model.npz"))
    atomic_file.write(str(link), lambda f: f.write(b"new"))
    assert link.is_symlink() and target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path / "real")) == ["model.npz"]
    dangling = tmp_path / "links" / "new.csv"
    dangling.symlink_to(tmp_path / "real" / "new.csv")
    atomic_file.write(str(dangling), lambda f: f.write("a,b\n"), mode="w")
    assert dangling.is_symlink() and (tmp_path / "real" / "new.csv").read_text() == "a,b\n"


def test_a_fifo_is_written_into_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(str(fifo))
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    assert atomic_file.why_not_writable(str(fifo)) is None
    atomic_file.write(str(fifo), lambda f: f.write(b"streamed"))
    reader.join(timeout=10)
    assert received == [b"streamed"] and stat.S_ISFIFO(os.stat(str(fifo)).st_mode)


def test_what_cannot_be_written_is_refused_with_the_reason(tmp_path):
    assert atomic_file.why_not_writable(str(tmp_path)) == "a directory"
    assert atomic_file.why_not_writable(str(tmp_path / "no" / "m.npz")) == (
        "no directory " + str(tmp_path / "no"))
    with pytest.raises(OSError, match=r"^%s: cannot write there \(a directory\)$" % tmp_path):
        atomic_file.write(str(tmp_path), lambda f: f.write(b"x"))
    if os.getuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        assert atomic_file.why_not_writable(str(tmp_path / "ro" / "m.npz")) == (
            "directory %s not writable" % (tmp_path / "ro"))


def test_a_pipe_whose_reader_left_is_one_error_naming_it(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(str(fifo))

    def read_a_little():
        with open(fifo, "rb") as f:
            f.read(1)
    reader = threading.Thread(target=read_a_little)
    reader.start()
    with pytest.raises(OSError, match=r"^%s: cannot write \(Broken pipe\)$" % fifo):
        atomic_file.write(str(fifo), lambda f: [f.write(b"x" * 65536) for _ in range(64)])
    reader.join(timeout=10)


def test_another_users_file_in_a_sticky_directory_is_refused(tmp_path, monkeypatch):
    sticky = tmp_path / "shared"
    sticky.mkdir()
    sticky.chmod(0o1777)
    (sticky / "theirs.csv").write_text("not yours")
    monkeypatch.setattr(atomic_file.os, "getuid", lambda: os.stat(str(sticky)).st_uid + 1)
    assert atomic_file.why_not_writable(str(sticky / "theirs.csv")) == (
        "owned by another user in the sticky directory %s" % sticky)
