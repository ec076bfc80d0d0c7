"""Lasagne's rmsprop and adam updates as one C loop per parameter.

lasagne.updates.rmsprop (Lasagne 0.1) gives each parameter two update
expressions,

    acc_new   = rho * acc + (1 - rho) * grad ** 2
    param_new = param - learning_rate * grad / sqrt(acc_new + epsilon)

which Theano compiles into four elementwise loops per parameter: rho * acc
and (1 - rho) * grad ** 2 feed both expressions, so its fusion gives each a
loop of its own, then one for acc_new and one for param_new. They are
single-threaded and not vectorised, and go over the arrays four times: in the
MNIST MLP's train_fn on a 2-vCPU AMD EPYC, 2.0 ms of a 11.7 ms call, 1.4 ms
of them for W1 (784x500). lasagne.updates.adam (Lasagne 0.1) gives each
parameter three,

    m_new     = beta1 * m + (1 - beta1) * grad
    v_new     = beta2 * v + (1 - beta2) * grad ** 2
    param_new = param - a_t * m_new / (sqrt(v_new) + epsilon)

with a_t = learning_rate * sqrt(1 - beta2 ** t) / (1 - beta1 ** t) one scalar
per step, from the time step t, a shared float32 scalar of the update rule
that Lasagne's own update expression t + 1 advances; Theano's fusion gives
these elementwise loops of their own in the same way. This module computes
each rule's expressions in one pass over the arrays (0.2 ms for rmsprop's W1
there, 0.3 ms for all six):

* FusedRMSProp, an op: (param, grad, acc, rho, one_minus_rho, lr, eps) ->
  (param_new, acc_new), and FusedAdam: (param, grad, m, v, beta1,
  one_minus_beta1, beta2, one_minus_beta2, a_t, eps) -> (param_new, m_new,
  v_new); a_t and t stay Theano's scalar expressions, computed once per call
  as Lasagne writes them. Both are a FusedUpdate: one C loop that gcc
  vectorises (contiguous arrays, restrict pointers; AVX2 vsqrtps/vdivps with
  the -march flags Theano adds); non-contiguous inputs are copied to
  contiguous temporaries and back; float32 and float64. The loop does the
  float operations of Lasagne's expression in its order, each rounded to the
  dtype (compiled with -ffp-contract=off, so that gcc does not merge a
  multiply and an add into one FMA): numpy on the same float32 arrays, which
  is what perform() runs, gives the same bits. Theano's own loops differ from
  it by float32 roundings: its canonical graph adds rmsprop's eps first,
  sqrt((eps + rho * acc) + (1 - rho) * g**2), and gcc fuses its
  multiply-adds.
* The rewrite "fused_updates" (optdb, 1.65) finds those expressions of a
  parameter in any graph being compiled and replaces them by the op's
  outputs; "fused_updates_inplace" (70.5) then lets the op write into the
  parameter's and the rule's arrays' own buffers, where the graph allows it
  (it does for theano.function updates of shared variables), as Theano's
  inplace elementwise optimisation does for its update loops: no array is
  allocated per call.

Speed-up 4 of docs/speedups.md. The rewrites are registered under their names
only, so that the default mode does not run them: speedups.mode() includes
them.
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

__all__ = ["FusedAdam", "FusedRMSProp", "adam_numpy", "rmsprop_numpy"]


def rmsprop_numpy(param, grad, acc, rho, one_minus_rho, lr, eps):
    """Lasagne's rmsprop expressions, one numpy operation at a time: the
    reference, and the op's fallback. Updates param and acc in place."""
    np.multiply(acc, rho, out=acc)
    acc += np.multiply(grad, grad) * one_minus_rho
    denominator = np.sqrt(acc + eps)
    param -= (grad * lr) / denominator


def adam_numpy(param, grad, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, a_t, eps):
    """Lasagne's adam expressions, one numpy operation at a time: the
    reference, and the op's fallback. Updates param, m and v in place."""
    np.multiply(m, beta1, out=m)
    m += grad * one_minus_beta1
    np.multiply(v, beta2, out=v)
    v += np.multiply(grad, grad) * one_minus_beta2
    denominator = np.sqrt(v) + eps
    param -= (m * a_t) / denominator


