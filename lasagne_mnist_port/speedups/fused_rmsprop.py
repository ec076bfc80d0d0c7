"""Lasagne's rmsprop update as one C loop per parameter.

lasagne.updates.rmsprop (Lasagne 0.1) gives each parameter two update
expressions,

    acc_new   = rho * acc + (1 - rho) * grad ** 2
    param_new = param - learning_rate * grad / sqrt(acc_new + epsilon)

which Theano compiles into four elementwise loops per parameter: rho * acc
and (1 - rho) * grad ** 2 feed both expressions, so its fusion gives each a
loop of its own, then one for acc_new and one for param_new. They are
single-threaded and not vectorised, and go over the arrays four times: in the
MNIST MLP's train_fn on a 2-vCPU AMD EPYC, 2.0 ms of a 11.7 ms call, 1.4 ms
of them for W1 (784x500). This module computes both expressions in one pass
over param, grad and acc (0.2 ms for W1 there, 0.3 ms for all six):

* FusedRMSProp, an op: (param, grad, acc, rho, one_minus_rho, lr, eps) ->
  (param_new, acc_new). Its C loop gcc vectorises (contiguous arrays,
  restrict pointers; AVX2 vsqrtps/vdivps with the -march flags Theano adds);
  non-contiguous inputs are copied to contiguous temporaries and back;
  float32 and float64. It does the float operations of Lasagne's expression
  in its order, each rounded to the dtype (compiled with -ffp-contract=off, so
  that gcc does not merge a multiply and an add into one FMA): numpy on the
  same float32 arrays, which is what perform() runs, gives the same bits.
  Theano's own loops differ from it by float32 roundings: its canonical
  graph adds eps first, sqrt((eps + rho * acc) + (1 - rho) * g**2), and gcc
  fuses its multiply-adds.
* The rewrite "fused_rmsprop" (optdb, 1.65) finds those two expressions of a
  parameter in any graph being compiled and replaces them by the op's two
  outputs; "fused_rmsprop_inplace" (70.5) then lets the op write into param's
  and acc's own buffers, where the graph allows it (it does for theano.function
  updates of shared variables), as Theano's inplace elementwise optimisation
  does for its update loops: no array is allocated per call.

Speed-up 4 of docs/speedups.md. The rewrite is registered under its name
only, so that the default mode does not run it: speedups.mode() includes it.
"""
import numpy as np
import theano
import theano.tensor as T
from theano import scalar
from theano.gof import Apply, InconsistencyError, Op
from theano.gof.graph import ancestors
from theano.gof.opt import Optimizer, copy_stack_trace, in2out, local_optimizer
from theano.gof.toolbox import ReplaceValidate
from theano.tensor import Elemwise, TensorConstant

__all__ = ["FusedRMSProp", "rmsprop_numpy"]


def rmsprop_numpy(param, grad, acc, rho, one_minus_rho, lr, eps):
    """Lasagne's two update expressions, one numpy operation at a time: the
    reference, and the op's fallback. Updates param and acc in place."""
    np.multiply(acc, rho, out=acc)
    acc += np.multiply(grad, grad) * one_minus_rho
    denominator = np.sqrt(acc + eps)
    param -= (grad * lr) / denominator


