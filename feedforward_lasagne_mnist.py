#!/usr/bin/env python3
"""Feedforward MNIST with Lasagne: the 2016 tutorial, running in 2026.

A 500-300-10 multi-layer perceptron with 40 % dropout, trained with rmsprop
on MNIST through Theano. The file reads in the tutorial's order: imports,
load_data(), build_mlp(), iterate_minibatches(), run_network(); then the
tutorial's exercises (loss history, retraining, get_class); then, below a
banner, what the tutorial never had (checkpoints, prediction from image
files, the command line). From a REPL, exactly as the tutorial:

    import feedforward_lasagne_mnist as flm
    data = flm.load_data()
    network = flm.run_network(data=data)

From the shell: `python feedforward_lasagne_mnist.py --help`.
"""
from __future__ import print_function

import argparse
import csv
import io
import os
import platform
import signal
import sys
import time
import weakref
import zipfile

if __name__ == "__main__":  # Ctrl-C while Theano and Lasagne import: exit quietly
    signal.signal(signal.SIGINT, lambda signum, frame: os._exit(130))

# The 2016 -> 2026 shims (compat.py) must be in place before Theano is first
# imported. The project's .venv does it at interpreter start; this line does it
# for any other Python, and refuses one that cannot run Theano 1.0.5. (A GPU
# that cannot start is reported by main(), in one line.)
import compat
compat.install(quiet_gpu=__name__ == "__main__")

import numpy as np
import theano
import theano.tensor as T
import lasagne
from lasagne.updates import rmsprop
from lasagne.layers import DenseLayer, DropoutLayer, InputLayer
from lasagne.nonlinearities import rectify, softmax
from lasagne.objectives import categorical_crossentropy
from tqdm import tqdm

import atomic_file
import gpu_env
import speedups
from mnist_loader import load_data, MNISTError

# Faster CPU code paths for the same math (speedups.py; each one is listed in
# the README). FLM_SPEEDUPS=0, or --no-speedups, runs stock Theano and Lasagne.
if os.environ.get("FLM_SPEEDUPS", "1") != "0":
    speedups.enable()


# ############################# Loading the data #############################
# load_data() comes from mnist_loader.py, which finds, verifies and if need be
# downloads the four MNIST files. All that matters here is what it returns:
#   X_train (50000, 1, 28, 28), y_train (50000,)
#   X_val   (10000, 1, 28, 28), y_val   (10000,)
#   X_test  (10000, 1, 28, 28), y_test  (10000,)
# images as float32 in [0, 255/256], labels as uint8. The original code called
# the loader load_dataset(): that name works too.
load_dataset = load_data


# ##################### Build the neural network model #######################
# Each layer takes the previous one: build_mlp() only says how the forward
# pass transforms `input_var`, and l_out stands for the Theano expression of
# the whole network. Nothing is computed until run_network() compiles it.
def build_mlp(input_var=None):
    l_in = InputLayer(shape=(None, 1, 28, 28), input_var=input_var)

    l_hid1 = DenseLayer(
            l_in, num_units=500,
            nonlinearity=rectify,
            W=lasagne.init.GlorotUniform())
    l_hid1_drop = DropoutLayer(l_hid1, p=0.4)

    l_hid2 = DenseLayer(
            l_hid1_drop, num_units=300,
            nonlinearity=rectify)
    l_hid2_drop = DropoutLayer(l_hid2, p=0.4)

    l_out = DenseLayer(
            l_hid2_drop, num_units=10,
            nonlinearity=softmax)

    return l_out