class FusedUpdate(Op):
    """(param, grad, *arrays, *scalars) -> (param_new, *arrays_new): an update
    rule's expressions for one parameter, in one C loop. A subclass names its
    arrays (ARRAYS) and scalars (SCALARS), gives the numpy reference (NUMPY)
    and the loop's body for element i (LOOP: C with %(T)s for the element type
    and %(SQRT)s for its square root; p, g and the arrays are pointers).

    param, grad and the arrays: one type (float32 or float64) and one shape;
    the scalars are cast to that dtype. With inplace=True, param_new and the
    new arrays are written into param's and the arrays' buffers."""

    __props__ = ("inplace",)
    ARRAYS = ()
    SCALARS = ()
    NUMPY = None
    LOOP = ""

    def __init__(self, inplace=False):
        self.inplace = bool(inplace)
        if self.inplace:
            # output 0 -> param (input 0); output k -> the k-th array (input k + 1)
            self.destroy_map = {k: [k + 1 if k else 0] for k in range(len(self.ARRAYS) + 1)}

    def make_node(self, param, grad, *rest):
        name = type(self).__name__
        if len(rest) != len(self.ARRAYS) + len(self.SCALARS):
            raise TypeError("%s: %d inputs, not %d" % (
                name, 2 + len(self.ARRAYS) + len(self.SCALARS), 2 + len(rest)))
        arrays = [T.as_tensor_variable(v) for v in (param, grad) + rest[:len(self.ARRAYS)]]
        param = arrays[0]
        if param.dtype not in ("float32", "float64"):
            raise TypeError("%s: float32 or float64 parameters, not %s" % (name, param.dtype))
        if any(a.type != param.type for a in arrays):
            raise TypeError("%s: param, grad, %s must have one type, got %s" % (
                name, ", ".join(self.ARRAYS), ", ".join(str(a.type) for a in arrays)))
        scalars = [T.cast(T.as_tensor_variable(s), param.dtype)
                   for s in rest[len(self.ARRAYS):]]
        if any(s.ndim != 0 for s in scalars):
            raise TypeError("%s: %s must be scalars" % (name, ", ".join(self.SCALARS)))
        return Apply(self, arrays + scalars,
                     [param.type()] + [a.type() for a in arrays[2:]])

    def perform(self, node, inputs, outputs):
        n = 2 + len(self.ARRAYS)
        arrays = list(inputs[:n])
        if any(a.shape != arrays[0].shape for a in arrays):
            raise ValueError("%s: param, grad, %s differ in shape: %s" % (
                type(self).__name__, ", ".join(self.ARRAYS),
                ", ".join(str(a.shape) for a in arrays)))
        if not self.inplace:
            arrays = [a.copy() if i != 1 else a for i, a in enumerate(arrays)]
        type(self).NUMPY(*(arrays + list(inputs[n:])))
        for out, value in zip(outputs, arrays[:1] + arrays[2:]):
            out[0] = value

    def infer_shape(self, node, shapes):
        return [shapes[0]] + list(shapes[2:2 + len(self.ARRAYS)])

    def c_headers(self):
        return ["<math.h>"]

    def c_compile_args(self):
        # One rounding per operation, as in Lasagne's graph and in numpy: no FMA.
        return ["-ffp-contract=off"]

    def _function(self, dtype):
        return "%s_%s" % (self.C_NAME, dtype)

    def c_support_code(self):
        # noinline: inlined into the op's code, the loop is no longer vectorised
        # (gcc 12 keeps it scalar there; as a function of its own it gets AVX2).
        # One thread: split over both cores with OpenMP, it made the epochs
        # 2.3x slower (libgomp's waiting threads spin against OpenBLAS's), and
        # with OMP_WAIT_POLICY=passive the op itself was slower (0.24 vs 0.21
        # ms for W1 in train_fn): waking the second thread costs what it saves.
        code = []
        for dtype, sqrt in (("float32", "sqrtf"), ("float64", "sqrt")):
            ctype = "npy_" + dtype
            args = (["npy_intp n", "%s *__restrict__ p" % ctype, "const %s *__restrict__ g" % ctype]
                    + ["%s *__restrict__ %s" % (ctype, a) for a in self.ARRAYS]
                    + ["%s %s" % (ctype, s) for s in self.SCALARS])
            code.append("__attribute__((noinline)) static void\n%s(%s)\n{\n"
                        "    for (npy_intp i = 0; i < n; ++i) {\n%s    }\n}\n" % (
                            self._function(dtype), ", ".join(args),
                            self.LOOP % {"T": ctype, "SQRT": sqrt}))
        return "\n".join(code)

    def c_code(self, node, name, inputs, outputs, sub):
        fail = sub["fail"]
        dtype = node.inputs[0].dtype
        ctype = "npy_" + dtype
        n = 2 + len(self.ARRAYS)
        ins, scalars = inputs[:n], inputs[n:]
        # The arrays the loop writes: param (input 0) and the rule's arrays
        # (inputs 2 ...), each output k taking input src[k].
        src = [0] + list(range(2, n))
        # Every array must have param's shape: the loop runs over param's size.
        lines = ["{", "const int nd = PyArray_NDIM(%s);" % ins[0], "int same = 1;"]
        for x in ins[1:]:
            lines.append("same = same && PyArray_NDIM(%s) == nd;" % x)
        lines.append("for (int d = 0; same && d < nd; ++d) {")
        for x in ins[1:]:
            lines.append("    same = same && PyArray_DIMS(%s)[d] == PyArray_DIMS(%s)[d];"
                         % (x, ins[0]))
        lines += ["}", "if (!same) {",
                  '    PyErr_SetString(PyExc_ValueError, "%s: param, grad, %s differ in shape");'
                  % (type(self).__name__, ", ".join(self.ARRAYS)),
                  "    %s" % fail, "}"]
        # The outputs: the inputs themselves in place, else copies of them.
        outs = ["out_%d" % k for k in range(len(src))]
        lines.append("PyArrayObject %s;" % ", ".join("*%s = NULL" % o for o in outs))
        for o, k in zip(outs, src):
            if self.inplace:
                lines.append("%s = %s; Py_INCREF(%s);" % (o, ins[k], o))
            else:
                lines.append("%s = (PyArrayObject*)PyArray_NewCopy(%s, NPY_CORDER);" % (o, ins[k]))
        lines.append("if (%s) {" % " || ".join("!" + o for o in outs))
        lines.append("    %s" % " ".join("Py_XDECREF(%s);" % o for o in outs))
        lines += ["    %s" % fail, "}"]
        for var, o in zip(outputs, outs):
            lines.append("Py_XDECREF(%s); %s = %s;" % (var, var, o))
        # The loop runs on contiguous arrays: copies of any that are not.
        conts = ["c_%d" % k for k in range(n)]
        sources = [outs[0], ins[1]] + outs[1:]
        for c, s in zip(conts, sources):
            lines.append("PyArrayObject *%s = PyArray_GETCONTIGUOUS(%s);" % (c, s))
        lines.append("if (%s) {" % " || ".join("!" + c for c in conts))
        lines.append("    %s" % " ".join("Py_XDECREF(%s);" % c for c in conts))
        lines += ["    %s" % fail, "}"]
        args = (["PyArray_SIZE(c_0)", "(%s*)PyArray_DATA(c_0)" % ctype,
                 "(const %s*)PyArray_DATA(c_1)" % ctype]
                + ["(%s*)PyArray_DATA(%s)" % (ctype, c) for c in conts[2:]]
                + ["*(%s*)PyArray_DATA(%s)" % (ctype, s) for s in scalars])
        lines.append("%s(%s);" % (self._function(dtype), ",\n    ".join(args)))
        # the written arrays' contiguous copies back into them (not grad's)
        copies = ["(%s != %s && PyArray_CopyInto(%s, %s) < 0)" % (c, s, s, c)
                  for k, (c, s) in enumerate(zip(conts, sources)) if k != 1]
        lines.append("int err = %s;" % "\n    || ".join(copies))
        lines.append(" ".join("Py_DECREF(%s);" % c for c in conts))
        lines += ["if (err) {", "    %s" % fail, "}", "}"]
        return "\n".join(lines)

    def c_code_cache_version(self):
        return (2,)


