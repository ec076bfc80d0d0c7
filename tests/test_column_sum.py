"""column_sum: the bias gradients' sums, bit for bit Theano's, from a faster loop."""
import numpy as np
import pytest
import theano
import theano.tensor as T
from hypothesis import given, settings, strategies as st

from lasagne_mnist_port.speedups import column_sum


@pytest.fixture(scope="module")
def sums():
    x = T.matrix("x")
    mode = theano.compile.get_default_mode()
    fast = theano.function([x], x.sum(axis=0), mode=mode.including("column_sum"))
    stock = theano.function([x], x.sum(axis=0), mode=mode.excluding("column_sum"))
    python = theano.function([x], x.sum(axis=0), mode=theano.compile.Mode(
        linker="py", optimizer=mode.provided_optimizer).including("column_sum"))
    return fast, stock, python


def ops(f):
    return [str(n.op) for n in f.maker.fgraph.toposort()]


def test_replaces_the_float64_accumulating_sum(sums):
    fast, stock, python = sums
    assert ops(fast) == ["ColumnSum"] and ops(python) == ["ColumnSum"]
    assert ops(stock) == ["Sum{axis=[0], acc_dtype=float64}"]


@settings(max_examples=50, deadline=None)
@given(m=st.integers(0, 60), n=st.integers(0, 60), scale=st.sampled_from([1e-30, 1.0, 1e30]),
       view=st.sampled_from(["c", "transposed", "strided"]), seed=st.integers(0, 2 ** 31 - 1))
def test_bit_for_bit_the_stock_sum(sums, m, n, scale, view, seed):
    """Any shape (empty too), any layout, tiny to huge values (float32 overflow
    to inf after the float64 sum is the same too); the Python fallback as well."""
    fast, stock, python = sums
    x = (np.random.RandomState(seed).randn(m, n) * scale).astype(np.float32)
    x = {"c": x, "transposed": np.ascontiguousarray(x.T).T, "strided": np.repeat(x, 2, axis=1)[:, ::2]}[view]
    expected = stock(x)
    np.testing.assert_array_equal(fast(x), expected)
    np.testing.assert_array_equal(python(x), expected)


def test_other_sums_are_left_alone():
    mode = theano.compile.get_default_mode().including("column_sum")
    x, d, t = T.matrix("x"), T.dmatrix("d"), T.tensor3("t")
    for inp, expr in ((x, x.sum(axis=1)), (x, x.sum()), (x, x.sum(axis=0, acc_dtype="float32")),
                      (d, d.sum(axis=0)), (t, t.sum(axis=0))):
        assert "ColumnSum" not in ops(theano.function([inp], expr, mode=mode))
