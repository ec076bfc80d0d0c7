"""Faster CPU training with the same math: a visible, switchable layer.

    import speedups
    speedups.enable()     # feedforward_lasagne_mnist does this unless FLM_SPEEDUPS=0
    speedups.disable()    # back to stock Theano 1.0.5 / Lasagne 0.1 code paths

What each one replaces, and what it changes numerically (measured in
bench/NOTES.md; listed in the README, "What runs differently for speed"):

1. Dropout masks come from dropout_rng (one C loop, SplitMix64) instead of
   Theano's MRG_RandomStreams, whose CPU op made one float at a time: a third
   of the training time. Same dropout (Bernoulli(1 - p) masks, kept units
   scaled by 1 / (1 - p)), seeded from lasagne.random.get_rng() as before, but
   a seed gives other masks than stock Lasagne. Only for DropoutLayers built
   while enabled, and only on the CPU (on a GPU, Theano's own generator runs
   there; this op would not).
2. Theano's local_dot22_to_dot22scalar rewrite is left out: it folds rmsprop's
   learning rate into the weight-gradient GEMM, which then no longer matches
   the plain GEMM rmsprop needs for g**2, so every weight gradient was
   computed twice (11 GEMMs per step instead of 8). The learning rate is then
   applied by the elementwise update instead of inside the GEMM: equal up to
   float32 rounding.
3. Scalar constants (rmsprop's epsilon, dropout's 1 / 0.6) are moved into the
   fused elementwise loops as C literals. Left as (1, 1) broadcast inputs, they
   send Theano 1.0.5's loop down its generic strided path, ~10x slower than
   the contiguous one. Same operations in the same order; results agree to
   float32 rounding (a C literal may be evaluated in double precision).
4. Lasagne's rmsprop update runs as one C loop per parameter (fused_rmsprop):
   the rewrite "fused_rmsprop" replaces a parameter's two update expressions,
   which Theano ran as four unvectorised elementwise loops, by one op that
   reads param, grad and acc once and writes the new param and acc into
   their own buffers, vectorised: the four loops were a sixth of train_fn.
   It computes Lasagne's expression in its order, one float32 rounding per
   operation; Theano's loops add epsilon first and, with 3's literals,
   compute in double: after 5 training steps the weights agree to 1.5e-8, a
   float32 ulp or two (tests/test_fused_rmsprop.py). Graphs that are not
   exactly rmsprop are left alone. CPU only.
5. The first layer's two matrix products (X.W1 and X.T.delta1, 63 % of a
   step's arithmetic) skip the zeros of the images (81 % of MNIST's pixels):
   sparse_dot.ZeroSkippingDot22 for Dot22 nodes whose left operand is the
   data, split over the cores, falling back to the GEMM on dense data. Each
   output element is the float32 sum of the same non-zero products in another
   order: equal to float32 rounding (tests/test_sparse_dot.py).
   Its threads need OpenBLAS's idle threads to sleep: OpenBLAS keeps them
   spinning for 2**28 cycles (~0.1 s) after each GEMM, and on 2 cores a
   spinning thread and a working one share a core: the GEMMs got 4x slower.
   enable() sets OPENBLAS_THREAD_TIMEOUT=4 (2**4 cycles) when the variable is
   unset and OpenBLAS not yet loaded (it reads it when loaded, at the first
   compiled function); otherwise (already loaded, a value of the user's that
   OpenBLAS ignores or that is above 10, or another BLAS) it stays off.
   disable() takes the variable back if OpenBLAS is still not loaded, so that
   --no-speedups runs a stock OpenBLAS too.
6. Sums over the batch (the bias gradients) run as column_sum.ColumnSum, a
   vectorised loop, instead of Theano's generic reduction: the same float64
   additions in the same order, bit for bit the same result (where two NaNs
   meet, the sign of the NaN may differ). CPU only, like
   1, 4 and 5.

2 to 6 apply to every function compiled while enabled.
"""
import os
import re

import numpy as np
import theano
from theano import scalar
from theano.gof import graph
from theano.gof.opt import in2out, local_optimizer
from theano.tensor import Elemwise, TensorConstant
from theano.tensor.blas import blas_optdb
import lasagne.layers.noise

import column_sum  # registers column_sum (untagged)
import compat
import dropout_rng
import fused_rmsprop  # registers fused_rmsprop (untagged)
import sparse_dot  # registers zero_skipping_dot22 (untagged)

STOCK_RANDOM_STREAMS = lasagne.layers.noise.RandomStreams