class FusedRMSProp(FusedUpdate):
    """(param, grad, acc, rho, one_minus_rho, lr, eps) -> (param_new, acc_new)."""

    ARRAYS = ("acc",)
    SCALARS = ("rho", "one_minus_rho", "lr", "eps")
    NUMPY = staticmethod(rmsprop_numpy)
    C_NAME = "fused_rmsprop"
    LOOP = """\
        const %(T)s acc_new = rho * acc[i] + one_minus_rho * (g[i] * g[i]);
        acc[i] = acc_new;
        p[i] = p[i] - lr * g[i] / %(SQRT)s(acc_new + eps);
"""


class FusedAdam(FusedUpdate):
    """(param, grad, m, v, beta1, one_minus_beta1, beta2, one_minus_beta2, a_t,
    eps) -> (param_new, m_new, v_new)."""

    ARRAYS = ("m", "v")
    SCALARS = ("beta1", "one_minus_beta1", "beta2", "one_minus_beta2", "a_t", "eps")
    NUMPY = staticmethod(adam_numpy)
    C_NAME = "fused_adam"
    LOOP = """\
        const %(T)s m_new = beta1 * m[i] + one_minus_beta1 * g[i];
        const %(T)s v_new = beta2 * v[i] + one_minus_beta2 * (g[i] * g[i]);
        m[i] = m_new;
        v[i] = v_new;
        p[i] = p[i] - a_t * m_new / (%(SQRT)s(v_new) + eps);
"""


