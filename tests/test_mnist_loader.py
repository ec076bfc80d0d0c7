"""Tests for mnist_loader: finding, verifying, parsing and downloading MNIST.

Most tests build a tiny fake MNIST in tmp_path and pin its checksums in place
of the real ones. Downloads go to a real HTTP server on 127.0.0.1 started by
the test, never to a real mirror. A few tests use the real vendored files.
"""
import functools
import gzip
import hashlib
import http.server
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import mnist_loader as ml  # noqa: E402
from mnist_loader import MNISTError  # noqa: E402

VENDORED = ROOT / "data" / "mnist"
SHARED = ROOT.parent / "shared" / "data" / "mnist"
SHARED_SUMS = SHARED / "SHA256SUMS"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
REFUSED = "http://127.0.0.1:1/mnist/"  # nothing listens on port 1: fails at once
# The module's own tables, before any test patches them.
ORIGINAL_MIRRORS, ORIGINAL_SHA256 = list(ml.MIRRORS), dict(ml.SHA256)

# No deadline (timing is not the property), few examples (fast), no example
# database (nothing written into the tree); the autouse fixture below only
# sets the environment, which is safe to share between examples.
settings.register_profile("mnist_loader", deadline=None, max_examples=150, database=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture])
PROFILE = settings.get_profile("mnist_loader")

needs_vendored = pytest.mark.skipif(not (VENDORED / "train-images-idx3-ubyte.gz").exists(),
                                    reason="vendored data/mnist/ not present")


# ################################ Helpers ###################################
@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No test reads the caller's MNIST_DATA_DIR, writes to ~/.cache or
    reaches a real mirror."""
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(ml, "MIRRORS", [REFUSED])
    monkeypatch.setattr(ml, "TIMEOUT", 5)


def idx(magic, shape, data):
    return struct.pack(">%dI" % (1 + len(shape)), magic, *shape) + bytes(data)


def fake_contents(n_train=12, n_test=5, seed=0):
    """Decompressed contents of a small, valid fake MNIST."""
    rng = np.random.default_rng(seed)

    def images(n):
        return idx(2051, (n, 28, 28), rng.integers(0, 256, n * 784, dtype=np.uint8))

    def labels(n):
        return idx(2049, (n,), rng.integers(0, 10, n, dtype=np.uint8))
    return {"train-images-idx3-ubyte": images(n_train), "train-labels-idx1-ubyte": labels(n_train),
            "t10k-images-idx3-ubyte": images(n_test), "t10k-labels-idx1-ubyte": labels(n_test)}


def write_files(directory, contents, gz=True):
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in contents.items():
        if gz:
            (directory / (name + ".gz")).write_bytes(gzip.compress(content, compresslevel=1))
        else:
            (directory / name).write_bytes(content)
    return directory


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def pin(monkeypatch, contents):
    """Make the loader trust `contents` instead of the real MNIST."""
    monkeypatch.setattr(ml, "SHA256", {n: sha256(c) for n, c in contents.items()})
    monkeypatch.setattr(ml, "GZ_SHA256", {})


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """(directory of a small fake MNIST in .gz files, its pinned contents)."""
    contents = fake_contents()
    pin(monkeypatch, contents)
    return write_files(tmp_path / "data", contents), contents


def one_line_error(excinfo, *needles):
    message = str(excinfo.value)
    assert "\n" not in message
    for needle in needles:
        assert str(needle) in message, message
    return message


def assert_no_leftovers(directory):
    if directory.exists():
        left = [p.name for p in directory.iterdir()
                if p.name.endswith(".part") or ".tmp-" in p.name]
        assert not left, left


@functools.lru_cache()
def vendored_gz(name):
    return (VENDORED / (name + ".gz")).read_bytes()


def link_vendored(directory):
    """A directory of symlinks to the vendored .gz files (so stamps and
    replacements land in tmp_path, never in the repository)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ml.FILES:
        (directory / (name + ".gz")).symlink_to(VENDORED / (name + ".gz"))
    return directory


