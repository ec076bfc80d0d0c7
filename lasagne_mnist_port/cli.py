"""The command line of feedforward_lasagne_mnist.py: flags, checks, the
outputs (--save-model, --history, --plot), --predict, the GPU re-execution,
signals and exit statuses. The tutorial module hands itself over:

    if __name__ == "__main__":
        cli.main(sys.modules[__name__])

main() calls the tutorial's run_network(), load_network() and predict_proba()."""
import argparse
import os
import re
import signal
import sys

import numpy as np
import theano

from mnist_loader import MNISTError

from . import atomic_file, compat, gpu_env, speedups
from .blas_check import WrongBlas
from .checkpoints import CheckpointError, save_network
from .history import plot_history, save_history
from .images import ImageError, load_image
from .training import TrainingDiverged, batch_size_problem, log, seed_rngs


def seed_number(text):
    """--seed: what numpy's RandomState accepts, 0 to 2**32 - 1."""
    seed = int(text)
    if not 0 <= seed < 2 ** 32:
        raise argparse.ArgumentTypeError("{} is not between 0 and 2**32 - 1".format(seed))
    return seed


def device_name(text):
    """--device: cpu, cuda, cudaN (the 2016 gpu and gpuN read as those) or
    openclP:D, exactly: anything else (an empty word, a space, a flag of
    THEANO_FLAGS) is refused, never read as a default."""
    if not re.fullmatch(r"cpu|(cuda|gpu)\d*|opencl\d+:\d+", text):
        raise argparse.ArgumentTypeError("{!r}: choose cpu, cuda, cudaN or openclP:D (e.g. "
                                         "opencl0:0)".format(text))
    return text if text == "cpu" else gpu_env.gpu_device("device=" + text)


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
    parser.add_argument("--device", type=device_name, metavar="DEVICE",
                        help="cpu, or a GPU through Theano's gpuarray backend: cuda, cudaN, "
                             "openclP:D (default: as THEANO_FLAGS/.theanorc say, else cpu)")
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
        try:
            atomic_file.check_writable(path)
        except OSError as e:
            parser.error("{} {}".format(flag, e))
        other = seen.get(os.path.realpath(path))
        if other and (other, option) != ("load_model", "save_model"):
            parser.error("{} {}: the same file as --{}; give each output its own "
                         "file".format(flag, path, other.replace("_", "-")))
        seen[os.path.realpath(path)] = option
    return args


# SIGTERM (a scheduler, `timeout`, `docker stop`) is handled like Ctrl-C: the
# epochs completed are kept and written; the exit status says which signal.
stop_signal = signal.SIGINT


def on_sigterm(signum, frame):
    global stop_signal
    stop_signal = signum
    raise KeyboardInterrupt


def main(tutorial, argv=None):
    """Runs the command line with the tutorial module's functions."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C keeps the network
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_sigterm)
    if theano.config.floatX not in ("float32", "float64"):
        raise SystemExit("error: floatX={} is not supported by this script (Theano 1.0.5's "
                         "CPU ops, the dropout generator): use floatX=float32".format(
                             theano.config.floatX))
    device = theano.config.device
    if args.device and compat.is_gpu_device(device) and device != args.device:
        raise SystemExit("error: --device {}, but THEANO_FLAGS/.theanorc select "
                         "device={}".format(args.device, device))
    try:
        gpu_active = getattr(getattr(theano, "gpuarray", None), "pygpu_activated", False)
        if compat.is_gpu_device(args.device or device) and not gpu_active:
            # Theano picks its device at import, and CUDA's libraries must be on
            # LD_LIBRARY_PATH before Python starts: run again with them.
            if args.device:
                os.environ["THEANO_FLAGS"] = ",".join(filter(None, [
                    os.environ.get("THEANO_FLAGS"), "device=" + args.device]))
            gpu_env.reexec_on_gpu()
        gpu_env.gpu_in_use(theano)  # a GPU asked for but inactive: stop before any work
        compat.check_blas()  # so is a BLAS that computes wrong products
        if args.seed is not None:
            seed_rngs(args.seed)  # before a loaded network's dropout layers are built
        network = tutorial.load_network(args.load_model) if args.load_model else None
        if args.predict:  # every image is tried; each bad one gets its own line
            failed = 0
            for path in args.predict:
                try:
                    probs = tutorial.predict_proba(network, load_image(path)[np.newaxis])[0]
                except ImageError as e:
                    log("error: {}".format(e))
                    failed += 1
                    continue
                print("{}: {} ({:.1f} %)".format(path, probs.argmax(), probs.max() * 100))
            if failed:
                sys.exit(1)
            return
        epochs_before = len(getattr(network, "history", {"epoch": []})["epoch"])
        speedups.prepare(False if args.no_speedups else None)  # while the data loads
        network = tutorial.run_network(
            num_epochs=args.epochs, network=network, batch_size=args.batch_size,
            learning_rate=args.lr, seed=args.seed,
            progress=False if args.no_progress else None, data_dir=args.data_dir,
            limit=args.limit, speedups=False if args.no_speedups else None)
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
            sys.exit(128 + stop_signal)  # as a shell reports it: 130 Ctrl-C, 143 SIGTERM
    except KeyboardInterrupt:
        log("\nInterrupted.")
        sys.exit(128 + stop_signal)
    except (MNISTError, CheckpointError, ImageError, TrainingDiverged, WrongBlas,
            gpu_env.GpuEnvError, OSError, ValueError) as e:
        raise SystemExit("error: {}".format(e))