# --- Finding rmsprop and adam in a graph -------------------------------------
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


def _step(node):
    """(param_new, param, [numerator, denominator]) when the node computes
    param_new = sub(param, true_div(numerator, denominator)) in float32 or
    float64, the first shape of every update rule here; else None."""
    sub = _inputs(node.outputs[0], scalar.Sub, 2)
    if not sub:
        return None
    param, step = sub
    param_new = node.outputs[0]
    if param.dtype not in ("float32", "float64") or param_new.type != param.type:
        return None
    div = _inputs(step, scalar.TrueDiv, 2)
    return (param_new, param, div) if div else None


def match_rmsprop(node):
    """For the node of an rmsprop param_new: ([param_new, acc_new], the op's
    inputs [param, grad, acc, rho, one_minus_rho, lr, eps]); else None."""
    found = _step(node)
    if not found:
        return None
    param_new, param, div = found
    dtype = param.dtype
    root = _inputs(div[1], scalar.Sqrt, 1)
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
                    return [param_new, found], [param, grad, acc, rho, one_minus_rho, lr, eps]
    return None


# Adam, in the same place (g: the gradient; c: (1, ..., 1) scalars; a_t is
# Lasagne's per-step scalar, any (1, ..., 1) expression here, computed by
# Theano as before):
#
#   param_new = sub(param, true_div(mul(a_t, m_new), add(c_eps, sqrt(v_new))))
#   m_new     = add(mul(c_beta1, m), mul(c_1-beta1, g))
#   v_new     = add(mul(c_beta2, v), mul(c_1-beta2, g ** 2))
#
# with the inputs of add and mul in any order and g ** 2 as pow(g, 2) or sqr(g).
def _moments(var):
    """[(beta, state, one_minus_beta, term)] for each reading of var as
    add(mul(beta, state), mul(one_minus_beta, term))."""
    return [(beta, state, one_minus_beta, term)
            for m1, m2 in _orders(_inputs(var, scalar.Add, 2))
            for beta, state in _orders(_inputs(m1, scalar.Mul, 2))
            for one_minus_beta, term in _orders(_inputs(m2, scalar.Mul, 2))]


