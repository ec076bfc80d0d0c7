"""MNIST loader: finds the four IDX files, verifies them, parses them.

    from mnist_loader import load_data
    X_train, y_train, X_val, y_val, X_test, y_test = load_data()

Data is looked for in an explicit directory, then $MNIST_DATA_DIR, then the
project's vendored data/mnist/. A directory may hold the .gz files or the raw
IDX files.
"""
import gzip
import hashlib
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VENDORED_DIR = os.path.join(HERE, "data", "mnist")

# SHA-256 of the official *decompressed* IDX files.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


class MNISTError(Exception):
    """Missing, corrupt or unreadable MNIST data (the message says what to do)."""


def data_dir_for(data_dir=None):
    return data_dir or os.environ.get("MNIST_DATA_DIR") or VENDORED_DIR


def read_file(data_dir, name):
    """The decompressed bytes of `name` (raw or .gz) in data_dir, checksum verified."""
    for path, opener in ((os.path.join(data_dir, name), open),
                         (os.path.join(data_dir, name + ".gz"), gzip.open)):
        if os.path.exists(path):
            break
    else:
        raise MNISTError("%s: missing (neither %s nor %s.gz); copy the MNIST files there "
                         "or set MNIST_DATA_DIR" % (os.path.join(data_dir, name), name, name))
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise MNISTError("%s: unreadable (%s); delete it and fetch it again" % (path, e))
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256[name]:
        raise MNISTError("%s: SHA-256 mismatch (expected %s, got %s); the file is corrupt "
                         "or not MNIST: delete it and fetch it again" % (path, SHA256[name], digest))
    return raw


def parse_idx(raw, name="IDX data"):
    """Images (N, 28, 28) uint8 from magic 2051, labels (N,) uint8 from magic 2049."""
    if len(raw) < 8:
        raise MNISTError("%s: too short for an IDX header (%d bytes)" % (name, len(raw)))
    magic, count = int.from_bytes(raw[0:4], "big"), int.from_bytes(raw[4:8], "big")
    if magic == 2049:
        shape, offset = (count,), 8
    elif magic == 2051 and len(raw) >= 16:
        rows, cols = int.from_bytes(raw[8:12], "big"), int.from_bytes(raw[12:16], "big")
        shape, offset = (count, rows, cols), 16
    else:
        raise MNISTError("%s: bad magic number %d (expected 2049 for labels, 2051 for images)"
                         % (name, magic))
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - offset != size:
        raise MNISTError("%s: header says %d bytes of data, file has %d"
                         % (name, size, len(raw) - offset))
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(shape)


def load_images(data_dir, name):
    data = parse_idx(read_file(data_dir, name), name)
    # The inputs are (examples, channels, rows, columns) float32 in [0, 255/256]
    # (divided by 256 as the original, for compatibility with mnist.pkl.gz).
    return data.reshape(-1, 1, 28, 28) / np.float32(256)


def load_labels(data_dir, name):
    return parse_idx(read_file(data_dir, name), name)


def load_data(data_dir=None):
    """[X_train, y_train, X_val, y_val, X_test, y_test], the last 10,000 training
    images held out for validation, as in the tutorial."""
    data_dir = data_dir_for(data_dir)
    X_train = load_images(data_dir, "train-images-idx3-ubyte")
    y_train = load_labels(data_dir, "train-labels-idx1-ubyte")
    X_test = load_images(data_dir, "t10k-images-idx3-ubyte")
    y_test = load_labels(data_dir, "t10k-labels-idx1-ubyte")
    X_train, X_val = X_train[:-10000], X_train[-10000:]
    y_train, y_val = y_train[:-10000], y_train[-10000:]
    return [X_train, y_train, X_val, y_val, X_test, y_test]
