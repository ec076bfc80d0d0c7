"""The 2016 -> 2026 shims: in place whatever is imported first (the venv's
startup hook), Theano defaults that yield to the user's, the downsample module
Lasagne 0.1 imports, the compile cache, and the clear refusal of a Python or
numpy that cannot run Theano 1.0.5."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from lasagne_mnist_port import compat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python(code, args=("-c",), cwd=ROOT, stdin=None, executable=sys.executable, **env):
    """Run code in a fresh interpreter (Theano reads its flags once, at import).
    A cold compile of scan on a busy 2-core machine took over 2 minutes."""
    clean = {k: v for k, v in os.environ.items() if k not in ("THEANO_FLAGS", "THEANORC")}
    argv = [executable] + list(args) + ([code] if code is not None else [])
    return subprocess.run(argv, capture_output=True, text=True, input=stdin,
                          cwd=cwd, env=dict(clean, **env), timeout=600)


BLAS = compat.default_blas_ldflags()
REPORT = ("import theano, lasagne, feedforward_lasagne_mnist as flm; "
          "print(theano.config.floatX, theano.config.blas.ldflags.split()[1], flm.__name__)")


@pytest.mark.parametrize("order", [
    "import theano; import lasagne; import feedforward_lasagne_mnist",
    "import lasagne; import feedforward_lasagne_mnist; import theano",
    "import theano.tensor as T; from lasagne.layers import DenseLayer; import mnist_loader",
])
def test_any_import_order_from_any_directory(tmp_path, order):
    result = python(order + "; " + REPORT, cwd=tmp_path, THEANORC=str(tmp_path / "none"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["float32", "-lscipy_openblas", "feedforward_lasagne_mnist"]


def test_interactive_python_fed_by_stdin(tmp_path):
    session = "import lasagne\nimport theano\n" + REPORT.replace("; ", "\n") + "\n"
    result = python(None, args=("-i",), cwd=tmp_path, stdin=session,
                    THEANORC=str(tmp_path / "none"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.split() == ["float32", "-lscipy_openblas", "feedforward_lasagne_mnist"]


def test_theano_imported_first_still_yields_to_the_users_flags(tmp_path):
    result = python("import theano; print(theano.config.floatX, theano.config.blas.ldflags)",
                    cwd=tmp_path, THEANORC=str(tmp_path / "none"),
                    THEANO_FLAGS="floatX=float64,blas.ldflags=-lopenblas")
    assert result.stdout.split() == ["float64", "-lopenblas"], result.stderr


@pytest.mark.skipif(os.path.exists("/dev/nvidia0"), reason="this machine has a GPU")
def test_pygpu_failure_is_one_line_not_a_traceback(tmp_path):
    result = python("import theano; print(theano.config.device)", cwd=tmp_path,
                    THEANO_FLAGS="device=cuda")
    assert result.stdout.strip() == "cuda" and "Traceback" not in result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith(
        "ERROR (theano.gpuarray): Could not initialize pygpu, support disabled ("), lines


def test_defaults_added_when_unset(tmp_path):
    env = {"THEANORC": str(tmp_path / "none")}
    compat.set_default_flags(env)
    assert env["THEANO_FLAGS"] == "floatX=float32,blas.ldflags=%s" % BLAS


def test_user_theano_flags_win(tmp_path):
    env = {"THEANORC": str(tmp_path / "none"), "THEANO_FLAGS": "floatX=float64,device=cpu"}
    compat.set_default_flags(env)
    assert env["THEANO_FLAGS"] == "blas.ldflags=%s,floatX=float64,device=cpu" % BLAS


def test_parse_flags():
    assert compat.parse_flags(" device = cuda0 ,, floatX=float32,profile,device=cpu") == [
        ("device", "cuda0"), ("floatX", "float32"), ("profile", None), ("device", "cpu")]
    assert compat.flags_dict("device=cuda0,device=cpu") == {"device": "cpu"}


@pytest.mark.parametrize("device, gpu", [("cpu", False), ("", False), (None, False),
                                         ("cuda", True), ("cuda1", True), ("gpu", True),
                                         ("opencl0:0", True)])
def test_is_gpu_device(device, gpu):
    assert compat.is_gpu_device(device) is gpu


def test_user_theanorc_wins(tmp_path):
    rc = tmp_path / "theanorc"
    rc.write_text("[global]\nfloatX = float64\n[blas]\nldflags = -lblas\n")
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
    assert words[0].startswith("-L") and words[1] == "-lscipy_openblas"
    # the wheel's folder, or a link to it where its path holds a space or a comma
    assert os.path.realpath(words[0][2:]) == os.path.realpath(scipy_openblas32.get_lib_dir())
    assert "-Dsgemm_=scipy_sgemm_" in words


def test_theano_really_uses_the_defaults_and_the_users_settings(tmp_path):
    code = "import theano; print(theano.config.floatX, theano.config.blas.ldflags.split()[1])"
    none = str(tmp_path / "none")
    assert python(code, THEANORC=none).stdout.split() == ["float32", "-lscipy_openblas"]
    assert python(code, THEANORC=none, THEANO_FLAGS="floatX=float64").stdout.split() == [
        "float64", "-lscipy_openblas"]
    rc = tmp_path / "theanorc"
    rc.write_text("[global]\nfloatX = float64\n")
    assert python(code, THEANORC=str(rc)).stdout.split() == ["float64", "-lscipy_openblas"]


def test_compiled_gemm_links_the_wheels_openblas():
    code = ("import theano, theano.tensor as T, numpy as np; x = T.matrix(); "
            "f = theano.function([x], T.dot(x, x)); a = np.ones((64, 64), 'float32'); "
            "print(f(a)[0, 0], [type(n.op).__name__ for n in f.maker.fgraph.toposort()], "
            "theano.config.compiledir)")
    result = python(code)
    assert result.stdout.startswith("64.0 ['Dot22']"), result.stdout + result.stderr
    compiledir = result.stdout.split()[-1]
    linked = subprocess.run("ldd %s/tmp*/*.so | grep -c libscipy_openblas" % compiledir,
                            shell=True, capture_output=True, text=True).stdout
    assert int(linked or 0) >= 1


def test_warm_compile_reuses_the_cache(tmp_path):
    """Theano 1.0.5 recompiled C modules in every new process (shim 3)."""
    # x.T is a DimShuffle, a COp (cause a); Dot22 has empty __props__ (cause b).
    # A cache of its own: other test processes may be compiling meanwhile.
    code = ("import theano, theano.tensor as T, os; x = T.matrix(); "
            "theano.function([x], T.dot(x, x.T)); d = theano.config.compiledir; "
            "print(sum(n.startswith('tmp') for n in os.listdir(d)))")
    flags = "base_compiledir=%s" % tmp_path
    first = python(code, PYTHONHASHSEED="1", THEANO_FLAGS=flags)  # fills the cache
    again = python(code, PYTHONHASHSEED="2", THEANO_FLAGS=flags)  # other str hashes
    assert int(first.stdout) >= 1 and again.stdout == first.stdout, first.stderr


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
def test_too_new_numpy_is_refused_with_one_line(version):
    run_script = ("import numpy, runpy; numpy.__version__ = %r; "
                  "runpy.run_path('feedforward_lasagne_mnist.py', run_name='__main__')" % version)
    result = python(run_script)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "error: numpy %s is too new for Theano 1.0.5 (numpy 1.24 removed np.bool and "
        "np.complex): run the project's .venv/bin/python (`make setup` creates it with "
        "Python 3.10/3.11 and numpy 1.23.5); in another environment install numpy==1.23.5"
        % version]
    in_a_repl = python(None, args=("-i",), stdin="import numpy; numpy.__version__ = %r\n"
                       "import feedforward_lasagne_mnist\nprint('still here')\n" % version)
    assert "UnsupportedStack: numpy %s is too new" % version in in_a_repl.stderr
    assert "still here" in in_a_repl.stdout  # an ImportError, not an exit


def test_a_python_with_numpy_but_no_theano_is_refused_with_one_line(tmp_path):
    # As Ubuntu 22.04's python3 with its numpy 1.21: here the venv's Python
    # without its site-packages (-S), numpy alone put back on the path.
    os.symlink(os.path.dirname(np.__file__), str(tmp_path / "numpy"))
    result = python(None, args=("-S", os.path.join(ROOT, "feedforward_lasagne_mnist.py"),
                                "--help"), PYTHONPATH=str(tmp_path))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: Theano is not installed in ") and \
        ".venv/bin/python" in lines[0]


SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="no system Python 3")
def test_the_system_python_is_refused_with_one_line():
    result = python(None, args=(os.path.join(ROOT, "feedforward_lasagne_mnist.py"), "--help"),
                    executable=SYSTEM_PYTHON)
    if result.returncode == 0:
        pytest.skip("%s can run Theano 1.0.5 itself" % SYSTEM_PYTHON)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and ".venv/bin/python" in lines[0]


def test_no_writable_home_moves_theanos_compile_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "nonexistent"))
    assert compat.default_flags()["base_compiledir"].endswith("theano-uid%d" % os.getuid())
    env = {"THEANORC": str(tmp_path / "none"), "THEANO_FLAGS": "compiledir=/x"}
    compat.set_default_flags(env)  # the user's compiledir wins
    assert "base_compiledir" not in env["THEANO_FLAGS"]
    monkeypatch.setenv("HOME", str(tmp_path))
    assert "base_compiledir" not in compat.default_flags()


def test_the_blas_wheel_is_linked_from_a_path_that_breaks_theano_flags(tmp_path, monkeypatch):
    """Theano cannot take a space, a comma, a quote or a # in blas.ldflags: the wheel's folder is
    reached through a link of this user's in the temporary directory instead."""
    import types
    package = tmp_path / "My Projects, #2 it's" / "scipy_openblas32"
    (package / "lib").mkdir(parents=True)
    (package / "lib" / "libscipy_openblas.so").write_bytes(b"")
    spec = types.SimpleNamespace(submodule_search_locations=[str(package)])
    monkeypatch.setattr(compat.importlib.machinery.PathFinder, "find_spec",
                        staticmethod(lambda name, path=None: spec))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)  # read TMPDIR again
    words = compat.default_blas_ldflags().split()
    assert words[1] == "-lscipy_openblas" and " " not in words[0] and "," not in words[0]
    assert os.path.realpath(words[0][2:]) == str(package / "lib")
    assert compat.default_blas_ldflags().split()[0] == words[0]  # the same link again
    os.remove(words[0][2:])  # e.g. the temporary directory was cleaned: made again
    assert compat.default_blas_ldflags().split()[0] == words[0]
    assert os.path.realpath(words[0][2:]) == str(package / "lib")


