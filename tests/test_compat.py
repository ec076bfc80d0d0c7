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


BLAS = compat.DEFAULT_FLAGS["blas.ldflags"]
EXCLUDE = "optimizer_excluding=local_dot22_to_dot22scalar"


def test_defaults_added_when_unset(tmp_path):
    env = {"THEANORC": str(tmp_path / "none")}
    compat.set_default_flags(env)
    assert env["THEANO_FLAGS"] == "floatX=float32,blas.ldflags=%s,%s" % (BLAS, EXCLUDE)


def test_user_theano_flags_win(tmp_path):
    env = {"THEANORC": str(tmp_path / "none"), "THEANO_FLAGS": "floatX=float64,device=cpu"}
    compat.set_default_flags(env)
    assert env["THEANO_FLAGS"] == "blas.ldflags=%s,%s,floatX=float64,device=cpu" % (BLAS, EXCLUDE)


def test_user_theanorc_wins(tmp_path):
    rc = tmp_path / "theanorc"
    rc.write_text("[global]\nfloatX = float64\noptimizer_excluding = \n[blas]\nldflags = -lblas\n")
    env = {"THEANORC": str(rc)}
    compat.set_default_flags(env)
    assert "THEANO_FLAGS" not in env


@pytest.mark.parametrize("flags, rc, expected", [
    ("device=gpu", "", "device=gpu,device=cuda"),
    ("floatX=float32", "[global]\ndevice = gpu1\n", "floatX=float32,device=cuda1"),
    ("device=cuda0", "", "device=cuda0"),
    ("", "[global]\ndevice = cpu\n", ""),
])
def test_the_2016_device_gpu_becomes_cuda(tmp_path, flags, rc, expected):
    (tmp_path / "theanorc").write_text(rc)
    env = {"THEANO_FLAGS": flags, "THEANORC": str(tmp_path / "theanorc")}
    compat.translate_old_gpu_device(env)
    assert env["THEANO_FLAGS"] == expected


def test_blas_is_the_wheels_openblas_when_installed():
    import scipy_openblas32
    words = BLAS.split()
    assert words[:2] == ["-L" + scipy_openblas32.get_lib_dir(), "-lscipy_openblas"]
    assert "-Dsgemm_=scipy_sgemm_" in words


def test_theano_really_uses_the_defaults_and_the_users_settings(tmp_path):
    code = "import compat, theano; print(theano.config.floatX, theano.config.blas.ldflags.split()[1])"
    none = str(tmp_path / "none")
    assert python(code, THEANORC=none).stdout.split() == ["float32", "-lscipy_openblas"]
    assert python(code, THEANORC=none, THEANO_FLAGS="floatX=float64").stdout.split() == [
        "float64", "-lscipy_openblas"]
    rc = tmp_path / "theanorc"
    rc.write_text("[global]\nfloatX = float64\n")
    assert python(code, THEANORC=str(rc)).stdout.split() == ["float64", "-lscipy_openblas"]


def test_compiled_gemm_links_the_wheels_openblas():
    code = ("import compat, theano, theano.tensor as T, numpy as np; x = T.matrix(); "
            "f = theano.function([x], T.dot(x, x)); a = np.ones((64, 64), 'float32'); "
            "print(f(a)[0, 0], [type(n.op).__name__ for n in f.maker.fgraph.toposort()], "
            "theano.config.compiledir)")
    result = python(code)
    assert result.stdout.startswith("64.0 ['Dot22']"), result.stdout + result.stderr
    compiledir = result.stdout.split()[-1]
    linked = subprocess.run("ldd %s/tmp*/*.so | grep -c libscipy_openblas" % compiledir,
                            shell=True, capture_output=True, text=True).stdout
    assert int(linked or 0) >= 1


def test_warm_compile_reuses_the_cache():
    """Theano 1.0.5 recompiled C modules in every new process (shim 3)."""
    code = ("import compat, theano, theano.tensor as T; x = T.matrix(); y = T.ivector(); "
            "theano.function([x, y], T.nnet.categorical_crossentropy("
            "T.nnet.softmax(T.dot(x, x.T)), y).mean())")
    count = ("import compat, theano, os; d = theano.config.compiledir; "
             "print(sum(n.startswith('tmp') for n in os.listdir(d)))")
    python(code, PYTHONHASHSEED="1")  # fills the cache
    before = python(count).stdout
    python(code, PYTHONHASHSEED="2")  # another process, other str hashes
    assert python(count).stdout == before


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