class FusedRMSProp(Op):
    """(param, grad, acc, rho, one_minus_rho, lr, eps) -> (param_new, acc_new).

    param, grad and acc: arrays of one type (float32 or float64) and one shape;
    the other four: scalars, cast to that dtype. With inplace=True, param_new
    and acc_new are written into param's and acc's buffers."""

    __props__ = ("inplace",)

    def __init__(self, inplace=False):
        self.inplace = bool(inplace)
        if self.inplace:
            self.destroy_map = {0: [0], 1: [2]}

    def make_node(self, param, grad, acc, rho, one_minus_rho, lr, eps):
        param, grad, acc = (T.as_tensor_variable(v) for v in (param, grad, acc))
        if param.dtype not in ("float32", "float64"):
            raise TypeError("FusedRMSProp: float32 or float64 parameters, not %s" % param.dtype)
        if grad.type != param.type or acc.type != param.type:
            raise TypeError("FusedRMSProp: param, grad and acc must have one type, got %s, %s, %s"
                            % (param.type, grad.type, acc.type))
        scalars = [T.cast(T.as_tensor_variable(s), param.dtype)
                   for s in (rho, one_minus_rho, lr, eps)]
        if any(s.ndim != 0 for s in scalars):
            raise TypeError("FusedRMSProp: rho, one_minus_rho, lr and eps must be scalars")
        return Apply(self, [param, grad, acc] + scalars, [param.type(), acc.type()])

    def perform(self, node, inputs, outputs):
        param, grad, acc = inputs[:3]
        if not param.shape == grad.shape == acc.shape:
            raise ValueError("FusedRMSProp: param %s, grad %s and acc %s differ in shape"
                             % (param.shape, grad.shape, acc.shape))
        if not self.inplace:
            param, acc = param.copy(), acc.copy()
        rmsprop_numpy(param, grad, acc, *inputs[3:])
        outputs[0][0] = param
        outputs[1][0] = acc

    def infer_shape(self, node, shapes):
        return [shapes[0], shapes[2]]

    def c_headers(self):
        return ["<math.h>"]

    def c_compile_args(self):
        # One rounding per operation, as in Lasagne's graph and in numpy: no FMA.
        return ["-ffp-contract=off"]

    def c_support_code(self):
        # noinline: inlined into the op's code, the loop is no longer vectorised
        # (gcc 12 keeps it scalar there; as a function of its own it gets AVX2).
        # One thread: split over both cores with OpenMP, it made the epochs
        # 2.3x slower (libgomp's waiting threads spin against OpenBLAS's), and
        # with OMP_WAIT_POLICY=passive the op itself was slower (0.24 vs 0.21
        # ms for W1 in train_fn): waking the second thread costs what it saves.
        return """
        #define FUSED_RMSPROP_LOOP(NAME, T, SQRT)                                  \\
        __attribute__((noinline)) static void                                      \\
        NAME(npy_intp n, T *__restrict__ p, const T *__restrict__ g,               \\
             T *__restrict__ a, T rho, T one_minus_rho, T lr, T eps)               \\
        {                                                                          \\
            for (npy_intp i = 0; i < n; ++i) {                                     \\
                const T acc_new = rho * a[i] + one_minus_rho * (g[i] * g[i]);      \\
                a[i] = acc_new;                                                    \\
                p[i] = p[i] - lr * g[i] / SQRT(acc_new + eps);                     \\
            }                                                                      \\
        }
        FUSED_RMSPROP_LOOP(fused_rmsprop_float32, npy_float32, sqrtf)
        FUSED_RMSPROP_LOOP(fused_rmsprop_float64, npy_float64, sqrt)
        """

    def c_code(self, node, name, inputs, outputs, sub):
        param, grad, acc, rho, one_minus_rho, lr, eps = inputs
        param_new, acc_new = outputs
        fail = sub["fail"]
        dtype = node.inputs[0].dtype
        ctype = "npy_" + dtype
        if self.inplace:
            targets = """
            p_out = %(param)s; Py_INCREF(p_out);
            a_out = %(acc)s; Py_INCREF(a_out);
            """ % locals()
        else:
            targets = """
            p_out = (PyArrayObject*)PyArray_NewCopy(%(param)s, NPY_CORDER);
            a_out = (PyArrayObject*)PyArray_NewCopy(%(acc)s, NPY_CORDER);
            if (!p_out || !a_out) {
                Py_XDECREF(p_out); Py_XDECREF(a_out);
                %(fail)s
            }
            """ % locals()
        return """
        {
            const int nd = PyArray_NDIM(%(param)s);
            int same = PyArray_NDIM(%(grad)s) == nd && PyArray_NDIM(%(acc)s) == nd;
            for (int d = 0; same && d < nd; ++d)
                same = PyArray_DIMS(%(grad)s)[d] == PyArray_DIMS(%(param)s)[d]
                    && PyArray_DIMS(%(acc)s)[d] == PyArray_DIMS(%(param)s)[d];
            if (!same) {
                PyErr_SetString(PyExc_ValueError,
                                "FusedRMSProp: param, grad and acc differ in shape");
                %(fail)s
            }
            PyArrayObject *p_out = NULL, *a_out = NULL;
            %(targets)s
            Py_XDECREF(%(param_new)s); %(param_new)s = p_out;
            Py_XDECREF(%(acc_new)s); %(acc_new)s = a_out;
            /* The loop runs on contiguous arrays: copies of any that are not. */
            PyArrayObject *p_c = PyArray_GETCONTIGUOUS(p_out);
            PyArrayObject *g_c = PyArray_GETCONTIGUOUS(%(grad)s);
            PyArrayObject *a_c = PyArray_GETCONTIGUOUS(a_out);
            if (!p_c || !g_c || !a_c) {
                Py_XDECREF(p_c); Py_XDECREF(g_c); Py_XDECREF(a_c);
                %(fail)s
            }
            fused_rmsprop_%(dtype)s(PyArray_SIZE(p_c), (%(ctype)s*)PyArray_DATA(p_c),
                                    (const %(ctype)s*)PyArray_DATA(g_c),
                                    (%(ctype)s*)PyArray_DATA(a_c),
                                    *(%(ctype)s*)PyArray_DATA(%(rho)s),
                                    *(%(ctype)s*)PyArray_DATA(%(one_minus_rho)s),
                                    *(%(ctype)s*)PyArray_DATA(%(lr)s),
                                    *(%(ctype)s*)PyArray_DATA(%(eps)s));
            int err = (p_c != p_out && PyArray_CopyInto(p_out, p_c) < 0)
                   || (a_c != a_out && PyArray_CopyInto(a_out, a_c) < 0);
            Py_DECREF(p_c); Py_DECREF(g_c); Py_DECREF(a_c);
            if (err) {
                %(fail)s
            }
        }
        """ % locals()

    def c_code_cache_version(self):
        return (1,)


