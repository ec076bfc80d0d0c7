#!/usr/bin/env bash
# `make test-upstream`: the upstream test suites, run in .venv as the
# compatibility contract of the 2016 stack (docs/old-code.md):
#   1. Lasagne 0.1's whole suite (lasagne/tests, with its slow tests, which
#      train examples/mnist.py and examples/recurrent.py one epoch each);
#   2. an unmodified Lasagne LSTM training (tests/test_compat.py, FLM_UPSTREAM=1);
#   3. Theano 1.0.5's own tests of the modules the tutorial and Lasagne use
#      (shipped in the venv's site-packages, theano/*/tests).
# Lasagne's tests and examples are only in its sdist (its wheel has none): pip
# fetches Lasagne==0.1's sdist once into .upstream/. examples/mnist.py reads
# deeplearning.net's mnist.pkl.gz (that address is dead): it is written there
# from the project's MNIST files, in that file's format.
# Exit status: Lasagne's suite's, then 1 if a Theano test fails that
# docs/old-code.md does not list.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
DIR=$ROOT/.upstream
LASAGNE=$DIR/Lasagne-0.1
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
PYTEST=(-p no:cacheprovider -c /dev/null -W ignore::DeprecationWarning)

if [ ! -d "$LASAGNE/lasagne/tests" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
    Lasagne==0.1 -d "$tmp"
  mkdir -p "$DIR"
  tar xzf "$tmp"/Lasagne-0.1.tar.gz -C "$tmp" Lasagne-0.1/lasagne/tests Lasagne-0.1/examples
  rm -rf "$LASAGNE" && mv "$tmp/Lasagne-0.1" "$LASAGNE"
fi
if [ ! -f "$LASAGNE/mnist.pkl.gz" ]; then
  "$PY" - "$LASAGNE/mnist.pkl.gz" <<'PY'
import gzip, os, pickle, sys
import mnist_loader
X_train, y_train, X_val, y_val, X_test, y_test = mnist_loader.load_data()
sets = tuple((X.reshape(len(X), 784), y.astype("int64"))
             for X, y in ((X_train, y_train), (X_val, y_val), (X_test, y_test)))
with gzip.open(sys.argv[1] + ".tmp", "wb") as f:
    pickle.dump(sets, f, protocol=2)
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
PY
fi

echo "== Lasagne 0.1: lasagne/tests (its own suite, with --runslow)"
# From Lasagne's folder (examples/mnist.py reads ./mnist.pkl.gz); `lasagne`
# itself is the venv's (that folder holds only its tests and examples).
(cd "$LASAGNE" && "$PY" -m pytest "${PYTEST[@]}" --rootdir . -q -rs --runslow lasagne/tests)

echo "== An unmodified Lasagne LSTM trained on a small sequence task (C scan)"
FLM_UPSTREAM=1 "$PY" -m pytest -p no:cacheprovider -q tests/test_compat.py -k lasagne_lstm

echo "== Theano 1.0.5: its own tests of the modules the tutorial and Lasagne use"
T=$SITE/theano
known=$ROOT/docs/old-code.md
out=$DIR/theano-tests.txt
# (--rootdir: the tests are named theano/.../tests/FILE::CLASS::TEST, whatever
# the paths given)
(cd "$DIR" && "$PY" -m pytest "${PYTEST[@]}" --rootdir "$SITE" -q -rfE --continue-on-collection-errors \
   "$T/scan_module/tests" "$T/tensor/tests/test_blas.py" "$T/tensor/tests/test_blas_c.py" \
   "$T/tensor/tests/test_blas_scipy.py" "$T/tensor/tests/test_elemwise.py" \
   "$T/tensor/tests/test_opt.py" "$T/tensor/nnet/tests" \
   "$T/compile/tests" "$T/gof/tests" | tee "$out") || true
# Some of these tests are written for nose, and pytest runs them otherwise or
# not at all. Generator tests (`yield` (function, args) per case), which pytest
# 4 stopped running ("'yield' keyword is allowed in fixtures, but not in
# tests"): three classes of the BLAS files, and one function of
# test_rng_mrg.py, which keeps pytest from collecting that whole file. A plain
# class with a nose `setUp`, which pytest 8 no longer calls: test_nnet.py's
# Test_softmax_opt. They are run here as nose ran them, case by case. And the
# elementwise testers of test_sigm.py and test_nnet.py (makeBroadcastTester),
# whose setUp checks that the class is a name of test_basic.py, where they are
# not: they fail under nose too; here they run without that check. Any failure
# fails the target.
echo "== Theano 1.0.5: the tests pytest cannot collect (nose generators), case by case"
(cd "$DIR" && "$PY" - <<'PY' | tee -a "$out")
import importlib, inspect, sys, unittest
NOSE = [("theano.tensor.tests.test_blas", "TestGemmNoFlags"),
        ("theano.tensor.tests.test_blas_c", "TestCGemvNoFlags"),
        ("theano.tensor.tests.test_blas_c", "TestSdotNoFlags"),
        ("theano.tensor.nnet.tests.test_nnet", "Test_softmax_opt"),
        ("theano.sandbox.tests.test_rng_mrg", None),  # None: its test functions
        ("theano.tensor.nnet.tests.test_sigm", "*Tester"),  # its testers, unchecked names
        ("theano.tensor.nnet.tests.test_nnet", "*Tester")]
passed, skipped, failed = 0, 0, []
for module_name, class_name in NOSE:
    module = importlib.import_module(module_name)
    if class_name == "*Tester":
        tests = []
        for name, cls in sorted(vars(module).items()):
            if name.endswith("Tester") and hasattr(cls, "check_name"):  # made by makeTester
                cls.check_name = False
                for test in unittest.defaultTestLoader.getTestCaseNames(cls):
                    tests.append(("%s::%s" % (name, test), cls(test)))
    elif class_name:
        cls = getattr(module, class_name)
        tests = []
        for name in sorted(t for t in dir(cls) if t.startswith("test")):
            instance = cls()
            getattr(instance, "setUp", lambda: None)()
            tests.append(("%s::%s" % (class_name, name), getattr(instance, name)))
    else:
        tests = [(name, f) for name, f in vars(module).items()
                 if name.startswith("test") and inspect.isfunction(f)]
    for name, test in tests:
        where = "%s.py::%s" % (module_name.split(".")[-1], name)
        if isinstance(test, unittest.TestCase):
            outcome = unittest.TestResult()
            test.run(outcome)
            passed += outcome.wasSuccessful() and not outcome.skipped
            skipped += len(outcome.skipped)
            failed += ["%s: %s" % (where, tb.strip().splitlines()[-1])
                       for _, tb in outcome.failures + outcome.errors]
            continue
        try:
            result = test()
            cases = list(result) if inspect.isgenerator(result) else [(lambda: None,)]
        except unittest.SkipTest:
            skipped += 1
            continue
        except Exception as e:
            failed.append("%s: %s: %s" % (where, type(e).__name__, e))
            continue
        for case in cases:
            try:
                case[0](*case[1:])
                passed += 1
            except unittest.SkipTest:
                skipped += 1
            except Exception as e:
                failed.append("%s%r: %s: %s" % (where, case[1:], type(e).__name__, e))
print("nose-style tests: %d passed, %d skipped, %d failed" % (passed, skipped, len(failed)))
for line in failed:
    print("FAILED " + line)
sys.exit(1 if failed else 0)
PY
# Each test that fails (or whose file cannot be collected), named as
# docs/old-code.md names it (`file.py::Class::test`, without parameters),
# must be listed there.
"$PY" - "$out" "$known" <<'PY'
import re, sys
report, known = (open(p).read() for p in sys.argv[1:])
failed = sorted({re.sub(r"\[.*", "", m) for m in re.findall(
    r"^(?:FAILED|ERROR) \S*?theano/\S+?/tests/(\S+)", report, re.M)})
# (an entry may name a whole class: `file.py::Class`)
new = [t for t in failed
       if "`%s`" % t not in known and "`%s`" % t.rpartition("::")[0] not in known]
if new:
    sys.exit("test-upstream: Theano tests failing that docs/old-code.md does not list:\n  "
             + "\n  ".join(new))
PY
echo "test-upstream: Lasagne's suite passed; Theano's failures are the ones docs/old-code.md lists"
