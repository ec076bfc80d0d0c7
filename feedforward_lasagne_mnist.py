#!/usr/bin/env python3
"""Feedforward MNIST with Lasagne: the 2016 tutorial, running in 2026.

A 500-300-10 multi-layer perceptron with 40 % dropout, trained with rmsprop
on MNIST through Theano. From a REPL, exactly as the tutorial:

    import feedforward_lasagne_mnist as flm
    data = flm.load_data()
    network = flm.run_network(data=data)

From the shell: `python feedforward_lasagne_mnist.py --help`.
"""
from __future__ import print_function

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
import weakref
import zipfile

import numpy as np

import compat  # noqa: F401  (before theano/lasagne: Theano defaults + 2026 shims)
import theano
import theano.tensor as T
import lasagne
import speedups  # noqa: F401  (faster dropout masks and elementwise loops, same math)
from lasagne.updates import rmsprop
from lasagne.layers import DenseLayer, DropoutLayer, InputLayer
from lasagne.nonlinearities import rectify, softmax
from lasagne.objectives import categorical_crossentropy
from tqdm import tqdm

import gpu_env
from mnist_loader import load_data, MNISTError

# The original code called the loader load_dataset(): keep that name working.
load_dataset = load_data


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite."""


class CheckpointError(ValueError):
    """A model file that cannot be loaded into this network."""


class ImageError(ValueError):
    """An image file that cannot be read."""


# ##################### Build the neural network model #######################
# build_mlp() only describes the forward pass: each layer takes the previous
# one, and the output layer stands for a Theano expression of `input_var`.
# Nothing is computed until the expressions are compiled in run_network().
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
# A generator of (inputs, targets) minibatches, optionally in random order.
# A last batch smaller than `batchsize` is dropped, as in the tutorial.
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


# ########################## One pass over the data ##########################
# train() feeds every shuffled batch to train_fn, which updates the weights
# and returns the batch's loss; test() feeds batches in order to val_fn,
# which only evaluates. Both average over batches, as the tutorial does.
def train(train_fn, X, y, batch_size, progress=False):
    batches = tqdm(iterate_minibatches(X, y, batch_size, shuffle=True),
                   total=len(X) // batch_size, unit="batch", leave=False,
                   disable=not progress, file=sys.stdout)
    return [float(train_fn(inputs, targets)) for inputs, targets in batches]


def test(val_fn, X, y, batch_size):
    err = acc = batches = 0
    for inputs, targets in iterate_minibatches(X, y, batch_size, shuffle=False):
        batch_err, batch_acc = val_fn(inputs, targets)
        err += batch_err
        acc += batch_acc
        batches += 1
    return err / batches, acc / batches


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
    if theano.config.device.startswith(("cuda", "gpu")):
        device = "GPU " + gpu_env.gpu_in_use()
    else:
        device = "CPU " + cpu_name()
    blas = [w for w in theano.config.blas.ldflags.split() if w.startswith(("-l", "-L"))]
    return ("Device: {} ({}), floatX={}, BLAS: {}".format(
        device, theano.config.device, theano.config.floatX,
        " ".join(blas) or "none (numpy fallback)"))


def seed_rngs(seed):
    """Seeds the shuffling, the initial weights and the dropout masks."""
    np.random.seed(seed)
    lasagne.random.set_rng(np.random.RandomState(seed))


# ############################## Main program ################################
# run_network() loads the data, builds the network (or continues training
# the one given), compiles the two Theano functions, trains, validates every
# epoch and tests at the end. It runs in a try/except so that Ctrl-C returns
# the network trained so far (with network.interrupted set). Each epoch's
# numbers are appended to `network.history` (a dict of lists, see record()).
def run_network(data=None, num_epochs=20, network=None, batch_size=500,
                learning_rate=0.001, seed=None, progress=None, data_dir=None,
                limit=None):
    if progress is None:
        progress = sys.stdout.isatty()
    try:
        # Loading the data
        global_start_time = time.time()
        print('Loading data...')
        if data is None:
            X_train, y_train, X_val, y_val, X_test, y_test = load_data(data_dir)
        else:
            X_train, y_train, X_val, y_val, X_test, y_test = data
        if limit:  # a quick run on the first `limit` training examples
            X_train, y_train = X_train[:limit], y_train[:limit]
        smallest = min(len(X_train), len(X_val), len(X_test))
        if batch_size > smallest:
            raise ValueError("batch size {} is larger than the smallest data set ({} "
                             "examples): no full batch".format(batch_size, smallest))
        if seed is not None:
            seed_rngs(seed)

        # Building the Theano expressions: a 4D tensor for a batch of images
        # goes through the network; an int32 vector holds their labels.
        if network is None:
            input_var = T.tensor4('inputs')
            network = build_mlp(input_var)
        else:
            input_var = lasagne.layers.get_all_layers(network)[0].input_var
        network.interrupted = False
        target_var = T.ivector('targets')

        # The training loss uses dropout; the test expressions pass
        # deterministic=True, which turns dropout off.
        prediction = lasagne.layers.get_output(network)
        loss = categorical_crossentropy(prediction, target_var)
        loss = loss.mean()

        test_prediction = lasagne.layers.get_output(network,
                                                    deterministic=True)
        test_loss = categorical_crossentropy(test_prediction, target_var)
        test_loss = test_loss.mean()
        test_acc = T.mean(T.eq(T.argmax(test_prediction, axis=1), target_var),
                          dtype=theano.config.floatX)

        # rmsprop derives the gradients of `loss` w.r.t. the weights and
        # biases and returns the update expressions for them.
        params = lasagne.layers.get_all_params(network, trainable=True)
        updates = rmsprop(loss, params, learning_rate=learning_rate)

        # Compiling the graph: Theano optimises it and generates C code.
        compile_start = time.time()
        train_fn = theano.function([input_var, target_var],
                                   loss, updates=updates)
        val_fn = theano.function([input_var, target_var],
                                 [test_loss, test_acc])
        print(describe_backend())
        print("Compiled train_fn and val_fn in {:.2f}s".format(
            time.time() - compile_start))

        print("Starting training...")
        for epoch in range(num_epochs):
            start_time = time.time()
            batch_losses = train(train_fn, X_train, y_train, batch_size, progress)
            train_err = np.mean(batch_losses)
            if not np.isfinite(train_err):
                raise TrainingDiverged(
                    "training diverged in epoch {}: the training loss is {} "
                    "(learning rate {} too high?); stopped".format(
                        epoch + 1, train_err, learning_rate))
            val_err, val_acc = test(val_fn, X_val, y_val, batch_size)
            epoch_time = time.time() - start_time
            record(network, train_err, val_err, val_acc, epoch_time, batch_losses)

            # Then we print the results for this epoch:
            print("Epoch {} of {} took {:.3f}s".format(
                epoch + 1, num_epochs, epoch_time))
            print("training loss:\t\t{:.6f}".format(train_err))
            print("validation loss:\t\t{:.6f}".format(val_err))
            print("validation accuracy:\t\t{:.2f} %".format(val_acc * 100))

        # Now that the training is over, let's test the network:
        test_err, test_acc = test(val_fn, X_test, y_test, batch_size)
        print("Final results in {} seconds:".format(
            time.time() - global_start_time))
        print("  test loss:\t\t\t{:.6f}".format(test_err))
        print("  test accuracy:\t\t{:.2f} %".format(test_acc * 100))
        return network
    except KeyboardInterrupt:
        print("\nInterrupted: returning the network trained so far.")
        if network is not None:
            network.interrupted = True
        return network


# ################################ History ###################################
# The tutorial's first exercise: a loss history, like the Keras sibling's
# LossHistory callback. Retraining a network appends to its history.
HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_acc", "epoch_time")


def record(network, train_err, val_err, val_acc, epoch_time, batch_losses):
    if not hasattr(network, "history"):
        network.history = {k: [] for k in HISTORY_COLUMNS + ("batch_loss",)}
    history = network.history
    row = (len(history["epoch"]) + 1, train_err, val_err, val_acc, epoch_time)
    for key, value in zip(HISTORY_COLUMNS, row):
        history[key].append(float(value) if key != "epoch" else value)
    history["batch_loss"].extend(batch_losses)


def atomic_write(path, write, mode="wb"):
    """Write through a temporary file in the same directory, then rename:
    a crash or an error never leaves a partial file at `path`."""
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)),
                                   prefix=".tmp-", suffix=os.path.basename(path))
    except OSError as e:
        raise OSError("{}: cannot write there ({})".format(path, e.strerror or e))
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's files are private (0600)
        with os.fdopen(fd, mode) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException as e:
        os.unlink(tmp)
        if isinstance(e, OSError):
            raise OSError("{}: cannot write ({})".format(path, e.strerror or e))
        raise


def save_history(history, path):
    def write(f):
        out = csv.writer(f)
        out.writerow(HISTORY_COLUMNS)
        out.writerows(zip(*(history[k] for k in HISTORY_COLUMNS)))
    atomic_write(path, write, mode="w")


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
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)


# ########################### Saving and loading #############################
# Only the parameter values are stored, in a plain .npz (no pickle), with the
# architecture's layer sizes so that a file of another network is refused.
ARCHITECTURE = "784-500-300-10"


def save_network(network, path):
    values = lasagne.layers.get_all_param_values(network)
    arrays = {"param_%d" % i: v for i, v in enumerate(values)}
    atomic_write(path, lambda f: np.savez(f, architecture=np.array(ARCHITECTURE),
                                          **arrays))


def load_network(path, input_var=None):
    network = build_mlp(input_var)
    expected = [p.get_value().shape for p in lasagne.layers.get_all_params(network)]
    if not os.path.isfile(path) or not zipfile.is_zipfile(path):
        raise CheckpointError("{}: not an .npz model file ({}); save one with "
                              "--save-model".format(
                                  path, "no such file" if not os.path.exists(path)
                                  else "not a zip archive"))
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except Exception as e:  # numpy/zipfile raise many types for a bad file
        raise CheckpointError("{}: not a readable .npz model file ({}: {}); save one "
                              "with --save-model".format(path, type(e).__name__, e))
    values = [arrays.get("param_%d" % i) for i in range(len(expected))]
    found = [None if v is None else v.shape for v in values]
    if (str(arrays.get("architecture")) != ARCHITECTURE or found != expected
            or len(arrays) != len(expected) + 1):
        raise CheckpointError("{}: saved from another network (architecture {}, shapes {}); "
                              "this one is {} with shapes {}".format(
                                  path, arrays.get("architecture"), found,
                                  ARCHITECTURE, expected))
    if not all(v.dtype.kind == "f" and np.isfinite(v).all() for v in values):
        raise CheckpointError("{}: the parameters are not all finite floating-point "
                              "numbers".format(path))
    lasagne.layers.set_all_param_values(
        network, [v.astype(theano.config.floatX) for v in values])
    return network


# ############################### Prediction #################################
# The tutorial's Quick Exercise. The prediction function is compiled once per
# network and kept while the network lives.
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


def load_image(path):
    """Any image file -> a (1, 28, 28) example: grayscale, white digit on black."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            alpha = image.getchannel("A") if "A" in image.getbands() else None
            if alpha is not None and alpha.getextrema()[0] < 255:
                image = alpha  # ink on a transparent background: the ink is the opacity
            pixels = np.asarray(image.convert("L").resize((28, 28), Image.LANCZOS),
                                dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError("{}: not a readable image ({})".format(path, e))
    if pixels.max() - pixels.min() < 16:
        raise ImageError("{}: no digit to read (the image is blank: gray levels {:.0f} "
                         "to {:.0f})".format(path, pixels.min(), pixels.max()))
    if pixels.mean() > 127:  # dark ink on light paper: invert, as MNIST is
        pixels = 255 - pixels
    return (pixels / np.float32(256)).reshape(1, 28, 28)


# ############################ Command line ##################################
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
    parser.add_argument("--seed", type=int, metavar="S",
                        help="seed numpy and Lasagne's RNG: same seed, same losses (CPU)")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        help="where Theano runs; cuda uses the gpuarray backend "
                             "(default: as THEANO_FLAGS/.theanorc say, else cpu)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="directory with the MNIST files (default: $MNIST_DATA_DIR, "
                             "else the project's data/mnist)")
    parser.add_argument("--limit", type=int, metavar="N",
                        help="train on the first N training examples only (a quick run)")
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
                        help="no progress bar (it is shown only on a terminal anyway)")
    args = parser.parse_args(argv)
    if args.epochs < 0 or args.batch_size < 1 or not 0 < args.lr < float("inf"):
        parser.error("--epochs must be >= 0, --batch-size >= 1 and --lr > 0")
    if args.batch_size > 10000:
        parser.error("--batch-size {} is larger than the validation and test sets "
                     "(10,000 examples): no full batch".format(args.batch_size))
    if args.limit is not None and args.limit < args.batch_size:
        parser.error("--limit {} is smaller than --batch-size {}: no full batch to "
                     "train on".format(args.limit, args.batch_size))
    outputs = [(o, getattr(args, o)) for o in ("save_model", "history", "plot")
               if getattr(args, o)]
    if args.predict and not args.load_model:
        parser.error("--predict needs --load-model PATH (train one with --save-model)")
    if args.predict and outputs:
        parser.error("--predict does not train: it writes no --save-model/--history/--plot")
    for option, path in outputs:  # checked now rather than after the training
        folder = os.path.dirname(os.path.abspath(path))
        if os.path.isdir(path) or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            parser.error("--{} {}: cannot write there ({})".format(
                option.replace("_", "-"), path,
                "a directory" if os.path.isdir(path) else
                "no directory " + folder if not os.path.isdir(folder) else
                "directory not writable"))
    return args


def main(argv=None):
    args = parse_args(argv)
    on_gpu = theano.config.device.startswith(("cuda", "gpu"))
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
        if args.predict:
            for path in args.predict:
                probs = predict_proba(network, load_image(path)[np.newaxis])[0]
                print("{}: {} ({:.1f} %)".format(path, probs.argmax(), probs.max() * 100))
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
            print("no epoch completed: nothing written", file=sys.stderr)
        if network is None or network.interrupted:
            sys.exit(130)  # as a shell reports a Ctrl-C
    except KeyboardInterrupt:
        print("\nInterrupted.", file=sys.stderr)
        sys.exit(130)
    except (MNISTError, CheckpointError, ImageError, TrainingDiverged,
            gpu_env.GpuEnvError, OSError, ValueError) as e:
        raise SystemExit("error: {}".format(e))


if __name__ == '__main__':
    main()
