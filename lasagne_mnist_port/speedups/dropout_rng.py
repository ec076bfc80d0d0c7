"""A fast source of dropout masks for Theano on the CPU.

Lasagne's DropoutLayer draws its masks with Theano's MRG_RandomStreams, whose
CPU op (mrg_uniform) produces one float at a time: about a third of the
training time of the MNIST MLP. This module gives a drop-in replacement with
the same ``binomial(size, p=..., dtype=...)`` call, computed by one C loop:

* generator: SplitMix64 (Steele, Lea & Flood 2014; the generator of Java's
  SplittableRandom), i.e. the 64-bit finaliser of Stafford's Mix13 applied to
  ``key + counter * 0x9E3779B97F4A7C15``. It is counter-based, so element j of
  a call depends only on (key, counter + j // 2): no sequential dependency, and
  gcc vectorises the loop. Each 64-bit output gives two 32-bit uniforms.
* Bernoulli(p): ``u32 < floor(p * 2**32)``, i.e. P(1) = p to within 2**-32
  (MRG's float32 uniform compared with p is exact to about 2**-24).
* state: a shared uint64 vector [key, counter] per ``binomial`` call site,
  advanced by the op's second output through ``default_update``, which
  theano.function applies after each call, like MRG_RandomStreams' states.
  Two streams made by one RandomStreams get independent keys.

Speed-up 1 of docs/speedups.md: speedups.use_fast_dropout(network) gives the
dropout layers of one network a RandomStreams of this module, seeded with the
seed Lasagne drew for the layer's MRG_RandomStreams (so seeding is unchanged).

The math of dropout is unchanged (mask ~ Bernoulli(1 - p), input / (1 - p) *
mask); only the random source differs. The same seed gives the same masks.
"""
import numpy as np
import theano
import theano.tensor as T
from theano.gof import Apply, Op

__all__ = ["BernoulliMask", "RandomStreams", "bernoulli_mask_numpy"]

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


def _threshold(p):
    """floor(p * 2**32), clipped to [0, 2**32]: u32 < threshold has probability p."""
    return int(min(max(float(p), 0.0), 1.0) * 4294967296.0)


def bernoulli_mask_numpy(key, counter, shape, p, dtype="float32"):
    """The reference implementation (also the op's Python fallback).

    Returns (mask, new_counter)."""
    n = int(np.prod(shape, dtype=np.int64))
    pairs = (n + 1) // 2
    with np.errstate(over="ignore"):
        z = (np.arange(pairs, dtype=np.uint64) + np.uint64(counter)) * GOLDEN + np.uint64(key)
        z = (z ^ (z >> np.uint64(30))) * MIX1
        z = (z ^ (z >> np.uint64(27))) * MIX2
        z ^= z >> np.uint64(31)
    u = np.empty(2 * pairs, dtype=np.uint64)
    u[0::2] = z & np.uint64(0xFFFFFFFF)
    u[1::2] = z >> np.uint64(32)
    mask = (u[:n] < np.uint64(_threshold(p))).astype(dtype).reshape(shape)
    return mask, (int(counter) + pairs) % 2 ** 64


