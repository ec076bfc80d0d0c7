"""Scalar constants moved into Theano's fused elementwise loops as C literals.

rmsprop's epsilon and dropout's 1 / 0.6 reach Theano 1.0.5's fused loops
(Elemwise{Composite}) as (1, 1) broadcast inputs, and any broadcast input sends
its loop down the generic strided path, ~10x slower than the contiguous one.
The rewrite "inline_broadcast_constants" puts such a constant inside the
Composite instead, as a C literal.

Theano's own literal for a scalar is str(value): 0.1 for a float32 0.1, which
C reads as a double, so that `abs(x) == 0.1` compared a float with a double
and came out false. The literal here is exact and of the constant's own type:
((npy_float32)0x1.99999ap-4), the float32 itself written in hexadecimal. The
loop then computes what it computed with the constant as an input: the same
operations, on the same float32 values, bit for bit. Complex constants, inf
and NaN (no C literal) and float16 (no C type) are left as inputs.
"""
import numpy as np
from theano import scalar
from theano.compile import optdb
from theano.gof import graph
from theano.gof.opt import in2out, local_optimizer
from theano.tensor import Elemwise, TensorConstant


class ExactLiteral(scalar.Scalar):
    """A scalar type whose C literal is its exact value, cast to its dtype. Equal
    to (and hashed as) the plain scalar type of that dtype, so that the ops of a
    Composite accept it as their input."""

    def c_literal(self, data):
        value = np.asarray(data).item()
        if self.dtype == "bool":
            return "1" if value else "0"
        if self.dtype.startswith("float"):
            text = float(value).hex()  # exact: a float32 is a double too
        else:
            text = "%dLL" % value if self.dtype.startswith("int") else "%dULL" % value
        return "((%s)%s)" % (self.dtype_specs()[1], text)

    def __eq__(self, other):
        return isinstance(other, scalar.Scalar) and other.dtype == self.dtype

    def __hash__(self):
        return hash((scalar.Scalar, (self.dtype,)))


def inlinable(var):
    """A finite real scalar held in a broadcast constant, of a dtype with a C type."""
    if not (isinstance(var, TensorConstant) and all(var.type.broadcastable)
            and np.asarray(var.data).size == 1):
        return False
    dtype = var.dtype
    return (dtype == "bool" or dtype in ("float32", "float64") and np.isfinite(var.data).all()
            or dtype.startswith(("int", "uint")))


@local_optimizer([Elemwise])
def local_inline_broadcast_constants(node):
    op = node.op
    if not isinstance(op, Elemwise) or not isinstance(op.scalar_op, scalar.Composite):
        return False
    const = [i for i, x in enumerate(node.inputs) if inlinable(x)]
    if not const or len(const) == len(node.inputs):
        return False
    if any(i in const for i in op.inplace_pattern.values()):
        return False
    comp = op.scalar_op
    memo = {comp.inputs[i]: scalar.ScalarConstant(
        ExactLiteral(node.inputs[i].dtype), np.asarray(node.inputs[i].data).reshape(()))
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
# under its name only: speedups.mode() includes it by that name.
if "inline_broadcast_constants" not in optdb:
    optdb.register("inline_broadcast_constants",
                   in2out(local_inline_broadcast_constants), 49.5)