# --- Finding rmsprop in a graph ----------------------------------------------
# Where: after canonicalize (1) and stabilize (1.5), so that the expressions
# are in Theano's canonical form, and before the BLAS rewrites (BlasOpt, 1.7),
# whose stock local_dot22_to_dot22scalar would fold lr into the gradient's
# GEMM and hide the product lr * grad; also before fusion (49), which would
# bury the expressions in Composites. There each update is a tree of single
# Elemwise ops (g is the gradient, any expression; c: (1, ..., 1) scalars):
#
#   param_new = sub(param, true_div(mul(c_lr, g), sqrt(add(c_eps, m1, m2))))
#   acc_new   = add(m1, m2),  m1 = mul(c_rho, acc),  m2 = mul(c_1-rho, g ** 2)
#
# with the inputs of add and mul in any order, g ** 2 as pow(g, 2) or sqr(g),
# and the denominator as add(c_eps, acc_new) where the canonicaliser has not
# flattened it. Anything else is left alone.
def _inputs(var, scalar_op, n=None):
    """The inputs of var's node if it is Elemwise{scalar_op} (n of them), else None."""
    node = var.owner
    if (node is None or not isinstance(node.op, Elemwise)
            or not isinstance(node.op.scalar_op, scalar_op) or len(node.outputs) != 1
            or n is not None and len(node.inputs) != n):
        return None
    return node.inputs


def _orders(pair):
    return [] if pair is None else [(pair[0], pair[1]), (pair[1], pair[0])]


def _is_scalar(var, dtype):
    """A (1, ..., 1) value that casts to dtype exactly (Theano upcasts it so)."""
    return all(var.broadcastable) and scalar.upcast(var.dtype, dtype) == dtype


def _squared(var):
    """x when var is sqr(x) or pow(x, 2), else None."""
    sqr = _inputs(var, scalar.Sqr, 1)
    if sqr:
        return sqr[0]
    power = _inputs(var, scalar.Pow, 2)
    if power and all(power[1].broadcastable):
        try:
            if T.get_scalar_constant_value(power[1]) == 2:
                return power[0]
        except T.NotScalarConstantError:
            pass
    return None


def _acc_new(m1, m2, acc_type):
    """The variable add(m1, m2) (either order) in m1's graph, or None."""
    for client, _ in m1.clients:
        if (client != "output" and isinstance(client.op, Elemwise)
                and isinstance(client.op.scalar_op, scalar.Add)
                and len(client.inputs) == 2 and set(client.inputs) == {m1, m2}
                and client.outputs[0].type == acc_type):
            return client.outputs[0]
    return None


