"""What both peers share with the faithful script: the data and the init.

The vendored IDX files read as mnist_loader reads them (images / 256 as
float32, the last 10,000 training images held out for validation, flattened
to 784 here), and Lasagne's GlorotUniform (gain 1: U(-a, a), a = sqrt(6 /
(fan_in + fan_out)), W of shape (fan_in, fan_out)). numpy only.
"""
import argparse
import gzip
import os

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "mnist")
SIZES = (784, 500, 300, 10)


def load_idx(name, data_dir=None):
    """One of the project's vendored IDX files (raw or .gz)."""
    data_dir = data_dir or os.environ.get("MNIST_DATA_DIR") or DATA_DIR
    path = os.path.join(data_dir, name)
    opener = open if os.path.exists(path) else gzip.open
    with opener(path if opener is open else path + ".gz", "rb") as f:
        raw = f.read()
    if int.from_bytes(raw[:4], "big") == 2051:
        return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784)
    return np.frombuffer(raw, np.uint8, offset=8)


def load_data():
    X = load_idx("train-images-idx3-ubyte") / np.float32(256)
    y = load_idx("train-labels-idx1-ubyte")
    X_test = load_idx("t10k-images-idx3-ubyte") / np.float32(256)
    y_test = load_idx("t10k-labels-idx1-ubyte")
    return X[:-10000], y[:-10000], X[-10000:], y[-10000:], X_test, y_test


def hidden_sizes(text):
    """--hidden's value: "500,300" -> (500, 300), for argparse."""
    try:
        sizes = tuple(int(w) for w in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("%r: give positive layer sizes, e.g. 500,300" % text)
    return sizes


def positive_int(text):
    """--batch-size's value, for argparse."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("%r: give a positive whole number" % text)
    return value


def experiment_parser(description, updates):
    """The flags both peers share, named as the script's: the experiment
    (epochs, seed) and the tutorial's variants (hidden sizes, update rule,
    batch size)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--epochs", type=int, default=20, help="(default: 20)")
    ap.add_argument("--seed", type=int, default=None, help="(default: none)")
    ap.add_argument("--hidden", type=hidden_sizes, default=(500, 300),
                    help="hidden layer sizes, comma-separated (default: 500,300)")
    ap.add_argument("--update", choices=sorted(updates), default="rmsprop",
                    help="update rule (default: rmsprop)")
    ap.add_argument("--batch-size", type=positive_int, default=500,
                    help="training and evaluation batch (default: 500)")
    return ap


def sizes_of(hidden):
    """784, the hidden layers, 10."""
    return (SIZES[0],) + tuple(hidden) + (SIZES[-1],)


def glorot_params(rng, sizes=SIZES):
    """[W1, b1, W2, b2, W3, b3] as float32 numpy arrays, biases zero."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        a = np.sqrt(6.0 / (fan_in + fan_out))
        params += [rng.uniform(-a, a, (fan_in, fan_out)).astype(np.float32),
                   np.zeros(fan_out, np.float32)]
    return params


def print_epoch(epoch, num_epochs, seconds, train_loss, val_loss, val_acc):
    """The tutorial's lines, so that one parser reads every program."""
    print("Epoch {} of {} took {:.3f}s".format(epoch + 1, num_epochs, seconds))
    print("training loss:\t\t{:.6f}".format(train_loss))
    print("validation loss:\t\t{:.6f}".format(val_loss))
    print("validation accuracy:\t\t{:.2f} %".format(val_acc * 100))


def print_final(seconds, test_loss, test_acc):
    print("Final results in {} seconds:".format(seconds))
    print("  test loss:\t\t\t{:.6f}".format(test_loss))
    print("  test accuracy:\t\t{:.2f} %".format(test_acc * 100))
