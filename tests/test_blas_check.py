"""blas_check: a BLAS that computes wrong products is stopped before training,
with one line naming it and a core type that computes right; a right one is
checked once. The wrong BLAS is a small library built here, which computes the
products right only under one OPENBLAS_CORETYPE (as OpenBLAS does where one
core's kernels are wrong), passed to Theano through blas.ldflags."""
import os
import platform
import subprocess

import pytest
import theano

from conftest import run_cli
from lasagne_mnist_port import blas_check, training

FAKE_BLAS = r"""
#include <signal.h>
#include <stdlib.h>
#include <strings.h>

static const char *core(void) {
    const char *c = getenv("OPENBLAS_CORETYPE");
    return c && *c ? c : "fakecore";
}
#ifndef NOT_OPENBLAS
const char *openblas_get_config(void) { return "OpenBLAS 0.0.1 fake"; }
const char *openblas_get_corename(void) { return core(); }
#endif

/* C = alpha op(A) op(B) + beta C, column-major; then, unless the core type is
   RIGHT_CORE, its last element is off by one (or, with CRASH, SIGILL). */
void sgemm_(const char *ta, const char *tb, const int *m, const int *n, const int *k,
            const float *alpha, const float *A, const int *lda, const float *B,
            const int *ldb, const float *beta, float *C, const int *ldc) {
    for (int j = 0; j < *n; ++j) {
        for (int i = 0; i < *m; ++i)
            C[i + j * *ldc] = *beta == 0.0f ? 0.0f : *beta * C[i + j * *ldc];
        for (int p = 0; p < *k; ++p) {
            const float b = *alpha * (*tb == 'N' ? B[p + j * *ldb] : B[j + p * *ldb]);
            for (int i = 0; i < *m; ++i)
                C[i + j * *ldc] += (*ta == 'N' ? A[i + p * *lda] : A[p + i * *lda]) * b;
        }
    }
    if (strcasecmp(core(), RIGHT_CORE) != 0) {
#ifdef CRASH
        raise(SIGILL);
#endif
        C[(*m - 1) + (*n - 1) * *ldc] += 1.0f;
    }
}
"""


def fake_blas(folder, right_core, *defines):
    """Builds libfakeblas.so in folder; its blas.ldflags."""
    (folder / "fake.c").write_text(FAKE_BLAS)
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-DRIGHT_CORE=\"%s\"" % right_core]
                   + ["-D" + d for d in defines]
                   + [str(folder / "fake.c"), "-o", str(folder / "libfakeblas.so")], check=True)
    return "-L%s -lfakeblas" % folder


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder of the user's, and nothing remembered in this process."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(blas_check, "_passed", set())
    return tmp_path / "cache"


def candidates():
    found = blas_check.CANDIDATES.get(platform.machine())
    if not found:
        pytest.skip("no OpenBLAS core types to try on %s" % platform.machine())
    return found


# The core type this process's environment gives the fake (the machine's may set one).
CURRENT = os.environ.get("OPENBLAS_CORETYPE") or "fakecore"


def test_wrong_blas_stops_the_command_line_before_anything_with_the_fix(tmp_path, cache):
    right = candidates()[-1]  # the others are tried first, in their children
    ldflags = fake_blas(tmp_path, right)
    flags = ",".join(filter(None, [os.environ.get("THEANO_FLAGS"), "blas.ldflags=" + ldflags]))
    result = run_cli("--epochs", "1", "--limit", "500", "--no-progress",
                     env={"THEANO_FLAGS": flags, "XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 1
    assert result.stdout == ""  # no data loaded, nothing compiled or trained
    assert result.stderr.splitlines()[-1] == (
        "error: the BLAS (OpenBLAS 0.0.1, core %s) computes wrong matrix products on this "
        "CPU; OPENBLAS_CORETYPE=%s computes them right: set it and run again" % (CURRENT, right))
    assert "learning rate" not in result.stderr
    assert not cache.exists()  # only a right result is remembered


def test_run_network_checks_it_too_before_training(tmp_path, cache, monkeypatch):
    """run_network calls describe_backend after compiling, before its epoch loop."""
    monkeypatch.setattr(theano.config.blas, "ldflags", fake_blas(tmp_path, "none", "CRASH"))
    with pytest.raises(blas_check.WrongBlas) as e:
        training.describe_backend(None)
    assert str(e.value) == (
        "the BLAS (OpenBLAS 0.0.1, core %s) computes wrong matrix products on this CPU, "
        "with OPENBLAS_CORETYPE=%s too: link another BLAS with "
        "THEANO_FLAGS=blas.ldflags=... (docs/setup.md) and run again"
        % (CURRENT, " and ".join(c for c in candidates() if c != CURRENT.upper())))


def test_a_blas_other_than_openblas_is_named_by_its_file(tmp_path, cache):
    ldflags = fake_blas(tmp_path, "none", "NOT_OPENBLAS")
    with pytest.raises(blas_check.WrongBlas, match=r"^the BLAS \(libfakeblas\.so\) computes "
                       r"wrong matrix products on this CPU: link another BLAS with "):
        blas_check.check(ldflags)


def test_a_right_blas_is_checked_once(cache, monkeypatch):
    ldflags = theano.config.blas.ldflags  # the project's BLAS
    blas_check.check(ldflags)
    entry, = (cache / "feedforward_lasagne_mnist" / "blas-check").iterdir()
    assert entry.read_text().endswith(" computes right products\n")
    monkeypatch.setattr(blas_check, "_passed", set())
    monkeypatch.setattr(blas_check, "run_probe", lambda *a: pytest.fail("checked again"))
    blas_check.check(ldflags)


def test_no_library_nothing_to_check():
    assert blas_check.blas_plan("") is None  # Theano's numpy fallback
    assert blas_check.blas_plan("-lno_such_blas_library") is None