def match_adam(node):
    """For the node of an adam param_new: ([param_new, m_new, v_new], the
    op's inputs [param, grad, m, v, beta1, one_minus_beta1, beta2,
    one_minus_beta2, a_t, eps]); else None."""
    found = _step(node)
    if not found:
        return None
    param_new, param, div = found
    dtype = param.dtype
    for eps, root in _orders(_inputs(div[1], scalar.Add, 2)):
        v_new = (_inputs(root, scalar.Sqrt, 1) or [None])[0]
        if v_new is None:
            continue
        for a_t, m_new in _orders(_inputs(div[0], scalar.Mul, 2)):
            for beta1, m, one_minus_beta1, grad in _moments(m_new):
                for beta2, v, one_minus_beta2, squared in _moments(v_new):
                    arrays = [param, grad, m, v]
                    if (_squared(squared) is not grad
                            or any(a.type != param.type for a in arrays)
                            or len(set(arrays)) != 4
                            or m_new.type != param.type or v_new.type != param.type):
                        continue
                    scalars = [beta1, one_minus_beta1, beta2, one_minus_beta2, a_t, eps]
                    if not all(_is_scalar(s, dtype) for s in scalars):
                        continue
                    return [param_new, m_new, v_new], arrays + scalars
    return None


def _as_scalar(var, dtype):
    """A 0-d version of a (1, ..., 1) variable, cast (exactly) to dtype."""
    if isinstance(var, TensorConstant):
        return T.constant(np.asarray(var.data).reshape(()).astype(dtype))
    return T.cast(var.dimshuffle() if var.ndim else var, dtype)


# Each update rule: its matcher and its op.
RULES = ((match_rmsprop, FusedRMSProp), (match_adam, FusedAdam))


class FuseUpdates(Optimizer):
    """Replaces each parameter's rmsprop or adam update expressions by the
    outputs of one FusedRMSProp or FusedAdam."""

    def add_requirements(self, fgraph):
        fgraph.attach_feature(ReplaceValidate())

    def apply(self, fgraph):
        for node in fgraph.toposort():
            for matcher, op in RULES:
                if node not in fgraph.apply_nodes:  # pruned by an earlier replacement
                    break
                match = matcher(node)
                if match is None:
                    continue
                old, inputs = match
                if set(old) & set(ancestors(inputs)):
                    continue  # a cycle: e.g. a learning rate computed from acc_new
                dtype = old[0].dtype
                n = 2 + len(op.ARRAYS)
                new = op()(*(inputs[:n] + [_as_scalar(s, dtype) for s in inputs[n:]]))
                for o, v in zip(old, new):
                    copy_stack_trace(o, v)
                try:
                    fgraph.replace_all_validate(list(zip(old, new)), reason="fused_updates")
                except InconsistencyError:
                    pass


@local_optimizer([FusedUpdate], inplace=True)
def local_fused_updates_inplace(node):
    if isinstance(node.op, FusedUpdate) and not node.op.inplace:
        return type(node.op)(inplace=True)(*node.inputs, return_list=True)
    return False


if "fused_updates" not in theano.compile.optdb:
    theano.compile.optdb.register("fused_updates", FuseUpdates(), 1.65)
    # After the destroy handler (49.5), with the BLAS inplace rewrites (70),
    # before the elementwise ones (75). Like "fused_updates", selected by its
    # name only (speedups.mode() includes both), so that the default mode's
    # set of rewrites stays Theano's; tagged "inplace" too, so that a mode
    # excluding the inplace rewrites excludes it. Fails quietly (the op then
    # stays out of place) where the graph forbids writing into param or an
    # array of the rule: e.g. a shared variable that is not updated.
    theano.compile.optdb.register("fused_updates_inplace", in2out(local_fused_updates_inplace),
                                  70.5, "inplace")
