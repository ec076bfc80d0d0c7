"""The package: dependencies run one way, from the tutorial to the package."""
import ast
import os
import subprocess
import sys

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "lasagne_mnist_port")


def imported_names(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_the_package_never_imports_the_tutorial():
    sources = [os.path.join(d, f) for d, _, files in os.walk(PACKAGE) for f in files
               if f.endswith(".py")]
    assert len(sources) >= 14
    for path in sources:
        assert "feedforward_lasagne_mnist" not in set(imported_names(path)), path
    code = ("import importlib, pkgutil, sys, lasagne_mnist_port as p\n"
            "for m in pkgutil.walk_packages(p.__path__, 'lasagne_mnist_port.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(len([m for m in sys.modules if m.startswith('lasagne_mnist_port.')]),\n"
            "      'feedforward_lasagne_mnist' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    count, tutorial = result.stdout.split()
    assert int(count) >= 13 and tutorial == "False"