# A local HTTP mirror. routes: file name -> bytes to serve, or a function
# taking the request handler (to misbehave); anything else is a 404.
@pytest.fixture
def serve():
    servers = []

    def start(routes):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = routes.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                elif callable(body):
                    body(self)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.handle_error = lambda *args: None  # a client that gave up is no news
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return "http://127.0.0.1:%d/mnist/" % server.server_address[1]
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def cut_short(body):
    """Announce all of body, send half of it, close the connection."""
    def handler(request):
        request.send_response(200)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body[:len(body) // 2])
        request.wfile.flush()
        request.close_connection = True
    return handler


def gz_routes(contents):
    return {name + ".gz": gzip.compress(c, compresslevel=1) for name, c in contents.items()}


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, str(ROOT / "mnist_loader.py")] + list(args),
                          capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))


def assert_cli_error(result):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ############################ Loading and lookup ############################
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_load_fake_dataset(tmp_path, monkeypatch, gz):
    contents = fake_contents(n_train=10003, n_test=7)
    pin(monkeypatch, contents)
    X_train, y_train, X_val, y_val, X_test, y_test = ml.load_data(
        write_files(tmp_path / "d", contents, gz=gz), download=False)
    assert X_train.shape == (3, 1, 28, 28) and X_val.shape == (10000, 1, 28, 28)
    assert X_test.shape == (7, 1, 28, 28)
    assert y_train.shape == (3,) and y_val.shape == (10000,) and y_test.shape == (7,)
    images = np.frombuffer(contents["train-images-idx3-ubyte"], np.uint8, offset=16)
    np.testing.assert_array_equal(X_train.ravel(), images[:3 * 784] / np.float32(256))
    assert X_train.dtype == np.float32 and y_train.dtype == np.uint8
    y_train[0] = 1  # writable, like any other array


def test_lookup_order(tmp_path, monkeypatch):
    assert ml.find_data_dir() == ml.VENDORED_DIR
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "env"))
    assert ml.find_data_dir() == str(tmp_path / "env")
    assert ml.find_data_dir(str(tmp_path / "arg")) == str(tmp_path / "arg")


def test_env_dir_is_used(fake, monkeypatch):
    directory, contents = fake
    monkeypatch.setenv("MNIST_DATA_DIR", str(directory))
    assert len(ml.load_data(download=False)[5]) == 5


