#!/usr/bin/env python3
"""Feedforward MNIST with Lasagne: the 2016 tutorial, running in 2026.

A 500-300-10 multi-layer perceptron with 40 % dropout, trained with rmsprop
on MNIST through Theano. The file reads in the tutorial's order: imports,
load_data(), build_mlp(), iterate_minibatches(), run_network(); then the
tutorial's exercises (loss history, retraining, get_class). What 2026 adds
(the shims, the speed-ups, checkpoints, the command line) lives in the
package lasagne_mnist_port. From a REPL, exactly as the tutorial:

    import feedforward_lasagne_mnist as flm
    data = flm.load_data()
    network = flm.run_network(data=data)

From the shell: `python feedforward_lasagne_mnist.py --help`.

Derived from feedforward_lasagne_mnist.py of Victor Schmidt's 2016 tutorial
(https://github.com/Vict0rSch/Deep-Learning, lasagne/), which is under the
GNU General Public License version 2; so is this file (LICENSE).
"""
from __future__ import print_function

import sys
import time
import weakref

# Theano 1.0.5 and Lasagne 0.1 need a few shims to run in 2026 (docs/changes.md),
# in place before Theano is first imported. The project's .venv applies them at
# interpreter start; this line does it for any other Python.
from lasagne_mnist_port import compat
compat.install(script=__name__ == "__main__")

import numpy as np
import theano
import theano.tensor as T
import lasagne
from lasagne.updates import rmsprop
from lasagne.layers import DenseLayer, DropoutLayer, InputLayer
from lasagne.nonlinearities import rectify, softmax
from lasagne.objectives import categorical_crossentropy

# The MNIST loader, then what the port adds (the package lasagne_mnist_port):
# the speed-ups' compile mode, model files and the history's files (here so that
# a REPL finds flm.save_network, flm.plot_history ...), run_network's helpers.
from mnist_loader import load_data
from lasagne_mnist_port.speedups import mode as speedup_mode
from lasagne_mnist_port.checkpoints import load_parameters, save_network  # noqa: F401
from lasagne_mnist_port.history import HISTORY_COLUMNS, plot_history, save_history  # noqa: F401
from lasagne_mnist_port.training import (TrainingDiverged, check_data, describe_backend, log,
                                         progress_bar, seed_rngs)


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
#   speedups=...       compile in the speed-ups' mode (default: unless the
#                      environment says FLM_SPEEDUPS=0; docs/speedups.md),
#   check_data()       data=... checked and converted before anything compiles,
#   network.history    each epoch's numbers (the loss-history exercise),
#   TrainingDiverged   raised when the training loss is no longer finite,
#   and the device and compile time, on stderr (stdout is the tutorial's).
def run_network(data=None, num_epochs=20, network=None, batch_size=500,
                learning_rate=0.001, seed=None, progress=None, data_dir=None,
                limit=None, speedups=None):
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

        # The speed-ups: the same math in faster C code, for this network's
        # two functions only. Made before the expressions are built, as it
        # also gives the network's dropout layers their mask generator.
        mode = speedup_mode(network, speedups)

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
                                   loss, updates=updates, mode=mode)
        val_fn = theano.function([input_var, target_var],
                                 [test_loss, test_acc], mode=mode)
        log(describe_backend(mode))
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
            record_epoch(network, train_err / train_batches, val_err / val_batches,
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
# needed here, the loops are ours: run_network() calls record_epoch() once per
# epoch, and every network it trains carries `network.history`, a dict of
# lists (one entry per epoch, and every batch's loss in "batch_loss").
# Retraining a network appends to its history. save_history(history, path)
# and plot_history(history, path) write it as a CSV and as a plot of the
# curves (from lasagne_mnist_port.history; on the shell, --history, --plot).
def record_epoch(network, train_err, val_err, val_acc, epoch_time, batch_losses):
    if not hasattr(network, "history"):
        network.history = {k: [] for k in HISTORY_COLUMNS + ("batch_loss",)}
    history = network.history
    row = (len(history["epoch"]) + 1, train_err, val_err, val_acc, epoch_time)
    for key, value in zip(HISTORY_COLUMNS, row):
        history[key].append(float(value) if key != "epoch" else value)
    history["batch_loss"].extend(batch_losses)


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


# ------------------------------------------------------ Saving and loading
# save_network(network, path) keeps the parameters in a plain .npz with the
# layer sizes; load_network(path) builds the MLP again and loads them into it
# (lasagne_mnist_port.checkpoints, which checks the file before it reads it).
def load_network(path, input_var=None):
    return load_parameters(build_mlp(input_var), path)


if __name__ == "__main__":
    from lasagne_mnist_port import cli
    cli.main(sys.modules[__name__])
