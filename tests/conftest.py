import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Theano 1.0.5 makes a process that finds the compile directory's lock taken
# sleep 5 to 10 s (compile.wait=5) before it looks again. With an empty cache
# the test workers and their child processes compile at the same time, and the
# lock is held for about a second per module: they slept through a minute of a
# run. 1 s is Theano's smallest wait (it takes whole seconds). Set in the
# environment, before Theano is imported, so that child processes get it too;
# it is not part of the compile cache's keys.
os.environ["THEANO_FLAGS"] = ",".join(
    f for f in (os.environ.get("THEANO_FLAGS"), "compile.wait=1") if f)


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` (pytest.ini) run only with FLM_SLOW_TESTS=1, which
    `make test-slow` sets; `make test` keeps to its time budget without them."""
    if os.environ.get("FLM_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="a slow check: make test-slow runs it")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


# The tutorial's printed lines, in order, for one epoch and for the end.
EPOCH_LINES = [r"Epoch \d+ of \d+ took \d+\.\d{3}s", r"training loss:\t\t\d+\.\d{6}",
               r"validation loss:\t\t\d+\.\d{6}", r"validation accuracy:\t\t\d+\.\d{2} %"]
FINAL_LINES = [r"Final results in \d+\.\d+ seconds:", r"  test loss:\t\t\t\d+\.\d{6}",
               r"  test accuracy:\t\t\d+\.\d{2} %"]


def tutorial_lines(text):
    """True when every line of `text` is one the tutorial prints (stdout)."""
    patterns = ["Loading data...", "Starting training..."] + EPOCH_LINES + FINAL_LINES
    return all(any(re.fullmatch(p, line) for p in patterns) for line in text.splitlines())


def run_cli(*args, env=None):
    """python feedforward_lasagne_mnist.py ARGS, as a shell runs it."""
    return subprocess.run([sys.executable, os.path.join(ROOT, "feedforward_lasagne_mnist.py")]
                          + list(args), capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, **(env or {})), timeout=300)


@pytest.fixture(scope="session")
def mnist():
    """The real vendored MNIST, loaded once for the whole session."""
    import mnist_loader
    return mnist_loader.load_data()


@pytest.fixture(scope="session")
def small(mnist):
    """A quick subset: 3,000 training, 2,000 validation and 2,000 test examples."""
    X_train, y_train, X_val, y_val, X_test, y_test = mnist
    return [X_train[:3000], y_train[:3000], X_val[:2000], y_val[:2000],
            X_test[:2000], y_test[:2000]]


@pytest.fixture(scope="session")
def trained(mnist, small):
    """One network trained 3 epochs on 10,000 examples, shared by the tests of
    a worker (good enough to read digits from image files); a test that trains
    further uses a network of its own."""
    import feedforward_lasagne_mnist as flm
    data = [mnist[0][:10000], mnist[1][:10000]] + small[2:]
    return flm.run_network(data=data, num_epochs=3, seed=1, progress=False)
