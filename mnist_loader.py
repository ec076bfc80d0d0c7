"""MNIST loader: finds the four IDX files, verifies them, parses them, and
downloads them when they are missing or corrupt.

    from mnist_loader import load_data
    X_train, y_train, X_val, y_val, X_test, y_test = load_data()

Data is looked for in an explicit directory, then $MNIST_DATA_DIR, then the
project's vendored data/mnist/. A directory may hold the .gz files or the raw
IDX files. Any problem raises MNISTError, whose one-line message names the
file and says what to do.

From the shell:
    python mnist_loader.py --check [DIR]     verify the four files, print a table
    python mnist_loader.py --download DIR    fetch whatever is missing or corrupt
"""
import argparse
import gzip
import hashlib
import http.client
import json
import math
import os
import sys
import urllib.error
import urllib.request
import zlib

import numpy as np
from tqdm import tqdm

from lasagne_mnist_port import atomic_file

HERE = os.path.dirname(os.path.realpath(__file__))  # the project, also through the venv's link
VENDORED_DIR = os.path.join(HERE, "data", "mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# ############################ Pinned checksums ##############################
# SHA-256 of the official *decompressed* IDX files. This is the authoritative
# check, made on every file we load: it holds whichever mirror or compressor
# the bytes came through (the vendored .gz files were recompressed).
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# SHA-256 of the original .gz archives as LeCun published them (the values
# pinned by torchvision, TensorFlow Datasets and others; they match the
# prefixes in data/mnist/README.md). A download is checked against these
# first; one that differs is still accepted when its decompressed content
# matches SHA256 above, since a mirror may serve a recompressed archive.
GZ_SHA256 = {
    "train-images-idx3-ubyte": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

# ################################ Mirrors ###################################
# Tried in order, each serving <mirror><name>.gz. LeCun's own site comes last:
# it is plain HTTP and often refuses scripts (the checksums make HTTP safe).
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
]
TIMEOUT = 30            # seconds for connecting and for each read
MAX_BYTES = 64 << 20    # no MNIST file comes near: stops a runaway download or gzip bomb
USER_AGENT = "mnist_loader/1.0 (Python urllib)"
STAMP_NAME = ".mnist_verified.json"


class MNISTError(Exception):
    """Missing, corrupt or unreadable MNIST data (the message says what to do)."""


class DownloadFailed(MNISTError):
    """A file was missing or corrupt, and downloading it failed too."""


def how_to_fix(data_dir, download_failed=False):
    """What the user can do; a download that just failed is not suggested again."""
    advice = ("copy the four MNIST .gz files (%s) into %s, or set MNIST_DATA_DIR to a directory "
              "holding them" % (", ".join(n + ".gz" for n in FILES), data_dir))
    if download_failed:
        return advice + " (a clone of this project has them in data/mnist/)"
    return advice + ", or run `python mnist_loader.py --download %s`" % data_dir


# ############################### Public API #################################
# load_data() is what the tutorial calls; everything below it is the detail.
def load_data(data_dir=None, download=True):
    """[X_train, y_train, X_val, y_val, X_test, y_test], the last 10,000 training
    images held out for validation, as in the tutorial. Images are float32
    (N, 1, 28, 28) in [0, 255/256], labels uint8. Missing or corrupt files are
    downloaded (from MIRRORS) unless download is False."""
    data_dir = find_data_dir(data_dir)
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise MNISTError("%s is not a directory: point --data-dir or MNIST_DATA_DIR at the "
                         "directory holding the four MNIST files" % data_dir)
    try:
        X_train, y_train = load_pair(data_dir, "train", download)
        X_test, y_test = load_pair(data_dir, "t10k", download)
    except MNISTError as e:
        raise MNISTError("%s; %s" % (e, how_to_fix(data_dir, isinstance(e, DownloadFailed)))) from None
    # The inputs are (examples, channels, rows, columns) float32 in [0, 255/256]
    # (divided by 256 as the original, for compatibility with mnist.pkl.gz).
    X_train = X_train.reshape(-1, 1, 28, 28) / np.float32(256)
    X_test = X_test.reshape(-1, 1, 28, 28) / np.float32(256)
    X_train, X_val = X_train[:-10000], X_train[-10000:]
    y_train, y_val = y_train[:-10000], y_train[-10000:]
    return [X_train, y_train, X_val, y_val, X_test, y_test]


def download(data_dir=None, mirrors=None):
    """Make data_dir hold the four verified files, fetching what is missing or
    corrupt. Returns [(name, path, url or None if it was already there)]."""
    data_dir = find_data_dir(data_dir)
    done = []
    try:
        for name in FILES:
            path, _, url = verified_bytes(data_dir, name, True, mirrors=mirrors)
            done.append((name, path, url))
        return done
    except MNISTError as e:
        raise MNISTError("%s; %s" % (e, how_to_fix(data_dir, isinstance(e, DownloadFailed)))) from None


def check(data_dir=None):
    """Verify the four files from scratch (ignoring stamps).
    Returns [(file, size in bytes or None, status or None if fine)]."""
    data_dir = find_data_dir(data_dir)
    if not os.path.isdir(data_dir):
        raise MNISTError("%s: no such directory; %s" % (data_dir, how_to_fix(data_dir)))
    rows, arrays = [], {}
    for name in FILES:
        path = find_file(data_dir, name)
        size = os.path.getsize(path) if path else None
        try:
            arrays[name] = load_file(data_dir, name, download=False, trust_stamp=False)
            rows.append((os.path.basename(path), size, None))
        except MNISTError as e:
            rows.append((os.path.basename(path or name + ".gz"), size, str(e)))
    for prefix in ("train", "t10k"):
        pair = [arrays.get(prefix + s) for s in ("-images-idx3-ubyte", "-labels-idx1-ubyte")]
        if all(array is not None for array in pair):
            try:
                check_pair(data_dir, prefix, *pair)
            except MNISTError as e:
                rows.append(("(%s pair)" % prefix, None, str(e)))
    return rows


# ############################ Finding the data ##############################
# Explicit argument, then $MNIST_DATA_DIR, then the vendored copy; within a
# directory the raw IDX file wins over the .gz (it is what a user unpacked).
def find_data_dir(data_dir=None):
    return os.path.abspath(data_dir or os.environ.get("MNIST_DATA_DIR") or VENDORED_DIR)


def find_file(data_dir, name):
    for path in (os.path.join(data_dir, name), os.path.join(data_dir, name + ".gz")):
        if os.path.isfile(path):
            return path
        if os.path.exists(path):  # a FIFO or a device would block or never verify
            raise MNISTError("%s is not a regular file: replace it with the MNIST file" % path)
    return None


# ########################## Loading and checking ############################
# One file: read, verify (or re-download), parse, check its shape. A pair:
# the images and labels files must agree on the number of examples.
def load_pair(data_dir, prefix, download):
    images = load_file(data_dir, prefix + "-images-idx3-ubyte", download)
    labels = load_file(data_dir, prefix + "-labels-idx1-ubyte", download)
    check_pair(data_dir, prefix, images, labels)
    return images, labels


def load_file(data_dir, name, download=True, trust_stamp=True, mirrors=None):
    """Images (N, 28, 28) or labels (N,), uint8, from a verified file."""
    path, raw, _ = verified_bytes(data_dir, name, download, trust_stamp, mirrors)
    array = parse_idx(raw, path)
    if "images" in name:
        if array.ndim != 3 or array.shape[1:] != (28, 28):
            raise MNISTError("%s: expected 28x28 images (IDX magic 2051), found shape %s"
                             % (path, array.shape))
        return array
    if array.ndim != 1:
        raise MNISTError("%s: expected labels (IDX magic 2049), found shape %s"
                         % (path, array.shape))
    if array.size and array.max() > 9:
        raise MNISTError("%s: label %d found, labels are digits 0-9" % (path, array.max()))
    return array.copy()  # writable, like any other array (images get copied by the scaling)


def check_pair(data_dir, prefix, images, labels):
    if len(images) != len(labels):
        raise MNISTError("%s: %s-images-idx3-ubyte holds %d images but %s-labels-idx1-ubyte "
                         "holds %d labels; they come from different sets"
                         % (data_dir, prefix, len(images), prefix, len(labels)))


def verified_bytes(data_dir, name, download, trust_stamp=True, mirrors=None):
    """(path, decompressed content, URL it was downloaded from or None) of
    `name`, its SHA-256 checked. A missing, unreadable or mismatching file is
    downloaded again when download is True."""
    path = find_file(data_dir, name)
    try:
        if path is None:
            raise MNISTError("%s: missing (neither %s nor %s.gz is there)"
                             % (os.path.join(data_dir, name), name, name))
        raw = read_idx_bytes(path)
        verify(data_dir, path, name, raw, trust_stamp)
        return path, raw, None
    except MNISTError as problem:
        if not download:
            raise
        try:
            return fetch(data_dir, name, path, mirrors)
        except MNISTError as failure:
            raise DownloadFailed("%s; downloading it failed too: %s" % (problem, failure))


def read_idx_bytes(path, gz=None, label=None):
    """The decompressed content of a .gz file, or the bytes of a raw one
    (`path` may be an open binary file when gz is True)."""
    gz = path.endswith(".gz") if gz is None else gz
    label = label or path
    try:
        with (gzip.open if gz else open)(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as e:  # not gzip, truncated, damaged, unreadable
        raise MNISTError("%s: cannot be read (%s)" % (label, e))
    if len(raw) > MAX_BYTES:
        raise MNISTError("%s: more than %d bytes, not an MNIST file" % (label, MAX_BYTES))
    return raw


def sha256_hex(data):
    return hashlib.sha256(data).hexdigest()


def verify(data_dir, path, name, raw, trust_stamp=True):
    if trust_stamp and stamp_matches(data_dir, path, stamp_of(path, name)):
        return
    expected, actual = SHA256[name], sha256_hex(raw)
    if actual != expected:
        raise MNISTError("%s: SHA-256 mismatch (expected %s, got %s): the file is corrupt or "
                         "not MNIST" % (path, expected, actual))
    save_stamp(data_dir, path, stamp_of(path, name))


# ############################# Verified stamps ##############################
# Hashing 55 MB on every run is wasted time, so a successful check is
# remembered as {path: [size, mtime_ns, pinned digest]}: a file that changes
# (or a changed pin) is hashed again. The stamp goes next to the data if the
# directory is writable, else under ~/.cache/mnist_loader/, else nowhere:
# a read-only data directory must never be an error.
def stamp_of(path, name):
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns, SHA256[name]]


def stamp_files(data_dir):
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return [os.path.join(data_dir, STAMP_NAME),
            os.path.join(cache, "mnist_loader", "verified.json")]


def read_stamps(stamp_file):
    try:
        with open(stamp_file) as f:
            stamps = json.load(f)
        return stamps if isinstance(stamps, dict) else {}
    except (OSError, ValueError):
        return {}


def stamp_matches(data_dir, path, stamp):
    return any(read_stamps(f).get(path) == stamp for f in stamp_files(data_dir))


def save_stamp(data_dir, path, stamp):
    for stamp_file in stamp_files(data_dir):
        directory = os.path.dirname(stamp_file)
        try:
            os.makedirs(directory, exist_ok=True)
            if not writable(directory):
                continue
            stamps = read_stamps(stamp_file)
            stamps[path] = stamp
            atomic_file.write(stamp_file, lambda f: f.write(json.dumps(stamps).encode()))
            return
        except OSError:
            continue


def writable(directory):
    # root ignores permission bits: still honour a directory marked read-only.
    return os.access(directory, os.W_OK) and bool(os.stat(directory).st_mode & 0o222)


# ############################### IDX format #################################
# Big-endian header: magic (2051 = unsigned-byte 3-D images, 2049 =
# unsigned-byte 1-D labels), then one 32-bit size per dimension, then the
# data, which must be exactly as long as the sizes say.
IDX_DIMS = {2049: 1, 2051: 3}


def parse_idx(raw, name="IDX data"):
    """Images (N, rows, cols) uint8 from magic 2051, labels (N,) uint8 from 2049."""
    if len(raw) < 4:
        raise MNISTError("%s: too short for an IDX header (%d bytes)" % (name, len(raw)))
    magic = int.from_bytes(raw[0:4], "big")
    if magic not in IDX_DIMS:
        raise MNISTError("%s: bad magic number %d (expected 2049 for labels, 2051 for images)"
                         % (name, magic))
    offset = 4 + 4 * IDX_DIMS[magic]
    if len(raw) < offset:
        raise MNISTError("%s: IDX header cut short (%d of %d bytes)" % (name, len(raw), offset))
    shape = tuple(int.from_bytes(raw[i:i + 4], "big") for i in range(4, offset, 4))
    size = math.prod(shape)  # Python ints: huge header values cannot overflow
    if len(raw) - offset != size:
        raise MNISTError("%s: header says %s = %d bytes of data, the file has %d (%s)"
                         % (name, "x".join(map(str, shape)), size, len(raw) - offset,
                            "truncated" if len(raw) - offset < size else "trailing bytes"))
    try:
        return np.frombuffer(raw, np.uint8, count=size, offset=offset).reshape(shape)
    except ValueError as e:  # e.g. 0 bytes but 2**32-1 rows: too many dimensions for numpy
        raise MNISTError("%s: header dimensions %s are not a valid array shape (%s)"
                         % (name, "x".join(map(str, shape)), e))


# ################################ Download ##################################
# Each mirror in turn until one serves a verified file: stream it into a
# temporary file in the target directory, check it, and only then rename it
# into place (atomic_file), so no partial or unverified file is ever left.
def fetch(data_dir, name, dest=None, mirrors=None):
    """Download name.gz into data_dir (or over dest, a corrupt raw IDX file or
    .gz); returns (path, decompressed content, url)."""
    dest = dest or os.path.join(data_dir, name + ".gz")
    created = []  # the directories made here, removed again if nothing arrives
    path = os.path.abspath(data_dir)
    while not os.path.exists(path):
        created.append(path)
        path = os.path.dirname(path)
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise MNISTError("%s is not a directory" % data_dir)
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as e:
        raise MNISTError("cannot write into %s (%s)" % (data_dir, e))
    try:
        return fetch_into(data_dir, name, dest, mirrors)
    except BaseException:  # nothing arrived (or Ctrl-C): a mistyped --data-dir leaves nothing
        for folder in created:  # deepest first
            try:
                os.rmdir(folder)
            except OSError:
                break
        raise


def fetch_into(data_dir, name, dest, mirrors):
    failures = []
    for mirror in MIRRORS if mirrors is None else mirrors:
        url = mirror.rstrip("/") + "/" + name + ".gz"
        received = []

        def download(f):
            content = check_download(name, f, http_get(url, f))
            if not dest.endswith(".gz"):  # replacing a raw IDX file: keep it raw
                f.seek(0)
                f.truncate()
                f.write(content)
            received.append(content)
        try:
            atomic_file.write(dest, download, mode="w+b")
        except MNISTError as e:
            failures.append("%s (%s)" % (url, e))
            continue
        except OSError as e:
            raise MNISTError("cannot write %s (%s)" % (dest, e))
        save_stamp(data_dir, dest, stamp_of(dest, name))
        return dest, received[0], url
    raise MNISTError("tried %s" % ("; ".join(failures) or "no mirror"))


def http_get(url, out):
    """Stream url into the open file `out`; returns the SHA-256 of what was received."""
    sha = hashlib.sha256()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            length = response.headers.get("Content-Length")
            length = int(length) if length and length.isdigit() else None
            with tqdm(total=length, unit="B", unit_scale=True, leave=False,
                      desc=os.path.basename(url), disable=not sys.stderr.isatty()) as bar:
                while True:
                    chunk = response.read(1 << 16)
                    if not chunk:
                        break
                    received += len(chunk)
                    if received > MAX_BYTES:
                        raise MNISTError("more than %d bytes, not an MNIST file" % MAX_BYTES)
                    sha.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise MNISTError("HTTP %d %s" % (e.code, e.reason))
    except urllib.error.URLError as e:
        raise MNISTError(str(e.reason))
    except (OSError, http.client.HTTPException, ValueError) as e:  # timeout, reset, bad URL
        raise MNISTError(str(e) or type(e).__name__)
    # http.client does not complain when the connection closes early: we do.
    if length is not None and received != length:
        raise MNISTError("connection closed after %d of %d bytes" % (received, length))
    return sha.hexdigest()


def check_download(name, f, archive_digest):
    """The decompressed content of a downloaded .gz (the open file f), or
    MNISTError if it is not the original archive and its content is not the
    official file either."""
    f.flush()
    f.seek(0)
    content = read_idx_bytes(f, gz=True, label="not a valid .gz")
    if archive_digest == GZ_SHA256.get(name):
        return content  # the original archive, byte for byte
    actual = sha256_hex(content)
    if actual != SHA256[name]:
        raise MNISTError("SHA-256 mismatch (content %s, expected %s)" % (actual, SHA256[name]))
    return content


# ################################### CLI ####################################
# Problems are one line on stderr and a non-zero exit status, never a traceback.
def main(argv=None):
    parser = argparse.ArgumentParser(description="Check or download the four MNIST files.")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--check", nargs="?", const="", metavar="DIR",
                        help="verify the four files in DIR (default: $MNIST_DATA_DIR, "
                             "else data/mnist/) and print a table")
    action.add_argument("--download", metavar="DIR",
                        help="download into DIR whatever is missing or corrupt")
    parser.add_argument("--mirror", action="append", metavar="URL",
                        help="download from URL instead of the default mirrors (repeatable)")
    args = parser.parse_args(argv)
    try:
        if args.download is not None:
            for _, path, url in download(args.download, args.mirror):
                print("%-28s %s" % (os.path.basename(path),
                                    "downloaded from " + url if url else "already verified"))
            print("all four MNIST files verified in %s" % find_data_dir(args.download))
            return 0
        data_dir = find_data_dir(args.check)
        rows = check(data_dir)
        print("MNIST files in %s" % data_dir)
        print("%-28s %10s  %s" % ("file", "size", "status"))
        for file, size, problem in rows:
            print("%-28s %10s  %s" % (file, "-" if size is None else size, problem or "verified"))
        failed = sum(1 for row in rows if row[2])
        if failed:
            print("mnist_loader: %d problem(s) in %s; %s"
                  % (failed, data_dir, how_to_fix(data_dir)), file=sys.stderr)
            return 1
        return 0
    except MNISTError as e:
        print("mnist_loader: %s" % e, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mnist_loader: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
