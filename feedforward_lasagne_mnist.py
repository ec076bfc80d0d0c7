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

import sys
import os
import time

import numpy as np

import compat  # noqa: F401  (before theano/lasagne: Theano defaults + 2026 shims)
import theano
import theano.tensor as T
import lasagne
from lasagne.updates import rmsprop
from lasagne.layers import DenseLayer, DropoutLayer, InputLayer
from lasagne.nonlinearities import rectify, softmax
from lasagne.objectives import categorical_crossentropy

from mnist_loader import load_data, MNISTError  # noqa: F401  (load_data is part of the API)

# The original code called the loader load_dataset(): keep that name working.
load_dataset = load_data


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


# ############################## Main program ################################
# run_network() loads the data, builds the network, compiles the two Theano
# functions, trains, validates every epoch and tests at the end. It runs in a
# try/except so that Ctrl-C returns the network trained so far.
def run_network(data=None, num_epochs=20):
    network = None
    try:
        # Loading the data
        global_start_time = time.time()
        print('Loading data...')
        if data is None:
            X_train, y_train, X_val, y_val, X_test, y_test = load_data()
        else:
            X_train, y_train, X_val, y_val, X_test, y_test = data

        # Creating the Theano variables: a 4D tensor for a batch of images,
        # an int32 vector for their labels.
        input_var = T.tensor4('inputs')
        target_var = T.ivector('targets')

        # Building the Theano expressions on these variables
        network = build_mlp(input_var)

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
        updates = rmsprop(loss, params, learning_rate=0.001)

        # Compiling the graph: Theano optimises it and generates C code.
        train_fn = theano.function([input_var, target_var],
                                   loss, updates=updates)
        val_fn = theano.function([input_var, target_var],
                                 [test_loss, test_acc])

        print("Starting training...")
        for epoch in range(num_epochs):
            # Going over the training data
            train_err = 0
            train_batches = 0
            start_time = time.time()
            for batch in iterate_minibatches(X_train, y_train,
                                             500, shuffle=True):
                inputs, targets = batch
                train_err += train_fn(inputs, targets)
                train_batches += 1

            # Going over the validation data
            val_err = 0
            val_acc = 0
            val_batches = 0
            for batch in iterate_minibatches(X_val, y_val, 500, shuffle=False):
                inputs, targets = batch
                err, acc = val_fn(inputs, targets)
                val_err += err
                val_acc += acc
                val_batches += 1

            # Then we print the results for this epoch:
            print("Epoch {} of {} took {:.3f}s".format(
                epoch + 1, num_epochs, time.time() - start_time))
            print("training loss:\t\t{:.6f}".format(train_err / train_batches))
            print("validation loss:\t\t{:.6f}".format(val_err / val_batches))
            print("validation accuracy:\t\t{:.2f} %".format(
                val_acc / val_batches * 100))

        # Now that the training is over, let's test the network:
        test_err = 0
        test_acc = 0
        test_batches = 0
        for batch in iterate_minibatches(X_test, y_test, 500, shuffle=False):
            inputs, targets = batch
            err, acc = val_fn(inputs, targets)
            test_err += err
            test_acc += acc
            test_batches += 1
        print("Final results in {} seconds:".format(
            time.time() - global_start_time))
        print("  test loss:\t\t\t{:.6f}".format(test_err / test_batches))
        print("  test accuracy:\t\t{:.2f} %".format(
            test_acc / test_batches * 100))
        return network
    except KeyboardInterrupt:
        return network


if __name__ == '__main__':
    run_network()