def match_rmsprop(node):
    """For the node of an rmsprop param_new: (param_new, acc_new, the op's
    inputs [param, grad, acc, rho, one_minus_rho, lr, eps]); else None."""
    sub = _inputs(node.outputs[0], scalar.Sub, 2)
    if not sub:
        return None
    param, step = sub
    param_new = node.outputs[0]
    dtype = param.dtype
    if dtype not in ("float32", "float64") or param_new.type != param.type:
        return None
    div = _inputs(step, scalar.TrueDiv, 2)
    root = div and _inputs(div[1], scalar.Sqrt, 1)
    terms = root and _inputs(root[0], scalar.Add)
    if not terms or len(terms) not in (2, 3):
        return None
    # (eps, m1, m2, acc_new or None) for each way of reading the denominator
    readings = []
    for i, eps in enumerate(terms):
        rest = terms[:i] + terms[i + 1:]
        if len(rest) == 2:
            readings += [(eps, m1, m2, None) for m1, m2 in _orders(rest)]
        else:
            readings += [(eps, m1, m2, rest[0])
                         for m1, m2 in _orders(_inputs(rest[0], scalar.Add, 2))]
    for eps, m1, m2, acc_new in readings:
        for rho, acc in _orders(_inputs(m1, scalar.Mul, 2)):
            for one_minus_rho, squared in _orders(_inputs(m2, scalar.Mul, 2)):
                grad = _squared(squared)
                for lr, numerator_grad in _orders(_inputs(div[0], scalar.Mul, 2)):
                    if (numerator_grad is not grad or grad.type != param.type
                            or acc.type != param.type or acc is param or acc is grad
                            or not all(_is_scalar(s, dtype)
                                       for s in (rho, one_minus_rho, lr, eps))):
                        continue
                    found = _acc_new(m1, m2, acc.type) if acc_new is None else acc_new
                    if found is None or found.type != acc.type:
                        continue
                    return param_new, found, [param, grad, acc, rho, one_minus_rho, lr, eps]
    return None


def _as_scalar(var, dtype):
    """A 0-d version of a (1, ..., 1) variable, cast (exactly) to dtype."""
    if isinstance(var, TensorConstant):
        return T.constant(np.asarray(var.data).reshape(()).astype(dtype))
    return T.cast(var.dimshuffle() if var.ndim else var, dtype)


class FuseRMSProp(Optimizer):
    """Replaces each parameter's pair of rmsprop update expressions by the two
    outputs of one FusedRMSProp."""

    def add_requirements(self, fgraph):
        fgraph.attach_feature(ReplaceValidate())

    def apply(self, fgraph):
        for node in fgraph.toposort():
            if node not in fgraph.apply_nodes:  # pruned by an earlier replacement
                continue
            match = match_rmsprop(node)
            if match is None:
                continue
            param_new, acc_new, inputs = match
            if {param_new, acc_new} & set(ancestors(inputs)):
                continue  # a cycle: e.g. a learning rate computed from acc_new
            dtype = param_new.dtype
            new = FusedRMSProp()(*(inputs[:3] + [_as_scalar(s, dtype) for s in inputs[3:]]))
            copy_stack_trace(param_new, new[0])
            copy_stack_trace(acc_new, new[1])
            try:
                fgraph.replace_all_validate([(param_new, new[0]), (acc_new, new[1])],
                                            reason="fused_rmsprop")
            except InconsistencyError:
                pass


@local_optimizer([FusedRMSProp], inplace=True)
def local_fused_rmsprop_inplace(node):
    if isinstance(node.op, FusedRMSProp) and not node.op.inplace:
        return FusedRMSProp(inplace=True)(*node.inputs, return_list=True)
    return False


if "fused_rmsprop" not in theano.compile.optdb:
    theano.compile.optdb.register("fused_rmsprop", FuseRMSProp(), 1.65)
    # After the destroy handler (49.5), with the BLAS inplace rewrites (70),
    # before the elementwise ones (75). Like "fused_rmsprop", selected by its
    # name only (speedups.mode() includes both), so that the default mode's
    # set of rewrites stays Theano's; tagged "inplace" too, so that a mode
    # excluding the inplace rewrites excludes it. Fails quietly (the op then
    # stays out of place) where the graph forbids writing into param or acc:
    # e.g. a shared variable that is not updated.
    theano.compile.optdb.register("fused_rmsprop_inplace", in2out(local_fused_rmsprop_inplace),
                                  70.5, "inplace")