def test_python_dash_S_is_named(tmp_path):
    result = subprocess.run([sys.executable, "-S", os.path.join(ROOT, "feedforward_lasagne_mnist.py")],
                            capture_output=True, text=True, cwd=str(tmp_path), timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: numpy is not importable: `python -S` skips the site-packages where the venv's "
        "numpy, Theano and Lasagne are; run it without -S"]


@pytest.mark.parametrize("flags", [None, "floatX=float64,optimizer=fast_run"])
def test_programs_started_after_import_theano_get_the_users_theano_flags(tmp_path, flags):
    """The defaults are this process's: Theano has them, os.environ (and so a
    program started from here, e.g. another Theano) has the user's value."""
    code = ("import os, subprocess, theano\n"
            "print(theano.config.floatX, os.environ.get('THEANO_FLAGS'))\n"
            "print(subprocess.run(['sh', '-c', 'echo ${THEANO_FLAGS-unset}'], text=True,\n"
            "                     stdout=subprocess.PIPE).stdout.strip())\n")
    env = {"THEANORC": str(tmp_path / "none")}
    if flags:
        env["THEANO_FLAGS"] = flags
    result = python(code, **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["%s %s" % ("float64" if flags else "float32", flags),
                                          flags or "unset"]


# The first compile of a program that does not import the tutorial, in a
# compile directory that holds the tutorial's modules: what it imported of
# the package, how many saved keys Theano loaded, and every name registered
# in Theano's optimizer databases.
OTHER_PROGRAM = r"""
import json, sys
import numpy as np, theano, theano.tensor as T
from theano.gof.cc import get_module_cache
from theano.gof.optdb import DB
x = T.dvector()
theano.function([x], x * 2 + 1)(np.arange(3.0))

def names(db):
    for name, objs in db.__db__.items():
        yield name
        for obj in objs:
            if isinstance(obj, DB):
                yield from names(obj)
print(json.dumps([sorted(m for m in sys.modules if m.split(".")[0] == "lasagne_mnist_port"),
                  len(get_module_cache().entry_from_key), sorted(set(map(str, names(theano.compile.optdb)))),
                  theano.config.compiledir]))
"""


def test_a_program_that_never_imports_the_tutorial_gets_stock_theano(tmp_path):
    """Once the tutorial has trained, Theano's compile directory holds keys that
    name the speed-ups' ops. Another program's first compile loads the saved
    keys: it imports nothing of the package but the shims, and its optimizer
    databases hold none of the speed-ups' rewrites."""
    trained = subprocess.run([sys.executable, "-c", (
        "import feedforward_lasagne_mnist as flm\n"
        "flm.run_network(data=[a[:500] for a in flm.load_data()], num_epochs=1, progress=False)")],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert trained.returncode == 0 and "speed-ups: on" in trained.stderr, trained.stderr
    imported, loaded, registered, compiledir = json.loads(
        python(OTHER_PROGRAM, THEANO_FLAGS=os.environ.get("THEANO_FLAGS", "")).stdout)
    keys = [os.path.join(root, "key.pkl") for root, _, files in os.walk(compiledir)
            if "key.pkl" in files]
    assert any(b"lasagne_mnist_port.speedups" in open(k, "rb").read() for k in keys)
    assert imported == ["lasagne_mnist_port", "lasagne_mnist_port.compat",
                        "lasagne_mnist_port.import_hook"] and loaded > 10
    # The speed-ups' rewrites are registered by no module of Theano's (whose
    # own keys may import e.g. theano.sandbox.rng_mrg, registering its rewrites,
    # as in any Theano 1.0.5 program).
    ours = {"fused_updates", "fused_updates_inplace", "column_sum", "inline_broadcast_constants",
            "zero_skipping_dot22", "fold_data_movement"}
    assert not ours & set(registered)


# theano.scan: Theano's C implementation (shim 6), the one every recurrent network runs.
SCAN = """
import json, numpy as np, theano, theano.tensor as T
from theano.scan_module.scan_op import Scan
x, h0, W = T.matrix("x"), T.vector("h0"), T.matrix("W")
h, _ = theano.scan(lambda x_t, h: T.tanh(x_t + T.dot(h, W)), sequences=x, outputs_info=h0)
f = theano.function([x, h0, W], h)
rng = np.random.RandomState(0)
xs, h, w = (rng.randn(7, 4).astype("float32"), np.zeros(4, "float32"),
            rng.randn(4, 4).astype("float32") / 2)
got = f(xs, h, w)
want = []
for x_t in xs:
    h = np.tanh(x_t + h.dot(w))
    want.append(h)
from theano.scan_module import scan_perform_ext
print(json.dumps({
    "close": bool(np.allclose(got, want, atol=1e-5)),
    "python_scan": [getattr(t.perform, "__func__", None) is Scan.execute
                    for t, n in zip(f.fn.thunks, f.fn.nodes) if isinstance(n.op, Scan)],
    "c_module": [type(scan_perform_ext.perform).__name__, scan_perform_ext.get_version()]}))
"""


def test_scan_runs_theanos_c_implementation_and_matches_numpy():
    import json
    result = python(SCAN)
    assert result.returncode == 0, result.stderr
    assert "compat:" not in result.stderr, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "close": True, "python_scan": [False],
        "c_module": ["builtin_function_or_method", 0.296]}


def test_products_with_an_empty_matrix_give_numpys_results(capfd):
    """numpy 1.23 gives empty arrays strides 0, which Theano's BLAS ops
    (Dot22, Dot22Scalar, Gemm) refused: "some matrix has no unit stride".
    (float64 too: make test-upstream, Theano's BLAS tests.)"""
    dtype = "float32"
    import theano
    import theano.tensor as T
    from theano.tensor.blas import gemm_no_inplace
    (x1, y1, x2, y2, x3, y3), z = (T.matrix(dtype=dtype) for _ in range(6)), T.matrix(dtype=dtype)
    two, half, three = (np.asarray(v, dtype) for v in (2, 0.5, 3))
    f = theano.function([x1, y1, x2, y2, x3, y3, z], [
        T.dot(x1, y1), T.dot(x2, y2) * two, gemm_no_inplace(z, half, x3, y3, three)])
    assert sorted(type(n.op).__name__ for n in f.maker.fgraph.toposort()) == [
        "Dot22", "Dot22Scalar", "Gemm"]
    rng = np.random.RandomState(0)
    for m, k, n in [(0, 4, 5), (3, 0, 5), (3, 4, 0), (0, 0, 0), (2, 3, 4)]:
        for step in (1, -1):  # as given, and reversed views (negative strides)
            a = rng.rand(m, k).astype(dtype)[::step, ::step]
            b = rng.rand(k, n).astype(dtype)[::step]
            c = rng.rand(m, n).astype(dtype)
            got = f(a, b, a, b, a, b, c)
            for g, w in zip(got, [a @ b, 2 * (a @ b), 3 * c + 0.5 * (a @ b)]):
                assert g.shape == w.shape and g.dtype == w.dtype
                np.testing.assert_allclose(g, w, rtol=1e-6)
    assert "On entry" not in capfd.readouterr().err  # no parameter the BLAS refused


# Theano 1.0.5's own tests of what shims 7 and 8 fix, a few of the suites that
# make test-upstream runs whole (docs/old-code.md): the BLAS products at every
# stride, reversed and empty matrices among them (all failed on the empty ones
# before shim 8), and a scan with weights, in C (failed to compile before 7).
@pytest.mark.parametrize("module, test", [
    ("theano.tensor.tests.test_blas", "TestBlasStrides.test_dot22"),
    ("theano.tensor.tests.test_blas", "TestBlasStrides.test_dot22scalar"),
    ("theano.scan_module.tests.test_scan", "T_Scan.test_one_sequence_one_output_weights")])
def test_theanos_own_tests_of_what_the_shims_fix(module, test):
    import importlib
    import unittest
    class_name, name = test.split(".")
    result = unittest.TestResult()
    getattr(importlib.import_module(module), class_name)(name).run(result)
    assert result.testsRun == 1 and not result.skipped
    assert result.wasSuccessful(), "".join(text for _, text in result.failures + result.errors)


def test_conv2d_without_the_c_convolutions_uses_scipy_as_theano_did():
    """Shim 9: Theano's Python conv2d (optimizer=None here; DebugMode's
    reference) finds SciPy's helpers again and agrees with the C CorrMM."""
    import theano
    import theano.tensor as T
    x, w = T.tensor4(dtype="float32"), T.tensor4(dtype="float32")
    y = T.nnet.conv2d(x, w, border_mode="full")
    rng = np.random.RandomState(0)
    X, W = rng.rand(2, 3, 9, 8).astype("float32"), rng.rand(4, 3, 3, 2).astype("float32")
    c = theano.function([x, w], y)
    python = theano.function([x, w], y, mode=theano.compile.Mode(optimizer=None))
    assert "CorrMM" in [type(n.op).__name__ for n in c.maker.fgraph.toposort()]
    assert [type(n.op).__name__ for n in python.maker.fgraph.toposort()] == ["AbstractConv2d"]
    np.testing.assert_allclose(python(X, W), c(X, W), rtol=1e-5)


def test_scan_perform_source_adapts_each_place_once():
    import theano
    shipped = os.path.join(os.path.dirname(theano.__file__), "scan_module", "c_code",
                           "scan_perform.c")
    with open(shipped) as f:
        code = f.read()
    adapted = compat.scan_perform_source(code)
    for old, new in compat.SCAN_PERFORM_EDITS:
        assert adapted.count(new) == 1 and new.count("PY_VERSION_HEX") == 1
    assert '#include "longintrepr.h"' in adapted  # still, for Python 3.10
    assert compat.scan_perform_source("/* another generator */\n" + code[40:]) == \
        "/* another generator */\n" + code[40:]
    with pytest.raises(ValueError, match="longintrepr.h.*found 0 times"):
        compat.scan_perform_source(code.replace('#include "longintrepr.h"', ""))


def test_a_c_scan_that_does_not_compile_is_said_once_then_python_scan(tmp_path):
    code = ("import sys, theano.gof.cmodule as c\n"
            "for i in range(2):\n"
            "    try:\n"
            "        c.GCC_compiler.compile_str('scan_perform', '#error refused\\n', location=%r)\n"
            "    except ImportError as e:\n"
            "        print(type(e).__name__)\n" % str(tmp_path))
    result = python(code)
    # (Theano prints g++'s report to stdout before)
    assert result.stdout.split()[-2:] == ["ImportError", "ImportError"], result.stderr
    said = [l for l in result.stderr.splitlines() if l.startswith("compat:")]
    assert said == ["compat: Theano's C scan (scan_perform.c) did not compile (error: #error "
                    "refused): theano.scan runs its Python implementation"], result.stderr


# An LSTM as 2016 code wrote it (Lasagne 0.1's LSTMLayer, adam), on the "add"
# task of Lasagne's examples/recurrent.py, shortened: the sum of the two numbers
# a second input marks. Its compile costs more than make test affords (the
# gradient's scan and the LSTM's ops): make test-upstream runs it.
LSTM = """
import json, numpy as np, theano, theano.tensor as T, lasagne
from theano.scan_module.scan_op import Scan
rng = np.random.RandomState(1)
lasagne.random.set_rng(rng)
N, L = 32, 12
def batch():
    X = np.zeros((N, L, 2), "float32")
    X[:, :, 0] = rng.uniform(size=(N, L))
    for n in range(N):
        X[n, rng.choice(L, 2, replace=False), 1] = 1
    return X, (X[:, :, 0] * X[:, :, 1]).sum(axis=1).astype("float32")
l_in = lasagne.layers.InputLayer((N, L, 2))
l_lstm = lasagne.layers.LSTMLayer(l_in, 20, grad_clipping=100)
l_out = lasagne.layers.DenseLayer(lasagne.layers.SliceLayer(l_lstm, -1, 1), 1, nonlinearity=None)
target = T.vector("target")
cost = T.mean((lasagne.layers.get_output(l_out)[:, 0] - target) ** 2)
params = lasagne.layers.get_all_params(l_out)
train = theano.function([l_in.input_var, target], cost,
                        updates=lasagne.updates.adam(cost, params, 0.01))
losses = [float(train(*batch())) for _ in range(150)]
print(json.dumps({"first": np.mean(losses[:10]), "last": np.mean(losses[-10:]),
                  "python_scan": [getattr(t.perform, "__func__", None) is Scan.execute
                                  for t, n in zip(train.fn.thunks, train.fn.nodes)
                                  if isinstance(n.op, Scan)]}))
"""


@pytest.mark.skipif(os.environ.get("FLM_UPSTREAM") != "1",
                    reason="slow (compiles an LSTM and its gradient): make test-upstream runs it")
def test_an_unmodified_lasagne_lstm_trains_with_the_c_scan():
    import json
    result = subprocess.run([sys.executable, "-c", LSTM], capture_output=True, text=True,
                            cwd=ROOT, timeout=1800)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found["python_scan"] == [False, False]  # the LSTM's loop and its gradient's
    assert found["last"] < found["first"] / 2, found
