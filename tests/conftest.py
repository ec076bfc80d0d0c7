import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


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
