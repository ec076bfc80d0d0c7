"""What the 2016 Lasagne MNIST tutorial needs to run in 2026, and what a
training script is expected to offer today, kept apart from the tutorial
(feedforward_lasagne_mnist.py), which imports it; nothing here imports the
tutorial.

    compat        the 2016 -> 2026 shims (applied before Theano's first import)
    import_hook   the venv's startup hook: the shims whenever Theano is imported
    gpu_env       the CUDA libraries for Theano's gpuarray backend
    blas_check    whether the BLAS computes right products (before training)
    atomic_file   every file written whole or not at all
    training      run_network's helpers: data checks, progress bar, seeds, Device line
    history       the loss history as CSV and as a plot
    checkpoints   saving and loading a network's parameters (.npz)
    images        image files as MNIST examples, for --predict
    cli           the command line of feedforward_lasagne_mnist.py
    speedups/     the tutorial's compile mode: the same math, faster C code

Importing the package, or any module of it, changes nothing for other code:
the speed-ups apply to the functions compiled in their mode only.
"""