class BernoulliMask(Op):
    """(rstate, shape, p) -> (new_rstate, mask): mask[i] ~ Bernoulli(p), i.i.d.

    rstate is a uint64 vector [key, counter]; shape an integer vector of length
    ndim; p a scalar. The op never changes its inputs."""

    __props__ = ("ndim", "dtype")

    def __init__(self, ndim, dtype):
        self.ndim = int(ndim)
        self.dtype = str(dtype)

    def make_node(self, rstate, shape, p):
        rstate = T.as_tensor_variable(rstate)
        if rstate.type.dtype != "uint64" or rstate.ndim != 1:
            raise TypeError("rstate must be a uint64 vector, got %s" % rstate.type)
        shape = T.cast(T.as_tensor_variable(shape, ndim=1), "int64")
        p = T.cast(T.as_tensor_variable(p), "float64")
        if p.ndim != 0:
            raise TypeError("p must be a scalar (one probability for all elements)")
        mask = T.TensorType(self.dtype, (False,) * self.ndim)()
        return Apply(self, [rstate, shape, p], [rstate.type(), mask])

    def perform(self, node, inputs, outputs):
        rstate, shape, p = inputs
        if len(shape) != self.ndim:
            raise ValueError("shape %s has %d entries, expected %d" % (shape, len(shape), self.ndim))
        mask, counter = bernoulli_mask_numpy(rstate[0], rstate[1], tuple(shape), p, self.dtype)
        outputs[0][0] = np.array([rstate[0], counter], dtype=np.uint64)
        outputs[1][0] = mask

    def infer_shape(self, node, shapes):
        return [shapes[0], [node.inputs[1][i] for i in range(self.ndim)]]

    def grad(self, inputs, output_grads):
        return [theano.gradient.grad_undefined(self, k, inputs[k],
                                               "no gradient through random sampling")
                for k in range(len(inputs))]

    def connection_pattern(self, node):
        return [[False, False], [False, False], [False, False]]

    def c_support_code(self):
        return """
        static inline npy_uint64 dropout_rng_mix(npy_uint64 z) {
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            return z ^ (z >> 31);
        }
        """

    def c_code(self, node, name, inputs, outputs, sub):
        rstate, shape, p = inputs
        o_rstate, o_mask = outputs
        fail = sub["fail"]
        ndim = self.ndim
        ctype = {"float32": "npy_float32", "float64": "npy_float64", "int8": "npy_int8",
                 "uint8": "npy_uint8", "int32": "npy_int32", "int64": "npy_int64"}[self.dtype]
        typenum = np.dtype(self.dtype).num
        return """
        {
            npy_intp dims[%(ndim)s > 0 ? %(ndim)s : 1];
            npy_intp n = 1;
            if (PyArray_DIMS(%(rstate)s)[0] != 2) {
                PyErr_SetString(PyExc_ValueError, "BernoulliMask: rstate must hold [key, counter]");
                %(fail)s
            }
            if (PyArray_DIMS(%(shape)s)[0] != %(ndim)s) {
                PyErr_SetString(PyExc_ValueError, "BernoulliMask: shape has the wrong length");
                %(fail)s
            }
            for (int i = 0; i < %(ndim)s; ++i) {
                dims[i] = *(npy_int64*)PyArray_GETPTR1(%(shape)s, i);
                if (dims[i] < 0) {
                    PyErr_SetString(PyExc_ValueError, "BernoulliMask: negative dimension");
                    %(fail)s
                }
                n *= dims[i];
            }
            int reuse = %(o_mask)s != NULL && PyArray_ISCARRAY(%(o_mask)s);
            for (int i = 0; reuse && i < %(ndim)s; ++i)
                reuse = PyArray_DIMS(%(o_mask)s)[i] == dims[i];
            if (!reuse) {
                Py_XDECREF(%(o_mask)s);
                %(o_mask)s = (PyArrayObject*)PyArray_EMPTY(%(ndim)s, dims, %(typenum)s, 0);
                if (!%(o_mask)s) { %(fail)s }
            }
            if (%(o_rstate)s == NULL || %(o_rstate)s == %(rstate)s) {
                npy_intp two = 2;
                Py_XDECREF(%(o_rstate)s);
                %(o_rstate)s = (PyArrayObject*)PyArray_EMPTY(1, &two, NPY_UINT64, 0);
                if (!%(o_rstate)s) { %(fail)s }
            }
            const npy_uint64 key = *(npy_uint64*)PyArray_GETPTR1(%(rstate)s, 0);
            const npy_uint64 counter = *(npy_uint64*)PyArray_GETPTR1(%(rstate)s, 1);
            double pd = *(npy_float64*)PyArray_DATA(%(p)s);
            pd = pd < 0.0 ? 0.0 : (pd > 1.0 ? 1.0 : pd);
            const npy_uint64 thr = (npy_uint64)(pd * 4294967296.0);
            %(ctype)s* out = (%(ctype)s*)PyArray_DATA(%(o_mask)s);
            const npy_intp pairs = (n + 1) / 2;
            const npy_intp full = n / 2;
            for (npy_intp j = 0; j < full; ++j) {
                npy_uint64 z = dropout_rng_mix(key + (counter + (npy_uint64)j) * 0x9E3779B97F4A7C15ULL);
                out[2 * j] = (%(ctype)s)((z & 0xFFFFFFFFULL) < thr);
                out[2 * j + 1] = (%(ctype)s)((z >> 32) < thr);
            }
            if (full != pairs) {
                npy_uint64 z = dropout_rng_mix(key + (counter + (npy_uint64)full) * 0x9E3779B97F4A7C15ULL);
                out[2 * full] = (%(ctype)s)((z & 0xFFFFFFFFULL) < thr);
            }
            npy_uint64* st = (npy_uint64*)PyArray_DATA(%(o_rstate)s);
            st[0] = key;
            st[1] = counter + (npy_uint64)pairs;
        }
        """ % locals()

    def c_code_cache_version(self):
        return (1,)


class RandomStreams(object):
    """The part of MRG_RandomStreams that Lasagne's DropoutLayer uses.

    ``RandomStreams(seed).binomial(size, p=retain_prob, dtype=floatX)`` returns
    a symbolic 0/1 mask; each call site gets its own shared state, advanced
    every time a compiled function that uses it runs."""

    def __init__(self, seed=12345):
        self.state_updates = []
        self.seed(seed)

    def seed(self, seed=None):
        """Reseed: new keys for streams made from now on, and for existing ones."""
        self.rng = np.random.RandomState(seed)
        for old, _ in self.state_updates:
            old.set_value(self._fresh_state())

    def _fresh_state(self):
        key = int(self.rng.randint(0, 2 ** 32, dtype=np.uint64)) << 32 | int(
            self.rng.randint(0, 2 ** 32, dtype=np.uint64))
        return np.array([key, 0], dtype=np.uint64)

    def binomial(self, size=None, n=1, p=0.5, ndim=None, dtype="int64", nstreams=None, **kwargs):
        if n != 1:
            raise NotImplementedError("dropout_rng.RandomStreams.binomial with n > 1")
        if size is None:
            raise TypeError("binomial: size is required")
        if isinstance(size, (tuple, list)):
            if any(s is None for s in size):
                raise ValueError("binomial: size %r has a None entry" % (size,))
            ndim = len(size)
            size = T.stack([T.cast(T.as_tensor_variable(s), "int64") for s in size]) \
                if ndim else T.zeros((0,), dtype="int64")
        else:
            size = T.as_tensor_variable(size)
            ndim = T.get_vector_length(size) if ndim is None else ndim
        rstate = theano.shared(self._fresh_state(), name="dropout_rng_state")
        new_rstate, mask = BernoulliMask(ndim, dtype)(rstate, size, p)
        # A generator's state, not a value of the model: NanGuardMode checks
        # neither (its uint64 key is above the 1e10 it calls big), as it
        # skips MRG_RandomStreams' states, also tagged is_rng.
        rstate.tag.is_rng = True
        new_rstate.tag.nan_guard_mode_check = False
        rstate.default_update = new_rstate
        self.state_updates.append((rstate, new_rstate))
        return mask
