"""The startup hook of the project's .venv: compat.py's shims around Theano's
first import, whatever imports it (`import lasagne` does too), in any order.

The .pth file that `make setup` puts into the venv's site-packages runs
install() at every start of the venv's Python, so this module does nothing
but put a finder in front of the others: compat.py is only imported when
Theano is.
"""
import importlib.machinery
import sys


class TheanoLoader(object):
    """Theano's own loader, with compat's before_theano() and after_theano() around it."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        from . import compat
        compat.before_theano()
        try:
            self.loader.exec_module(module)
        except BaseException:
            compat.restore_user_flags()  # Theano did not start: the user's THEANO_FLAGS back
            raise
        compat.after_theano()


class TheanoFinder(object):
    """Finds `theano` as usual, then wraps its loader (once per process)."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "theano":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None:
            spec.loader = TheanoLoader(spec.loader)
        return spec


def install():
    if not any(isinstance(f, TheanoFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, TheanoFinder())