def test_raw_file_wins_over_gz(fake):
    directory, contents = fake
    (directory / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not even gzip")
    (directory / "t10k-labels-idx1-ubyte").write_bytes(contents["t10k-labels-idx1-ubyte"])
    assert len(ml.load_data(directory, download=False)[5]) == 5


# ############################### Bad input ##################################
# Each breaks one file of a valid fake set (pins updated to the broken bytes
# when `repin`, so that the check under test is the one that fires).
def truncate_gz(directory, name, contents):
    path = directory / (name + ".gz")
    path.write_bytes(path.read_bytes()[:-20])


def not_gzip(directory, name, contents):
    (directory / (name + ".gz")).write_bytes(b"<html>404 Not Found</html>\n" * 10)


def flip_one_byte(directory, name, contents):
    content = bytearray(contents[name])
    content[-1] ^= 1
    (directory / (name + ".gz")).write_bytes(gzip.compress(bytes(content)))


def replace_content(new_content):
    def mutate(directory, name, contents):
        contents[name] = new_content(contents[name])
        (directory / (name + ".gz")).write_bytes(gzip.compress(contents[name]))
    return mutate


def remove(directory, name, contents):
    (directory / (name + ".gz")).unlink()


BAD_INPUTS = [
    # (id, file broken, how, repin, expected in the message)
    ("truncated-gz", "train-images-idx3-ubyte", truncate_gz, False, "cannot be read"),
    ("not-gzip", "train-labels-idx1-ubyte", not_gzip, False, "cannot be read"),
    ("checksum-mismatch", "t10k-labels-idx1-ubyte", flip_one_byte, False, "SHA-256 mismatch"),
    ("missing", "t10k-images-idx3-ubyte", remove, False, "missing"),
    ("wrong-magic", "train-images-idx3-ubyte",
     replace_content(lambda c: struct.pack(">I", 2050) + c[4:]), True, "bad magic number 2050"),
    ("count-too-large", "t10k-images-idx3-ubyte",
     replace_content(lambda c: idx(2051, (6, 28, 28), c[16:])), True, "truncated"),
    ("trailing-bytes", "train-labels-idx1-ubyte",
     replace_content(lambda c: c + b"\0"), True, "trailing bytes"),
    ("header-cut-short", "train-images-idx3-ubyte",
     replace_content(lambda c: c[:10]), True, "header cut short"),
    ("length-disagreement", "train-labels-idx1-ubyte",
     replace_content(lambda c: idx(2049, (11,), c[8:19])), True, "holds 12 images but"),
    ("not-28x28", "t10k-images-idx3-ubyte",
     replace_content(lambda c: idx(2051, (5, 28, 27), c[16:16 + 5 * 28 * 27])), True, "28x28"),
    ("labels-are-images", "t10k-labels-idx1-ubyte",
     replace_content(lambda c: idx(2051, (5, 1, 1), c[8:])), True, "expected labels"),
    ("label-out-of-range", "train-labels-idx1-ubyte",
     replace_content(lambda c: c[:-1] + b"\x0a"), True, "label 10"),
]


@pytest.mark.parametrize("name, mutate, repin, expected", [b[1:] for b in BAD_INPUTS],
                         ids=[b[0] for b in BAD_INPUTS])
def test_bad_input(fake, monkeypatch, name, mutate, repin, expected):
    directory, contents = fake
    mutate(directory, name, contents)
    if repin:
        pin(monkeypatch, contents)
    with pytest.raises(MNISTError) as excinfo:
        ml.load_data(str(directory), download=False)
    message = one_line_error(excinfo, expected, "MNIST_DATA_DIR")
    assert name in message
    if expected == "SHA-256 mismatch":  # names expected and actual digests
        assert ml.SHA256[name] in message
        assert sha256(gzip.decompress((directory / (name + ".gz")).read_bytes())) in message
    assert_no_leftovers(directory)
    rows = ml.check(str(directory))  # --check reports the same file, without raising
    assert any(problem and name in problem for _, _, problem in rows)


def test_empty_directory_names_missing_file(tmp_path):
    with pytest.raises(MNISTError) as excinfo:
        ml.load_data(str(tmp_path / "nowhere"), download=False)
    one_line_error(excinfo, "train-images-idx3-ubyte", "missing", "MNIST_DATA_DIR", "--download")


# ############################# Verified stamps ##############################
@pytest.fixture
def hash_count(monkeypatch):
    calls = []
    real = ml.sha256_hex
    monkeypatch.setattr(ml, "sha256_hex", lambda data: calls.append(1) or real(data))
    return calls


def test_stamp_skips_rehashing(fake, hash_count):
    directory, _ = fake
    ml.load_data(directory, download=False)
    assert len(hash_count) == 4 and (directory / ml.STAMP_NAME).exists()
    ml.load_data(directory, download=False)
    assert len(hash_count) == 4


def test_stamp_invalidated_by_change(fake, hash_count):
    directory, contents = fake
    ml.load_data(directory, download=False)
    flip_one_byte(directory, "t10k-labels-idx1-ubyte", contents)
    with pytest.raises(MNISTError, match="SHA-256 mismatch"):
        ml.load_data(directory, download=False)


def test_stamp_invalidated_by_new_pin(fake, monkeypatch, hash_count):
    directory, contents = fake
    ml.load_data(directory, download=False)
    monkeypatch.setitem(ml.SHA256, "train-labels-idx1-ubyte", "0" * 64)
    with pytest.raises(MNISTError, match="SHA-256 mismatch"):
        ml.load_data(directory, download=False)


def test_check_ignores_stamps(tmp_path, monkeypatch):
    """A change that keeps size and mtime fools the stamp; --check is the full check."""
    contents = fake_contents()
    pin(monkeypatch, contents)
    directory = write_files(tmp_path / "raw", contents, gz=False)
    ml.load_data(directory, download=False)
    path = directory / "t10k-labels-idx1-ubyte"
    stat = path.stat()
    labels = contents["t10k-labels-idx1-ubyte"]
    path.write_bytes(labels[:-1] + bytes([(labels[-1] + 1) % 10]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    ml.load_data(directory, download=False)  # trusted: the stamp matches
    problems = [p for _, _, p in ml.check(str(directory)) if p]
    assert len(problems) == 1 and "t10k-labels-idx1-ubyte: SHA-256 mismatch" in problems[0]


def test_read_only_dir_stamps_in_cache(fake, tmp_path, hash_count):
    directory, _ = fake
    directory.chmod(0o555)
    try:
        ml.load_data(directory, download=False)
        ml.load_data(directory, download=False)
    finally:
        directory.chmod(0o755)
    assert len(hash_count) == 4
    assert not (directory / ml.STAMP_NAME).exists()
    assert (tmp_path / "cache" / "mnist_loader" / "verified.json").exists()


def test_no_writable_stamp_place_is_fine(fake, tmp_path, monkeypatch, hash_count):
    directory, _ = fake
    (directory / ml.STAMP_NAME).mkdir()  # cannot be replaced by a file
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-dir"))
    ml.load_data(directory, download=False)
    ml.load_data(directory, download=False)
    assert len(hash_count) == 8  # no caching, and no error
    assert_no_leftovers(directory)


# ################################ Download ##################################
def test_mirrors_in_order():
    assert ORIGINAL_MIRRORS == ["https://ossci-datasets.s3.amazonaws.com/mnist/",
                             "https://storage.googleapis.com/cvdf-datasets/mnist/",
                             "http://yann.lecun.com/exdb/mnist/"]


def test_corrupt_mirror_then_good_one(tmp_path, monkeypatch, serve, capsys):
    contents = fake_contents()
    pin(monkeypatch, contents)
    bad = serve({name + ".gz": gzip.compress(b"\0" * 100) for name in ml.FILES})
    good = serve(gz_routes(contents))
    monkeypatch.setattr(ml, "MIRRORS", [bad, good])
    directory = tmp_path / "new" / "dir"
    data = ml.load_data(str(directory))
    assert len(data[1]) == 0 and len(data[3]) == 12 and len(data[5]) == 5
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [ml.STAMP_NAME] + [n + ".gz" for n in ml.FILES])
    assert capsys.readouterr().err == ""  # no progress bar when not on a terminal


def test_interrupted_download_then_good_mirror(tmp_path, monkeypatch, serve):
    contents = fake_contents()
    pin(monkeypatch, contents)
    routes = gz_routes(contents)
    cut = serve({name: cut_short(body) for name, body in routes.items()})
    good = serve(routes)
    directory = tmp_path / "d"
    done = ml.download(str(directory), mirrors=[cut, good])
    assert [url for _, _, url in done] == [good + n + ".gz" for n in ml.FILES]
    assert_no_leftovers(directory)
    with pytest.raises(MNISTError) as excinfo:
        ml.download(str(tmp_path / "e"), mirrors=[cut])
    one_line_error(excinfo, "connection closed after", cut + "train-images-idx3-ubyte.gz")
    assert_no_leftovers(tmp_path / "e")


def test_every_mirror_failing(tmp_path, monkeypatch, serve):
    contents = fake_contents()
    pin(monkeypatch, contents)
    not_found = serve({})
    garbage = serve({name + ".gz": b"garbage" for name in ml.FILES})
    truncated = serve({name: body[:-20] for name, body in gz_routes(contents).items()})
    monkeypatch.setattr(ml, "MIRRORS", [not_found, REFUSED, garbage, truncated])
    directory = tmp_path / "d"
    with pytest.raises(MNISTError) as excinfo:
        ml.load_data(str(directory))
    message = one_line_error(excinfo, "HTTP 404", "refused", "not a valid .gz", "MNIST_DATA_DIR",
                             str(directory), "train-images-idx3-ubyte.gz")
    for mirror in ml.MIRRORS:
        assert mirror + "train-images-idx3-ubyte.gz" in message
    assert not directory.exists()  # no partial file, not even the directory it made


def test_timeout(tmp_path, monkeypatch, serve):
    monkeypatch.setattr(ml, "TIMEOUT", 0.2)
    slow = serve({name + ".gz": lambda request: time.sleep(1) for name in ml.FILES})
    with pytest.raises(MNISTError) as excinfo:
        ml.download(str(tmp_path / "d"), mirrors=[slow])
    one_line_error(excinfo, "timed out")


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_corrupt_file_is_replaced(fake, monkeypatch, serve, gz):
    directory, contents = fake
    name = "train-labels-idx1-ubyte"
    if not gz:
        (directory / (name + ".gz")).unlink()
    path = directory / (name + (".gz" if gz else ""))
    path.write_bytes(b"garbage")
    monkeypatch.setattr(ml, "MIRRORS", [serve(gz_routes(contents))])
    assert len(ml.load_data(str(directory))[3]) == 12
    stored = ml.read_idx_bytes(str(path))
    assert stored == contents[name]
    assert_no_leftovers(directory)


def test_corrupt_file_and_no_mirror(fake):
    directory, contents = fake
    flip_one_byte(directory, "train-labels-idx1-ubyte", contents)
    with pytest.raises(MNISTError) as excinfo:
        ml.load_data(str(directory))
    message = one_line_error(excinfo, "SHA-256 mismatch", "downloading it failed too", REFUSED,
                             str(directory / "train-labels-idx1-ubyte.gz"), "copy the four")
    assert "--download" not in message  # the download that just failed is not suggested again


def test_damaged_gzip_and_no_mirror(fake):
    """A .gz that gzip rejects is named with gzip's reason (there is no digest to give)."""
    directory, contents = fake
    path = directory / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(MNISTError) as excinfo:
        ml.load_data(str(directory))
    message = one_line_error(excinfo, str(path), "cannot be read", "downloading it failed too")
    assert "--download" not in message


def test_missing_directory_suggests_the_download(tmp_path):
    with pytest.raises(MNISTError) as excinfo:
        ml.load_data(str(tmp_path / "nowhere"), download=False)
    one_line_error(excinfo, "mnist_loader.py --download " + str(tmp_path / "nowhere"))


def test_original_archive_digest_is_enough(tmp_path, monkeypatch):
    contents = fake_contents()
    name = "t10k-labels-idx1-ubyte"
    archive = gzip.compress(contents[name])
    monkeypatch.setattr(ml, "SHA256", {name: "0" * 64})
    monkeypatch.setattr(ml, "GZ_SHA256", {name: hashlib.sha256(archive).hexdigest()})
    path = tmp_path / "x.gz.part"
    path.write_bytes(archive)
    with open(path, "rb") as f:
        assert ml.check_download(name, f, hashlib.sha256(archive).hexdigest()) == contents[name]
        with pytest.raises(MNISTError, match="SHA-256 mismatch"):
            ml.check_download(name, f, "1" * 64)


def test_unwritable_target(tmp_path, fake, serve):
    directory, contents = fake
    (tmp_path / "file").write_text("")
    with pytest.raises(MNISTError) as excinfo:
        ml.download(str(tmp_path / "file" / "sub"), mirrors=[serve(gz_routes(contents))])
    one_line_error(excinfo, "cannot write into")


def test_ctrl_c_during_a_download_leaves_no_directory(tmp_path, monkeypatch):
    def interrupted(url, out):
        out.write(b"part of a file")
        raise KeyboardInterrupt
    monkeypatch.setattr(ml, "http_get", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ml.download(str(tmp_path / "x" / "y"), mirrors=["http://127.0.0.1:9/"])
    assert os.listdir(tmp_path) == []


def test_downloads_and_stamps_follow_the_umask(tmp_path, monkeypatch, serve):
    contents = fake_contents()
    pin(monkeypatch, contents)
    umask = os.umask(0o027)
    try:
        ml.download(str(tmp_path / "d"), mirrors=[serve(gz_routes(contents))])
    finally:
        os.umask(umask)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "d").iterdir()}
    assert modes == {name: 0o640 for name in [ml.STAMP_NAME] + [n + ".gz" for n in ml.FILES]}


@needs_vendored
def test_download_real_files(tmp_path, monkeypatch, serve):
    """The real pins against the real (recompressed) vendored archives."""
    mirror = serve({name + ".gz": vendored_gz(name) for name in ml.FILES})
    monkeypatch.setattr(ml, "MIRRORS", [REFUSED, mirror])
    data = ml.load_data(str(tmp_path / "d"))
    assert [len(a) for a in data] == [50000, 50000, 10000, 10000, 10000, 10000]


# ################################### CLI ####################################
@needs_vendored
def test_cli_check_vendored(tmp_path):
    result = run_cli("--check", str(link_vendored(tmp_path / "d")))  # (stamps land in tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("verified") == 4 and result.stderr == ""


@needs_vendored
def test_cli_check_one_corrupted_file(tmp_path, monkeypatch):
    directory = link_vendored(tmp_path / "d")
    name = "t10k-labels-idx1-ubyte"
    labels = bytearray(gzip.decompress(vendored_gz(name)))
    labels[100] = (labels[100] + 1) % 10
    (directory / (name + ".gz")).unlink()
    (directory / (name + ".gz")).write_bytes(gzip.compress(bytes(labels)))
    result = run_cli("--check", env={"MNIST_DATA_DIR": str(directory)})
    assert_cli_error(result)
    assert result.stdout.count("verified") == 3
    assert [line for line in result.stdout.splitlines() if "SHA-256 mismatch" in line][0] \
        .startswith(name + ".gz")
    # What feedforward_lasagne_mnist.py sees (it reports MNISTError's message):
    monkeypatch.setenv("MNIST_DATA_DIR", str(directory))
    with pytest.raises(MNISTError) as excinfo:
        ml.load_data()
    one_line_error(excinfo, str(directory / (name + ".gz")), "SHA-256 mismatch")


def test_cli_check_missing_dir(tmp_path):
    assert_cli_error(run_cli("--check", str(tmp_path / "nowhere")))


def test_cli_check_empty_dir(tmp_path):
    result = run_cli("--check", str(tmp_path))
    assert_cli_error(result)
    assert result.stdout.count("missing") == 4


@needs_vendored
def test_cli_download_and_check(tmp_path, serve):
    mirror = serve({name + ".gz": vendored_gz(name) for name in ml.FILES})
    directory = tmp_path / "d"
    result = run_cli("--download", str(directory), "--mirror", REFUSED, "--mirror", mirror)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("downloaded from " + mirror) == 4
    result = run_cli("--download", str(directory), "--mirror", REFUSED)
    assert result.returncode == 0 and result.stdout.count("already verified") == 4


def test_cli_download_no_network(tmp_path):
    result = run_cli("--download", str(tmp_path / "d"), "--mirror", REFUSED)
    assert_cli_error(result)
    assert REFUSED + "train-images-idx3-ubyte.gz" in result.stderr
    assert "MNIST_DATA_DIR" in result.stderr
    assert not (tmp_path / "d").exists()


def test_cli_usage_error():
    assert run_cli().returncode != 0


# ############################# The real files ###############################
@needs_vendored
def test_real_data(tmp_path):
    directory = link_vendored(tmp_path / "d")
    X_train, y_train, X_val, y_val, X_test, y_test = ml.load_data(str(directory))
    assert X_train.shape == (50000, 1, 28, 28) and X_val.shape == (10000, 1, 28, 28)
    assert X_test.shape == (10000, 1, 28, 28)
    assert y_train.shape == (50000,) and y_val.shape == (10000,) and y_test.shape == (10000,)
    for X, y in ((X_train, y_train), (X_val, y_val), (X_test, y_test)):
        assert X.dtype == np.float32 and y.dtype == np.uint8
        assert X.min() == 0 and X.max() == np.float32(255 / 256)
    assert (np.bincount(y_train, minlength=10) + np.bincount(y_val, minlength=10)).tolist() \
        == TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_COUNTS
    # The validation set is the last 10,000 training images.
    train_labels = ml.parse_idx(gzip.decompress(vendored_gz("train-labels-idx1-ubyte")))
    np.testing.assert_array_equal(y_val, train_labels[-10000:])


@pytest.mark.skipif(not SHARED_SUMS.exists(), reason="%s not present" % SHARED_SUMS)
def test_pins_match_shared_sha256sums():
    for sums_file in (SHARED_SUMS, VENDORED / "SHA256SUMS"):
        sums = dict(reversed(line.split()) for line in sums_file.read_text().splitlines() if line)
        assert ORIGINAL_SHA256 == sums, sums_file


@pytest.mark.skipif(not (SHARED / "train-images-idx3-ubyte.gz").exists() or ml.writable(str(SHARED)),
                    reason="no read-only shared MNIST copy")
def test_read_only_shared_copy(tmp_path):
    before = sorted(os.listdir(SHARED))
    assert len(ml.load_data(str(SHARED), download=False)[0]) == 50000
    assert sorted(os.listdir(SHARED)) == before
    assert (tmp_path / "cache" / "mnist_loader" / "verified.json").exists()


# ############################ Property-based ###############################
# The IDX parser, fed random or mutated bytes, returns an array consistent
# with its header or raises MNISTError; nothing else.
def parses_or_mnist_error(raw):
    try:
        array = ml.parse_idx(raw)
    except MNISTError as e:
        assert "\n" not in str(e)
        return
    assert isinstance(array, np.ndarray) and array.dtype == np.uint8
    assert array.ndim in (1, 3) and array.size == len(raw) - 4 - 4 * array.ndim


@settings(PROFILE)
@given(st.binary(max_size=200))
def test_parse_random_bytes(raw):
    parses_or_mnist_error(raw)


@st.composite
def mutated_idx(draw):
    if draw(st.booleans()):
        shape = (draw(st.integers(0, 6)), draw(st.integers(0, 5)), draw(st.integers(0, 5)))
        raw = bytearray(idx(2051, shape, bytes(shape[0] * shape[1] * shape[2])))
    else:
        n = draw(st.integers(0, 40))
        raw = bytearray(idx(2049, (n,), bytes(n)))
    for _ in range(draw(st.integers(0, 4))):
        how = draw(st.sampled_from(["set", "cut", "append", "huge"]))
        if how == "set" and raw:
            raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
        elif how == "cut":
            raw = raw[:draw(st.integers(0, len(raw)))]
        elif how == "append":
            raw += draw(st.binary(max_size=20))
        elif how == "huge" and len(raw) >= 8:
            at = draw(st.sampled_from(range(4, min(len(raw), 16) - 3, 4)))
            raw[at:at + 4] = struct.pack(">I", draw(st.sampled_from([0, 1, 2 ** 31, 2 ** 32 - 1])))
    return bytes(raw)


@settings(PROFILE)
@given(mutated_idx())
def test_parse_mutated_idx(raw):
    parses_or_mnist_error(raw)


@settings(PROFILE, max_examples=60)
@given(mutated_idx(), st.sampled_from(["gz", "raw", "mangled-gz"]), st.data())
def test_load_file_random_bytes(raw, form, data):
    """The whole per-file path (read, decompress, verify, parse) on random files."""
    name = data.draw(st.sampled_from(ml.FILES))
    with tempfile.TemporaryDirectory() as directory:
        stored = raw if form == "raw" else bytearray(gzip.compress(raw, compresslevel=1))
        if form == "mangled-gz":
            stored[data.draw(st.integers(0, len(stored) - 1))] ^= data.draw(st.integers(1, 255))
        path = os.path.join(directory, name + ("" if form == "raw" else ".gz"))
        with open(path, "wb") as f:
            f.write(bytes(stored))
        saved = dict(ml.SHA256)
        ml.SHA256[name] = hashlib.sha256(raw).hexdigest()
        try:
            array = ml.load_file(directory, name, download=False)
            assert array.dtype == np.uint8
        except MNISTError as e:
            assert "\n" not in str(e)
        finally:
            ml.SHA256.clear()
            ml.SHA256.update(saved)


def test_parse_huge_dimensions_with_no_data():
    """Found by hypothesis: 2**32-1 x 2**32-1 x 0 images is 0 bytes but no numpy shape."""
    raw = bytes.fromhex("00000803" "ffffffff" "ffffffff" "00000000")
    with pytest.raises(MNISTError, match="not a valid array shape"):
        ml.parse_idx(raw, "x")


def test_a_data_file_that_is_a_fifo_is_refused_not_waited_on(tmp_path, fake):
    directory, contents = fake
    name = ml.FILES[0]
    for path in (directory / name, directory / (name + ".gz")):
        if path.exists():
            path.unlink()
    os.mkfifo(str(directory / (name + ".gz")))
    with pytest.raises(MNISTError, match=r"\.gz is not a regular file"):
        ml.load_data(str(directory))