@local_optimizer([Elemwise])
def local_inline_broadcast_constants(node):
    op = node.op
    if not isinstance(op, Elemwise) or not isinstance(op.scalar_op, scalar.Composite):
        return False
    const = [i for i, x in enumerate(node.inputs)
             if isinstance(x, TensorConstant) and all(x.type.broadcastable)
             and np.asarray(x.data).size == 1
             and np.isfinite(x.data).all()]  # no C literal for inf or nan
    if not const or len(const) == len(node.inputs):
        return False
    if any(i in const for i in op.inplace_pattern.values()):
        return False
    comp = op.scalar_op
    memo = {comp.inputs[i]: scalar.constant(np.asarray(node.inputs[i].data).reshape(()),
                                            dtype=node.inputs[i].dtype)
            for i in const}
    keep = [i for i in range(len(node.inputs)) if i not in const]
    s_inputs = [comp.inputs[i] for i in keep]
    equiv = graph.clone_get_equiv(s_inputs, comp.outputs, memo=memo)
    new_comp = scalar.Composite([equiv[v] for v in s_inputs], [equiv[v] for v in comp.outputs])
    pattern = {o: keep.index(i) for o, i in op.inplace_pattern.items()}
    out = Elemwise(new_comp, inplace_pattern=pattern)(*[node.inputs[i] for i in keep],
                                                       return_list=True)
    if any(a.type != b.type for a, b in zip(out, node.outputs)):
        return False
    return out


# After fusion (49 in optdb), before the inplace optimisations (75). Registered
# without a tag: enable() adds "fast_run", the tag the default mode selects.
if "inline_broadcast_constants" not in theano.compile.optdb:
    theano.compile.optdb.register("inline_broadcast_constants",
                                  in2out(local_inline_broadcast_constants), 49.5)

# OPENBLAS_THREAD_TIMEOUT is a power of 2 of CPU cycles; up to 2**10 (a
# microsecond or less), the idle threads are out of the way of ours.
SHORT_BLAS_TIMEOUT = 10


def blas_loaded():
    """Whether the BLAS named in blas.ldflags is already mapped into this
    process (then it has read its environment). True when /proc is missing."""
    names = re.findall(r"(?:^|\s)-l(\S+)", theano.config.blas.ldflags)
    try:
        with open("/proc/self/maps") as maps:
            mapped = maps.read()
    except OSError:
        return True
    return any(("/lib%s." % name) in mapped for name in names)


def short_blas_timeout():
    """OPENBLAS_THREAD_TIMEOUT=4 if unset and OpenBLAS not loaded; whether
    OpenBLAS's idle threads sleep at once (see 4 above)."""
    if "openblas" not in theano.config.blas.ldflags:
        return False  # another BLAS (MKL, BLIS, ...) has other ways of waiting
    global _timeout_set_here
    value = os.environ.get("OPENBLAS_THREAD_TIMEOUT")
    if value is None:
        if blas_loaded():
            return False
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = "4"
        _timeout_set_here = True
        return True
    try:  # OpenBLAS ignores 0 and negative values (and raises 1-3 to 4)
        return 1 <= int(value) <= SHORT_BLAS_TIMEOUT
    except ValueError:
        return False


_enabled = False
_zero_skipping = False
_timeout_set_here = False


def enabled():
    return _enabled


def enable():
    global _enabled, _zero_skipping
    if _enabled:
        return
    cpu = not compat.is_gpu_device(theano.config.device)
    if cpu:  # C ops for the CPU; on a GPU, Theano's own ops run there
        lasagne.layers.noise.RandomStreams = dropout_rng.RandomStreams
        theano.compile.optdb.add_tags("fused_rmsprop", "fast_run")
        theano.compile.optdb.add_tags("column_sum", "fast_run")
    theano.compile.optdb.add_tags("inline_broadcast_constants", "fast_run")
    _zero_skipping = cpu and short_blas_timeout()
    if _zero_skipping:
        theano.compile.optdb.add_tags("zero_skipping_dot22", "fast_run")
    blas_optdb.remove_tags("local_dot22_to_dot22scalar", "fast_run")
    _enabled = True


def disable():
    global _enabled, _zero_skipping, _timeout_set_here
    if not _enabled:
        return
    lasagne.layers.noise.RandomStreams = STOCK_RANDOM_STREAMS
    if not compat.is_gpu_device(theano.config.device):
        theano.compile.optdb.remove_tags("fused_rmsprop", "fast_run")
        theano.compile.optdb.remove_tags("column_sum", "fast_run")
    theano.compile.optdb.remove_tags("inline_broadcast_constants", "fast_run")
    if _zero_skipping:
        theano.compile.optdb.remove_tags("zero_skipping_dot22", "fast_run")
        _zero_skipping = False
    if _timeout_set_here and not blas_loaded():  # still in time for stock OpenBLAS
        del os.environ["OPENBLAS_THREAD_TIMEOUT"]
        _timeout_set_here = False
    blas_optdb.add_tags("local_dot22_to_dot22scalar", "fast_run")
    _enabled = False