# ############################# Batch iterator ###############################
# A generator of (inputs, targets) minibatches of `batchsize` examples,
# shuffled or in order, so that an epoch walks through the data without
# copying it all. A last batch smaller than `batchsize` is dropped.
def iterate_minibatches(inputs, targets, batchsize, shuffle=False):
    if len(inputs) != len(targets):
        raise ValueError("iterate_minibatches: %d inputs but %d targets; they must "
                         "have the same length" % (len(inputs), len(targets)))
    if shuffle:
        indices = np.arange(len(inputs))
        np.random.shuffle(indices)
    for start_idx in range(0, len(inputs) - batchsize + 1, batchsize):
        if shuffle:
            excerpt = indices[start_idx:start_idx + batchsize]
        else:
            excerpt = slice(start_idx, start_idx + batchsize)
        yield inputs[excerpt], targets[excerpt]


# ############################## Main program ################################
# run_network() is where the training happens. It loads the data, builds the
# network, declares the Theano expressions of the losses and of the updates,
# compiles them into train_fn and val_fn, then runs the epoch and batch loops
# in plain sight (change anything you like in them), and tests the network.
# It runs inside a try/except, so Ctrl-C returns the network trained so far.
#
# What the port adds, a line or two each inside the same structure:
#   network=...        continue training a given network (the retraining
#                      exercise; Lasagne keeps its weights, rmsprop restarts),
#   batch_size, learning_rate   the tutorial's 500 and 0.001 by default,
#   seed=...           the same weights, shuffling and dropout masks each run,
#   progress=...       a progress bar over the batches, on stderr (default:
#                      when stderr is a terminal),
#   data_dir, limit    where the MNIST files are; train on the first `limit`
#                      training examples only,
#   check_data()       data=... checked and converted before anything compiles,
#   network.history    each epoch's numbers (the loss-history exercise),
#   TrainingDiverged   raised when the training loss is no longer finite,
#   and the device and compile time, on stderr (stdout is the tutorial's).
def run_network(data=None, num_epochs=20, network=None, batch_size=500,
                learning_rate=0.001, seed=None, progress=None, data_dir=None,
                limit=None):
    try:
        # Loading the data: pass data=load_data() to skip it in a REPL
        global_start_time = time.time()
        print('Loading data...')
        if data is None:
            X_train, y_train, X_val, y_val, X_test, y_test = load_data(data_dir)
        else:
            X_train, y_train, X_val, y_val, X_test, y_test = data
        X_train, y_train, X_val, y_val, X_test, y_test = check_data(
            X_train, y_train, X_val, y_val, X_test, y_test, batch_size, limit)
        if seed is not None:
            seed_rngs(seed)

        # Creating the Theano variables
        input_var = T.tensor4('inputs')
        target_var = T.ivector('targets')

        # Building the Theano expressions on these variables. A network being
        # retrained already has its own input variable: use that one.
        if network is None:
            network = build_mlp(input_var)
        else:
            input_var = lasagne.layers.get_all_layers(network)[0].input_var
        network.interrupted = False

        # The training loss, with dropout ...
        prediction = lasagne.layers.get_output(network)
        loss = categorical_crossentropy(prediction, target_var)
        loss = loss.mean()

        # ... and the test loss and accuracy: deterministic=True turns the
        # dropout off, since we evaluate the network rather than train it.
        test_prediction = lasagne.layers.get_output(network,
                                                    deterministic=True)
        test_loss = categorical_crossentropy(test_prediction, target_var)
        test_loss = test_loss.mean()
        test_acc = T.mean(T.eq(T.argmax(test_prediction, axis=1), target_var),
                          dtype=theano.config.floatX)

        # The trainable parameters (3 weight matrices, 3 bias vectors) and
        # rmsprop's update expressions for them, derived from the loss.
        params = lasagne.layers.get_all_params(network, trainable=True)
        updates = rmsprop(loss, params, learning_rate=learning_rate)

        # Compiling the graph by declaring the Theano functions: train_fn
        # returns the loss of a batch and applies the updates; val_fn only
        # evaluates (validation and test data).
        compile_start = time.time()
        train_fn = theano.function([input_var, target_var],
                                   loss, updates=updates)
        val_fn = theano.function([input_var, target_var],
                                 [test_loss, test_acc])
        log(describe_backend())
        log("Compiled train_fn and val_fn in {:.2f}s".format(time.time() - compile_start))

        # The epoch loop: each time through the whole training data, then
        # the validation data
        print("Starting training...")
        for epoch in range(num_epochs):

            # Going over the training data
            train_err = 0
            train_batches = 0
            batch_losses = []
            start_time = time.time()
            for batch in progress_bar(iterate_minibatches(X_train, y_train,
                                                          batch_size, shuffle=True),
                                      len(X_train) // batch_size, progress):
                inputs, targets = batch
                batch_err = train_fn(inputs, targets)
                train_err += batch_err
                train_batches += 1
                batch_losses.append(float(batch_err))
            if not np.isfinite(train_err):
                raise TrainingDiverged(
                    "training diverged in epoch {}: the training loss is {} "
                    "(learning rate {} too high?); stopped".format(
                        epoch + 1, train_err / train_batches, learning_rate))

            # Going over the validation data
            val_err = 0
            val_acc = 0
            val_batches = 0
            for batch in iterate_minibatches(X_val, y_val, batch_size, shuffle=False):
                inputs, targets = batch
                err, acc = val_fn(inputs, targets)
                val_err += err
                val_acc += acc
                val_batches += 1
            epoch_time = time.time() - start_time
            record(network, train_err / train_batches, val_err / val_batches,
                   val_acc / val_batches, epoch_time, batch_losses)

            # Then we print the results for this epoch:
            print("Epoch {} of {} took {:.3f}s".format(
                epoch + 1, num_epochs, epoch_time))
            print("training loss:\t\t{:.6f}".format(train_err / train_batches))
            print("validation loss:\t\t{:.6f}".format(val_err / val_batches))
            print("validation accuracy:\t\t{:.2f} %".format(
                val_acc / val_batches * 100))

        # Now that the training is over, let's test the network:
        test_err = 0
        test_acc = 0
        test_batches = 0
        for batch in iterate_minibatches(X_test, y_test, batch_size, shuffle=False):
            inputs, targets = batch
            err, acc = val_fn(inputs, targets)
            test_err += err
            test_acc += acc
            test_batches += 1
        print("Final results in {0} seconds:".format(
            time.time() - global_start_time))
        print("  test loss:\t\t\t{:.6f}".format(test_err / test_batches))
        print("  test accuracy:\t\t{:.2f} %".format(
            test_acc / test_batches * 100))
        return network
    except KeyboardInterrupt:
        print("\nInterrupted: returning the network trained so far.")
        if network is not None:
            network.interrupted = True
        return network


# ############################################################################
#                          The tutorial's exercises
# ############################################################################

# ---------------------------------------------------------------- Loss history
# The first exercise: the Keras sibling's LossHistory callback. No callback is
# needed here, the loops are ours: run_network() calls record() once per
# epoch, and every network it trains carries `network.history`, a dict of
# lists (one entry per epoch, and every batch's loss in "batch_loss").
# Retraining a network appends to its history.
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_acc", "epoch_time")


def record(network, train_err, val_err, val_acc, epoch_time, batch_losses):
    if not hasattr(network, "history"):
        network.history = {k: [] for k in HISTORY_COLUMNS + ("batch_loss",)}
    history = network.history
    row = (len(history["epoch"]) + 1, train_err, val_err, val_acc, epoch_time)
    for key, value in zip(HISTORY_COLUMNS, row):
        history[key].append(float(value) if key != "epoch" else value)
    history["batch_loss"].extend(batch_losses)


def save_history(history, path):
    def write(f):
        out = csv.writer(f)
        out.writerow(HISTORY_COLUMNS)
        out.writerows(zip(*(history[k] for k in HISTORY_COLUMNS)))
    atomic_file.write(path, write, mode="w")


def plot_history(history, path):
    import matplotlib
    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    per_epoch = len(history["batch_loss"]) / max(len(history["epoch"]), 1)
    ax_loss.plot(np.arange(1, len(history["batch_loss"]) + 1) / per_epoch,
                 history["batch_loss"], color="0.75", lw=0.8, label="training (per batch)")
    ax_loss.plot(history["epoch"], history["train_loss"], "o-", label="training")
    ax_loss.plot(history["epoch"], history["val_loss"], "o-", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss (log scale)", title="Loss", yscale="log")
    ax_loss.legend()
    ax_acc.plot(history["epoch"], np.array(history["val_acc"]) * 100, "o-", color="C1")
    ax_acc.set(xlabel="epoch", ylabel="%", title="Validation accuracy")
    ax_acc.grid(alpha=0.3)
    fig.tight_layout()
    atomic_file.write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


# ----------------------------------------------------------- Retraining
# The second exercise: run_network(data=data, network=network) trains the
# given network further (its weights as they are, a fresh rmsprop state).

# ------------------------------------------------------ Quick Exercise
# get_class(network, example): the digit the network sees in one (1, 28, 28)
# example. The prediction function is compiled once per network and kept
# while the network lives.
_predict_fns = weakref.WeakKeyDictionary()


def predict_proba(network, examples):
    """Class probabilities, shape (N, 10), for examples of shape (N, 1, 28, 28)."""
    fn = _predict_fns.get(network)
    if fn is None:
        input_var = lasagne.layers.get_all_layers(network)[0].input_var
        fn = theano.function([input_var], lasagne.layers.get_output(
            network, deterministic=True))
        _predict_fns[network] = fn
    return fn(np.asarray(examples, dtype=theano.config.floatX))


def get_class(network, example):
    """The predicted digit for one (1, 28, 28) example."""
    return int(np.argmax(predict_proba(network, np.asarray(example)[np.newaxis])[0]))


# ############################################################################
#                       Beyond the tutorial (2026)
# What a training script is expected to offer today. Nothing above needs it
# to be read; run_network() calls the helpers of the first part.
# ############################################################################

class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite."""


class CheckpointError(ValueError):
    """A model file that cannot be loaded into this network."""


class ImageError(ValueError):
    """An image file that cannot be read."""


# ------------------------------------------------- Helpers of run_network()
def log(message):
    """Everything that is not the tutorial's output goes to stderr."""
    print(message, file=sys.stderr)


def progress_bar(batches, total, progress=None):
    """The batches, with a progress bar on stderr when `progress` (default:
    when stderr is a terminal); it disappears at the end of the epoch."""
    if progress is None:
        progress = sys.stderr.isatty()
    return tqdm(batches, total=total, unit="batch", leave=False,
                disable=not progress, file=sys.stderr)


def batch_size_problem(batch_size, *set_sizes):
    """Why `batch_size` cannot work with data sets of these sizes, or None."""
    if batch_size < 1:
        return "batch size {} is not a positive number".format(batch_size)
    if batch_size > min(set_sizes):
        return ("batch size {} is larger than the smallest data set ({} examples): "
                "no full batch".format(batch_size, min(set_sizes)))
    return None


DATA_NAMES = ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test")


def check_data(X_train, y_train, X_val, y_val, X_test, y_test, batch_size=500, limit=None):
    """The six arrays as run_network() needs them, checked before anything is
    compiled: what is safe to convert is converted (lists, float64 images,
    (N, 28, 28) or (N, 784) images, int32/int64 labels); anything else is a
    ValueError with one sentence naming the array."""
    for name, value in (("batch_size", batch_size), ("limit", limit)):
        if value is not None and not isinstance(value, (int, np.integer)):
            raise ValueError("{} {!r} must be a whole number".format(name, value))
    if limit is not None:
        if limit < 1:
            raise ValueError("limit {} must be at least 1 (None: all the training "
                             "examples)".format(limit))
        X_train, y_train = X_train[:limit], y_train[:limit]
    arrays = [X_train, y_train, X_val, y_val, X_test, y_test]
    for i in range(0, 6, 2):
        X, y = np.asarray(arrays[i]), np.asarray(arrays[i + 1])
        X_name, y_name = DATA_NAMES[i], DATA_NAMES[i + 1]
        if X.ndim in (2, 3) and X.shape[1:] in ((784,), (28, 28)):
            X = X.reshape(-1, 1, 28, 28)
        if X.shape[1:] != (1, 28, 28) or X.dtype.kind not in "biuf":
            raise ValueError("{} has shape {} and dtype {}: expected numbers of shape "
                             "(N, 1, 28, 28), (N, 28, 28) or (N, 784)".format(
                                 X_name, X.shape, X.dtype))
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError("{} has shape {}: expected one label per image of {}, "
                             "shape ({},)".format(y_name, y.shape, X_name, len(X)))
        if not np.isfinite(X).all():
            raise ValueError("{} holds NaN or infinite values".format(X_name))
        if X.size and not (X.min() >= 0 and X.max() <= 1):
            raise ValueError("{} has values from {} to {}: expected [0, 1]; divide by 256 "
                             "as load_data does".format(X_name, X.min(), X.max()))
        if y.dtype.kind not in "iu" or y.size and not (y.min() >= 0 and y.max() <= 9):
            raise ValueError("{} must hold the digits 0 to 9 as integers (it holds {}{})".format(
                y_name, y.dtype, " from {} to {}".format(y.min(), y.max()) if y.size else ""))
        arrays[i] = X.astype(theano.config.floatX, copy=False)
        arrays[i + 1] = y.astype(np.uint8, copy=False)
    problem = batch_size_problem(batch_size, *(len(X) for X in arrays[::2]))
    if problem:
        raise ValueError(problem)
    return arrays


def seed_rngs(seed):
    """Seeds the shuffling, the initial weights and the dropout masks: numpy's
    global RNG and Lasagne's, from which each layer draws its own."""
    np.random.seed(seed)
    lasagne.random.set_rng(np.random.RandomState(seed))


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def describe_backend():
    """The device and BLAS Theano really uses (a GPU asked for must be active)."""
    if compat.is_gpu_device(theano.config.device):
        device = "GPU " + gpu_env.gpu_in_use()
    else:
        device = "CPU " + cpu_name()
    here = os.path.dirname(os.path.abspath(__file__))
    blas = [w if not w.startswith("-L") or os.path.relpath(w[2:], here).startswith("..")
            else "-L" + os.path.relpath(w[2:], here)  # the project's .venv: a short path
            for w in theano.config.blas.ldflags.split() if w.startswith(("-l", "-L"))]
    return ("Device: {} ({}), floatX={}, BLAS: {}, speed-ups: {}".format(
        device, theano.config.device, theano.config.floatX,
        " ".join(blas) or "none (numpy fallback)",
        "on" if speedups.enabled() else "off (stock Theano/Lasagne)"))


# ------------------------------------------------------------- Checkpoints
# Only the parameter values are stored, in a plain .npz (no pickle), with the
# architecture's layer sizes so that a file of another network is refused.
# A file is checked from its .npy headers (names, shapes, dtypes, sizes) before
# any array is read: a crafted header cannot make it allocate gigabytes.
ARCHITECTURE = "784-500-300-10"
MAX_ARRAY_BYTES = 1 << 26  # the largest array, 784x500 in float64, is 3 MB


def save_network(network, path):
    values = lasagne.layers.get_all_param_values(network)
    arrays = {"param_%d" % i: v for i, v in enumerate(values)}
    archive = io.BytesIO()  # built in memory (2 MB), so a failing disk only fails the write
    np.savez(archive, architecture=np.array(ARCHITECTURE), **arrays)
    atomic_file.write(path, lambda f: f.write(archive.getvalue()))


def first_line(error):
    """An exception's text, first line only (numpy's can run to several)."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def npz_headers(path):
    """{array name: (shape, dtype)} of an .npz, from the .npy headers alone:
    nothing is allocated for an array before its shape has been checked, and
    no member over MAX_ARRAY_BYTES is read at all."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        if len(archive.infolist()) > 64:  # a model has 7 arrays
            raise ValueError("{} arrays in it".format(len(archive.infolist())))
        for info in archive.infolist():
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            if info.file_size > MAX_ARRAY_BYTES:  # before reading even its header
                raise ValueError("{} is {} bytes".format(info.filename, info.file_size))
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(f)
            headers[name] = (shape, dtype)
    return headers


def load_network(path, input_var=None):
    network = build_mlp(input_var)
    expected = {"param_%d" % i: p.get_value().shape
                for i, p in enumerate(lasagne.layers.get_all_params(network))}
    what = ("no such file" if not os.path.lexists(path) else
            "a directory" if os.path.isdir(path) else
            "not a regular file" if not os.path.isfile(path) else
            "not readable" if not os.access(path, os.R_OK) else
            None if zipfile.is_zipfile(path) else "not a zip archive, as an .npz is")
    if what:
        raise CheckpointError("{}: {}; save a model with --save-model".format(path, what))
    try:
        headers = npz_headers(path)
    except Exception as e:  # zipfile/numpy raise many types for a bad file
        raise CheckpointError("{}: not a readable .npz model file ({}: {}); save one "
                              "with --save-model".format(path, type(e).__name__, first_line(e)))
    extra = sorted(set(headers) - set(expected) - {"architecture"})
    if extra:
        raise CheckpointError("{}: holds {}{} besides a {} model's arrays: not a model file "
                              "of this script".format(path, ", ".join(extra[:5]), " and {} more"
                                                      .format(len(extra) - 5) if len(extra) > 5
                                                      else "", ARCHITECTURE))
    found = {name: headers.get(name, (None,))[0] for name in expected}
    if found != expected:
        raise CheckpointError("{}: saved from another network (shapes {}); this one is {} "
                              "with shapes {}".format(path, [found[n] for n in sorted(found)],
                                                      ARCHITECTURE, sorted(expected.values())))
    if not all(headers[n][1].kind == "f" for n in expected):
        raise CheckpointError("{}: the parameters are not all floating-point numbers "
                              "({})".format(path, ", ".join(str(headers[n][1])
                                                            for n in sorted(expected))))
    try:  # the shapes are right: now reading is safe
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except Exception as e:
        raise CheckpointError("{}: not a readable .npz model file ({}: {}); save one "
                              "with --save-model".format(path, type(e).__name__, first_line(e)))
    if str(arrays.get("architecture")) != ARCHITECTURE:
        raise CheckpointError("{}: saved from another network (architecture {}); this one "
                              "is {}".format(path, arrays.get("architecture"), ARCHITECTURE))
    values = [arrays["param_%d" % i] for i in range(len(expected))]
    if not all(np.isfinite(v).all() for v in values):
        raise CheckpointError("{}: the parameters are not all finite numbers".format(path))
    lasagne.layers.set_all_param_values(
        network, [v.astype(theano.config.floatX) for v in values])
    return network


# -------------------------------------------------- Prediction from images
def load_image(path):
    """Any image file -> a (1, 28, 28) example: grayscale, white digit on black."""
    import warnings
    from PIL import Image
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # one line, below
            alpha = image.getchannel("A") if "A" in image.getbands() else None
            if alpha is not None and alpha.getextrema()[0] < 255:
                image = alpha  # ink on a transparent background: the ink is the opacity
            if image.mode == "F" and image.getextrema()[1] <= 1:  # float pixels in [0, 1]
                image = image.point(lambda v: v * 255)
            pixels = np.asarray(image.convert("L").resize((28, 28), Image.LANCZOS),
                                dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise ImageError("{}: not a readable image ({})".format(path, first_line(e)))
    if pixels.max() - pixels.min() < 16:
        raise ImageError("{}: no digit to read (the image is blank: gray levels {:.0f} "
                         "to {:.0f})".format(path, pixels.min(), pixels.max()))
    if pixels.mean() > 127:  # dark ink on light paper: invert, as MNIST is
        pixels = 255 - pixels
    return (pixels / np.float32(256)).reshape(1, 28, 28)


# ------------------------------------------------------------ Command line
def seed_number(text):
    """--seed: what numpy's RandomState accepts, 0 to 2**32 - 1."""
    seed = int(text)
    if not 0 <= seed < 2 ** 32:
        raise argparse.ArgumentTypeError("{} is not between 0 and 2**32 - 1".format(seed))
    return seed


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train the 2016 Lasagne tutorial's MLP (500-300-10, dropout .4, "
                    "rmsprop) on MNIST, or predict digits with a saved model.")
    parser.add_argument("--epochs", type=int, default=20, metavar="N",
                        help="passes over the training data (default: 20)")
    parser.add_argument("--batch-size", type=int, default=500, metavar="N",
                        help="examples per minibatch (default: 500)")
    parser.add_argument("--lr", type=float, default=0.001,
                        help="rmsprop learning rate (default: 0.001)")
    parser.add_argument("--seed", type=seed_number, metavar="S",
                        help="seed numpy and Lasagne's RNG: same seed, same losses "
                             "(default: none)")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        help="where Theano runs; cuda uses the gpuarray backend "
                             "(default: as THEANO_FLAGS/.theanorc say, else cpu)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="directory with the MNIST files (default: $MNIST_DATA_DIR, "
                             "else the project's data/mnist)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="train on the first N training examples only (default: all)")
    parser.add_argument("--save-model", metavar="PATH",
                        help="save the trained parameters to PATH (.npz)")
    parser.add_argument("--load-model", metavar="PATH",
                        help="start from the parameters in PATH (continue training)")
    parser.add_argument("--history", metavar="PATH",
                        help="write the per-epoch losses and accuracy to PATH (CSV)")
    parser.add_argument("--plot", metavar="PATH",
                        help="draw the loss and accuracy curves to PATH (PNG)")
    parser.add_argument("--predict", nargs="+", metavar="IMAGE",
                        help="print the digit in each image (needs --load-model); "
                             "no training")
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bar (default: one on stderr when it is a terminal)")
    parser.add_argument("--no-speedups", action="store_true",
                        help="stock Theano/Lasagne code paths, as FLM_SPEEDUPS=0 "
                             "(default: speed-ups on)")
    args = parser.parse_args(argv)
    if args.epochs < 0 or not 0 < args.lr < float("inf"):
        parser.error("--epochs must be >= 0 and --lr > 0")
    if np.asarray(args.lr, dtype=theano.config.floatX) == 0:
        parser.error("--lr {} is 0 in {} (floatX): no training would happen".format(
            args.lr, theano.config.floatX))
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be >= 1 (without it: all the training examples)")
    problem = batch_size_problem(args.batch_size, args.limit or 50000, 10000, 10000)
    if problem:
        parser.error("--batch-size {}{}: {}".format(
            args.batch_size, "" if args.limit is None else " --limit %d" % args.limit, problem))
    for option in ("data_dir", "save_model", "load_model", "history", "plot"):
        if getattr(args, option) == "":
            parser.error("--{}: an empty path".format(option.replace("_", "-")))
    outputs = [(o, getattr(args, o)) for o in ("save_model", "history", "plot")
               if getattr(args, o)]
    if args.predict and not args.load_model:
        parser.error("--predict needs --load-model PATH (train one with --save-model)")
    if args.predict and outputs:
        parser.error("--predict does not train: it writes no --save-model/--history/--plot")
    seen = {}  # two outputs on one file would leave only the last one
    if args.load_model:
        seen[os.path.realpath(args.load_model)] = "load_model"
    for option, path in outputs:  # checked now rather than after the training
        flag = "--" + option.replace("_", "-")
        problem = atomic_file.problem(path)
        if problem:
            parser.error("{} {}: cannot write there ({})".format(flag, path, problem))
        other = seen.get(os.path.realpath(path))
        if other and (other, option) != ("load_model", "save_model"):
            parser.error("{} {}: the same file as --{}; give each output its own "
                         "file".format(flag, path, other.replace("_", "-")))
        seen[os.path.realpath(path)] = option
    return args


# SIGTERM (a scheduler, `timeout`, `docker stop`) is handled like Ctrl-C: the
# epochs completed are kept and written; the exit status says which signal.
_stopped_by = [signal.SIGINT]


def _on_sigterm(signum, frame):
    _stopped_by[0] = signum
    raise KeyboardInterrupt


def main(argv=None):
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C keeps the network
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    if args.no_speedups:
        speedups.disable()
    if theano.config.floatX not in ("float32", "float64"):
        raise SystemExit("error: floatX={} is not supported by this script (Theano 1.0.5's "
                         "CPU ops, the dropout generator): use floatX=float32".format(
                             theano.config.floatX))
    on_gpu = compat.is_gpu_device(theano.config.device)
    if args.device == "cpu" and on_gpu:
        raise SystemExit("error: --device cpu, but THEANO_FLAGS/.theanorc select "
                         "device={}".format(theano.config.device))
    try:
        gpu_active = getattr(getattr(theano, "gpuarray", None), "pygpu_activated", False)
        if (args.device == "cuda" or on_gpu) and not gpu_active:
            # Theano picks its device at import, and the CUDA libraries must be
            # on LD_LIBRARY_PATH before Python starts: run again with them.
            gpu_env.reexec_with_cuda()
        gpu_env.gpu_in_use(theano)  # a GPU asked for but inactive: stop before any work
        if args.seed is not None:
            seed_rngs(args.seed)  # before a loaded network's dropout layers are built
        network = load_network(args.load_model) if args.load_model else None
        if args.predict:  # every image is tried; each bad one gets its own line
            failed = 0
            for path in args.predict:
                try:
                    probs = predict_proba(network, load_image(path)[np.newaxis])[0]
                except ImageError as e:
                    log("error: {}".format(e))
                    failed += 1
                    continue
                print("{}: {} ({:.1f} %)".format(path, probs.argmax(), probs.max() * 100))
            if failed:
                sys.exit(1)
            return
        epochs_before = len(getattr(network, "history", {"epoch": []})["epoch"])
        network = run_network(num_epochs=args.epochs, network=network,
                              batch_size=args.batch_size, learning_rate=args.lr,
                              seed=args.seed, progress=False if args.no_progress else None,
                              data_dir=args.data_dir, limit=args.limit)
        history = getattr(network, "history", {"epoch": []})
        if len(history["epoch"]) > epochs_before:  # never save an untrained network
            if args.save_model:
                save_network(network, args.save_model)
            if args.history:
                save_history(history, args.history)
            if args.plot:
                plot_history(history, args.plot)
        elif args.save_model or args.history or args.plot:
            log("no epoch completed: nothing written")
        if network is None or network.interrupted:
            sys.exit(128 + _stopped_by[0])  # as a shell reports it: 130 Ctrl-C, 143 SIGTERM
    except KeyboardInterrupt:
        log("\nInterrupted.")
        sys.exit(128 + _stopped_by[0])
    except (MNISTError, CheckpointError, ImageError, TrainingDiverged,
            gpu_env.GpuEnvError, OSError, ValueError) as e:
        raise SystemExit("error: {}".format(e))


if __name__ == '__main__':
    main()
