"""The 2016 -> 2026 shims: Theano defaults that yield to the user's, the
downsample module Lasagne 0.1 imports, and the clear refusal of a new numpy."""
import os
import subprocess
import sys

import numpy as np
import pytest

import compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python(code, **env):
    """Run code in a fresh interpreter (Theano reads its flags once, at import)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("THEANO_FLAGS", "THEANORC")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, env=dict(clean, **env), timeout=120)


def test_defaults_added_when_unset(tmp_path):
    env = {"THEANORC": str(tmp_path / "none")}
    compat.set_default_flags(env)
    assert env["THEANO_FLAGS"] == "floatX=float32,blas.ldflags=-lopenblas"


def test_user_theano_flags_win(tmp_path):
    env = {"THEANORC": str(tmp_path / "none"), "THEANO_FLAGS": "floatX=float64,device=cpu"}
    compat.set_default_flags(env)
    assert env["THEANO_FLAGS"] == "blas.ldflags=-lopenblas,floatX=float64,device=cpu"


def test_user_theanorc_wins(tmp_path):
    rc = tmp_path / "theanorc"
    rc.write_text("[global]\nfloatX = float64\n[blas]\nldflags = -lblas\n")
    env = {"THEANORC": str(rc)}
    compat.set_default_flags(env)
    assert "THEANO_FLAGS" not in env


def test_theano_really_uses_the_defaults_and_the_users_settings(tmp_path):
    code = "import compat, theano; print(theano.config.floatX, theano.config.blas.ldflags)"
    none = str(tmp_path / "none")
    assert python(code, THEANORC=none).stdout.split() == ["float32", "-lopenblas"]
    assert python(code, THEANORC=none, THEANO_FLAGS="floatX=float64").stdout.split() == [
        "float64", "-lopenblas"]
    rc = tmp_path / "theanorc"
    rc.write_text("[global]\nfloatX = float64\n")
    assert python(code, THEANORC=str(rc)).stdout.split() == ["float64", "-lopenblas"]


def test_downsample_shim_pools_like_numpy():
    import theano
    import theano.tensor as T
    from theano.tensor.signal import downsample  # what Lasagne 0.1 imports
    import lasagne

    x = T.tensor4("x")
    layer = lasagne.layers.MaxPool2DLayer(lasagne.layers.InputLayer((None, 1, 4, 6), x), 2)
    pool = theano.function([x], [downsample.max_pool_2d(x, ds=(2, 2), ignore_border=True),
                                 lasagne.layers.get_output(layer)])
    data = np.random.RandomState(0).rand(3, 1, 4, 6).astype(theano.config.floatX)
    expected = data.reshape(3, 1, 2, 2, 3, 2).max(axis=(3, 5))
    for result in pool(data):
        assert np.array_equal(result, expected)


@pytest.mark.parametrize("version", ["1.24.0", "2.1.3"])
def test_too_new_numpy_is_refused_with_a_clear_message(version):
    result = python("import numpy; numpy.__version__ = %r; import compat" % version)
    assert result.returncode != 0
    assert "numpy %s is too new for Theano 1.0.5" % version in result.stderr
    assert "numpy==1.23.5" in result.stderr
