"""Matrix products that skip the zeros of the input data.

MNIST images are 81 % zeros (the background), and the first layer's two
products, ``X.W1`` (forward) and ``X.T.delta1`` (W1's gradient), are 63 % of
the floating-point work of a training step. A dense GEMM multiplies every one
of those zeros. ZeroSkippingDot22 computes the same ``Dot22(L, B)`` (L m x k,
B k x n, float32) but only over the columns of L that are non-zero:

* L is cut into blocks of 6 rows; for each block, the columns t where any of
  the 6 rows is non-zero are listed with their 6 values (for MNIST, 43 % of the
  columns of a block of 6 images, 34 % of a block of 6 pixels for X.T).
* Each tile of the output, 6 rows x 2 vectors (2 x 16 columns where the CPU
  has AVX-512, 2 x 8 with AVX2), is then a sum over the block's listed
  columns t of one broadcast value of L times two vectors of B's row t, in
  12 vector accumulators: a small dense GEMM kernel over a shortened inner
  dimension, reading B in place, 64 columns at a time for all blocks so that
  those rows of B stay in the core's cache (the last tile of a row, when
  narrower than 2 vectors, from a zero-padded copy of those columns).
* The blocks are split over threads, each listing and multiplying its own
  (they write different rows of the output: no waiting on each other), as
  many threads as OpenBLAS would use (OPENBLAS_NUM_THREADS,
  GOTO_NUM_THREADS or OMP_NUM_THREADS, at most the CPUs this process may run
  on).
* When more than half of L is non-zero (dense data, or weights: nothing to
  skip), when B holds an inf or a NaN (the GEMM's 0 * inf = NaN must not be
  skipped), or on anything it does not handle (other dtypes, B without unit
  column stride, an empty dimension, no memory), the op runs Theano's own
  Dot22 code instead: the BLAS GEMM.

Numerically: each output element is the float32 sum of the same non-zero
products, in increasing order of t; the BLAS sums in its own blocked order. The
two agree to float32 rounding of the sum (tests/test_sparse_dot.py). The C code
is compiled with -ffp-contract=off: each product is rounded before it is added,
as on a CPU without fused multiply-add, so that the bits are the same whatever
the vector width and -march (x86-64-v2, v3, AVX-512, arm64:
tests/test_speedups.py); with contraction, gcc fuses them where the CPU has FMA.

The rewrite replaces Dot22 nodes whose left operand is a function's input (not
a shared variable), possibly reshaped or transposed: the data. Hidden-layer
activations are not touched: after ReLU and dropout their zeros are scattered
(a block of 6 rows has almost every column non-zero), and a kernel that takes
one row at a time did not beat the GEMM there (bench/NOTES.md, lever 20).
Speed-up 5 of docs/speedups.md: the functions compiled in speedups.mode() use
it.
"""
import theano
from theano import gof
from theano.compile import SharedVariable
from theano.gof.opt import in2out, local_optimizer
from theano.tensor.basic import Reshape
from theano.tensor.elemwise import DimShuffle
from theano.tensor.blas import Dot22

__all__ = ["ZeroSkippingDot22", "zero_skipping_dot22", "is_data"]

# The C side. R (rows per block) and the tile are fixed in the kernel; PW
# (panel width) keeps the part of B one pass reads, 64 columns of W1's 784
# rows (200 KB), within a core's L2 cache.
SUPPORT_CODE = r"""
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#define ZSD_R 6
#define ZSD_PW 64
/* A tile of the output is 6 rows x two vectors: 2 x 16 floats where the
   compiler may use AVX-512 (-march of this CPU), 2 x 8 elsewhere: one AVX2
   register, two of SSE or of arm64's NEON (gcc splits a vector type wider
   than the target's registers). */
#if defined(__AVX512F__)
#define ZSD_VW 16
#else
#define ZSD_VW 8
#endif
#define ZSD_TW (2 * ZSD_VW)
#define ZSD_AHEAD 8
typedef float zsd_v __attribute__((vector_size(ZSD_VW * 4), aligned(4)));  /* unaligned */

typedef struct {
    const float *L; long sr, sc;   /* m x k, strides in elements */
    int m, k;
    const float *B; long ldb;      /* k x n, unit column stride */
    int n;
    const float *tail;             /* B's last, partial tile of columns: k rows x ZSD_TW, zero-padded */
    float *out; long ldo;          /* m x n, unit column stride */
    int *idx; float *val; int *cnt;  /* per block b: listed columns, their values, count */
    int part, parts;
    int nonfinite;                 /* this part's rows of B hold an inf or a NaN */
} zsd_job;

/* List the columns t of block b (rows 6b .. 6b+5) where a row is non-zero. */
static void zsd_list(const zsd_job *j, int b) {
    const int r0 = b * ZSD_R, rows = j->m - r0 < ZSD_R ? j->m - r0 : ZSD_R, k = j->k;
    int *idx = j->idx + (long)b * k;
    float *val = j->val + (long)b * k * ZSD_R;
    const float *L = j->L;
    const long sr = j->sr, sc = j->sc;
    int c = 0;
    /* Branch-free: every column is written at position c, and c moves on
       only if the column has a non-zero (a branch would be mispredicted
       about half the time). The buffers have room for all k columns. */
    if (rows == ZSD_R) {
        const float *p0 = L + r0 * sr, *p1 = p0 + sr, *p2 = p1 + sr, *p3 = p2 + sr,
                    *p4 = p3 + sr, *p5 = p4 + sr;
        for (int t = 0; t < k; ++t) {
            const long o = t * sc;
            const float v0 = p0[o], v1 = p1[o], v2 = p2[o], v3 = p3[o], v4 = p4[o], v5 = p5[o];
            float *d = val + (long)c * ZSD_R;
            d[0] = v0; d[1] = v1; d[2] = v2; d[3] = v3; d[4] = v4; d[5] = v5;
            idx[c] = t;
            c += (v0 != 0.0f) | (v1 != 0.0f) | (v2 != 0.0f) | (v3 != 0.0f) | (v4 != 0.0f) | (v5 != 0.0f);
        }
    } else {
        for (int t = 0; t < k; ++t) {
            float *d = val + (long)c * ZSD_R;
            int any = 0;
            for (int r = 0; r < ZSD_R; ++r) {
                d[r] = r < rows ? L[(r0 + r) * sr + t * sc] : 0.0f;
                any |= d[r] != 0.0f;
            }
            idx[c] = t;
            c += any;
        }
    }
    j->cnt[b] = c;
}

/* Whether rows t0 .. t1-1 of B hold an inf or a NaN (exponent bits all 1):
   0 * inf is NaN in the dense product, and skipping the zeros would drop
   it, so then the GEMM runs instead. */
static int zsd_nonfinite(const zsd_job *j, int t0, int t1) {
    unsigned int bad = 0;
    for (int t = t0; t < t1; ++t) {
        const float *row = j->B + t * j->ldb;
        for (int i = 0; i < j->n; ++i) {
            unsigned int bits;
            memcpy(&bits, row + i, sizeof bits);
            bad |= (bits & 0x7f800000u) == 0x7f800000u;
        }
    }
    return bad != 0;
}

/* Rows of block b, columns c0 .. c0+w-1 (at most one tile), reading B's
   rows in place; a partial tile (the last, w < ZSD_TW) reads them from
   `tail`, where they are padded to whole vectors. */
static void zsd_tile(const zsd_job *j, int b, int c0, int w) {
    const int r0 = b * ZSD_R, rows = j->m - r0 < ZSD_R ? j->m - r0 : ZSD_R, c = j->cnt[b];
    const int *idx = j->idx + (long)b * j->k;
    const float *val = j->val + (long)b * j->k * ZSD_R;
    const float *B = w < ZSD_TW ? j->tail : j->B + c0;
    const long ldb = w < ZSD_TW ? ZSD_TW : j->ldb;
    zsd_v a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0},
          a30 = {0}, a31 = {0}, a40 = {0}, a41 = {0}, a50 = {0}, a51 = {0};
    for (int t = 0; t < c; ++t) {
        const float *bp = B + idx[t] * ldb;
        if (t + ZSD_AHEAD < c) {  /* a row listed further on, into the cache */
            __builtin_prefetch(B + idx[t + ZSD_AHEAD] * ldb);
            __builtin_prefetch(B + idx[t + ZSD_AHEAD] * ldb + ZSD_TW - 1);
        }
        const zsd_v b0 = *(const zsd_v *)bp, b1 = *(const zsd_v *)(bp + ZSD_VW);
        const float *v = val + (long)t * ZSD_R;
        a00 += v[0] * b0; a01 += v[0] * b1; a10 += v[1] * b0; a11 += v[1] * b1;
        a20 += v[2] * b0; a21 += v[2] * b1; a30 += v[3] * b0; a31 += v[3] * b1;
        a40 += v[4] * b0; a41 += v[4] * b1; a50 += v[5] * b0; a51 += v[5] * b1;
    }
    const zsd_v acc[ZSD_R][2] = {{a00, a01}, {a10, a11}, {a20, a21},
                                 {a30, a31}, {a40, a41}, {a50, a51}};
    for (int r = 0; r < rows; ++r) {
        float *o = j->out + (r0 + r) * j->ldo + c0;
        if (w == ZSD_TW) {
            *(zsd_v *)o = acc[r][0];
            *(zsd_v *)(o + ZSD_VW) = acc[r][1];
        } else {
            memcpy(o, &acc[r][0], w * sizeof(float));
        }
    }
}

/* Thread `part` of `parts`: its share of B's rows checked, then its share
   of the blocks listed and multiplied, a panel of B's columns at a time
   (no barrier: the parts write disjoint rows of the output). */
static void *zsd_part(void *arg) {
    zsd_job *j = (zsd_job *)arg;
    const int nb = (j->m + ZSD_R - 1) / ZSD_R;
    const int b0 = nb * j->part / j->parts, b1 = nb * (j->part + 1) / j->parts;
    j->nonfinite = zsd_nonfinite(j, j->k * j->part / j->parts, j->k * (j->part + 1) / j->parts);
    for (int b = b0; b < b1; ++b) zsd_list(j, b);
    for (int p0 = 0; p0 < j->n; p0 += ZSD_PW)
        for (int b = b0; b < b1; ++b)
            for (int c0 = p0; c0 < p0 + ZSD_PW && c0 < j->n; c0 += ZSD_TW)
                zsd_tile(j, b, c0, j->n - c0 < ZSD_TW ? j->n - c0 : ZSD_TW);
    return NULL;
}

/* Runs fn on `parts` copies of job (part 0 on this thread). */
static void zsd_run(void *(*fn)(void *), zsd_job *jobs, int parts) {
    pthread_t th[64];
    int started[64];
    for (int i = 1; i < parts; ++i)
        started[i] = pthread_create(&th[i], NULL, fn, &jobs[i]) == 0;
    fn(&jobs[0]);
    for (int i = 1; i < parts; ++i) {
        if (started[i]) pthread_join(th[i], NULL);
        else fn(&jobs[i]);
    }
}

/* OpenBLAS's rule for its thread count (read when it loads), so that both use
   the same cores: the first positive OPENBLAS_NUM_THREADS, GOTO_NUM_THREADS or
   OMP_NUM_THREADS, at most the CPUs this process may run on. */
static int zsd_threads(void) {
    static int n = 0;
    if (n == 0) {
        const char *names[] = {"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"};
        cpu_set_t set;
        int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
        int wanted = 0;
        for (int i = 0; i < 3 && wanted <= 0; ++i) {
            const char *s = getenv(names[i]);
            if (s && *s) wanted = atoi(s);
        }
        n = wanted > 0 && wanted < cpus ? wanted : cpus;
        if (n < 1) n = 1;
        if (n > 64) n = 64;
    }
    return n;
}

/* out = L . B, skipping L's zeros. Returns 0 when the dense GEMM should
   run instead (out may then hold anything: the GEMM overwrites it). */
static int zsd_dot(const float *L, long sr, long sc, int m, int k,
                   const float *B, long ldb, int n, float *out, long ldo) {
    zsd_job base;
    const int nb = (m + ZSD_R - 1) / ZSD_R;
    /* Mostly non-zero (weights, not data): the GEMM, before any listing. */
    long nonzero = 0;
    if (labs(sc) <= labs(sr)) {  /* in memory order */
        for (int i = 0; i < m; ++i)
            for (int t = 0; t < k; ++t) nonzero += L[i * sr + t * sc] != 0.0f;
    } else {
        for (int t = 0; t < k; ++t)
            for (int i = 0; i < m; ++i) nonzero += L[i * sr + t * sc] != 0.0f;
    }
    if (2 * nonzero > (long)m * k) return 0;
    int parts = zsd_threads();
    if (parts > nb) parts = nb;
    if (parts < 1) parts = 1;
    base.L = L; base.sr = sr; base.sc = sc; base.m = m; base.k = k;
    base.B = B; base.ldb = ldb; base.n = n; base.out = out; base.ldo = ldo;
    base.idx = (int *)malloc(sizeof(int) * ((size_t)nb * k + 1));
    base.val = (float *)malloc(sizeof(float) * ((size_t)nb * k * ZSD_R + 1));
    base.cnt = (int *)malloc(sizeof(int) * (size_t)nb);
    const int c0 = n / ZSD_TW * ZSD_TW, w = n - c0;  /* the partial tile, if any */
    float *tail = (float *)calloc((size_t)k * ZSD_TW + 1, sizeof(float));
    base.tail = tail;
    int ok = base.idx && base.val && base.cnt && tail;
    if (ok) {
        zsd_job jobs[64];
        for (int t = 0; w > 0 && t < k; ++t)
            memcpy(tail + (long)t * ZSD_TW, B + t * ldb + c0, sizeof(float) * (size_t)w);
        for (int i = 0; i < parts; ++i) {
            jobs[i] = base;
            jobs[i].part = i;
            jobs[i].parts = parts;
        }
        zsd_run(zsd_part, jobs, parts);
        for (int i = 0; i < parts; ++i) ok = ok && !jobs[i].nonfinite;
    }
    free(base.idx);
    free(base.val);
    free(base.cnt);
    free(tail);
    return ok;
}
"""


class ZeroSkippingDot22(Dot22):
    """Dot22 that skips the zeros of its left operand (see the module docstring).

    Same inputs, output and gradient as Dot22; perform() is numpy's dot."""

    def c_support_code(self):
        return Dot22.c_support_code(self) + SUPPORT_CODE

    def c_libraries(self):
        return Dot22.c_libraries(self) + ["pthread"]

    def c_compile_args(self):
        # No fused multiply-add: the same bits on every CPU (module docstring).
        return Dot22.c_compile_args(self) + ["-ffp-contract=off"]

    def c_code(self, node, name, inputs, outputs, sub):
        x, y = inputs
        z, = outputs
        fail = sub["fail"]
        dense = Dot22.c_code(self, node, name, inputs, outputs, sub)
        if node.inputs[0].dtype != "float32":
            return dense
        return """
        {
            int zsd_done = 0;
            PyArrayObject *zsd_x = %(x)s, *zsd_y = %(y)s;
            const npy_intp m = PyArray_DIMS(zsd_x)[0], k = PyArray_DIMS(zsd_x)[1];
            const npy_intp n = PyArray_DIMS(zsd_y)[1];
            if (PyArray_TYPE(zsd_x) == NPY_FLOAT32 && PyArray_TYPE(zsd_y) == NPY_FLOAT32
                && PyArray_DIMS(zsd_y)[0] == k && m > 0 && k > 0 && n > 0
                && m < (1 << 30) && k < (1 << 30) && n < (1 << 30)
                && PyArray_STRIDES(zsd_x)[0] %% 4 == 0 && PyArray_STRIDES(zsd_x)[1] %% 4 == 0
                && PyArray_STRIDES(zsd_y)[1] == 4 && PyArray_STRIDES(zsd_y)[0] %% 4 == 0) {
                if (%(z)s == NULL || !PyArray_IS_C_CONTIGUOUS(%(z)s)
                    || PyArray_TYPE(%(z)s) != NPY_FLOAT32
                    || PyArray_DIMS(%(z)s)[0] != m || PyArray_DIMS(%(z)s)[1] != n) {
                    npy_intp dims[2] = {m, n};
                    Py_XDECREF(%(z)s);
                    %(z)s = (PyArrayObject*)PyArray_EMPTY(2, dims, NPY_FLOAT32, 0);
                    if (!%(z)s) {
                        PyErr_SetString(PyExc_MemoryError, "ZeroSkippingDot22: no memory for the output");
                        %(fail)s
                    }
                }
                zsd_done = zsd_dot((const float*)PyArray_DATA(zsd_x),
                                   PyArray_STRIDES(zsd_x)[0] / 4, PyArray_STRIDES(zsd_x)[1] / 4,
                                   (int)m, (int)k,
                                   (const float*)PyArray_DATA(zsd_y), PyArray_STRIDES(zsd_y)[0] / 4,
                                   (int)n, (float*)PyArray_DATA(%(z)s), n);
            }
            if (!zsd_done) {
                %(dense)s
            }
        }
        """ % locals()

    def c_code_cache_version(self):
        dense = Dot22.c_code_cache_version(self)
        return (8,) + dense if dense else dense


zero_skipping_dot22 = ZeroSkippingDot22()


def is_data(var):
    """Whether var is a function input other than a shared variable (the data
    fed at each call), seen through reshapes and transposes."""
    while var.owner is not None:
        if not isinstance(var.owner.op, (Reshape, DimShuffle)):
            return False
        var = var.owner.inputs[0]
    return not isinstance(var, (SharedVariable, gof.Constant))


@local_optimizer([Dot22])
def local_zero_skipping_dot22(node):
    if (type(node.op) is Dot22
            and node.inputs[0].dtype == "float32" and is_data(node.inputs[0])):
        return [zero_skipping_dot22(*node.inputs)]
    return False


# After the BLAS rewrites (1.7) have made the Dot22 nodes and fusion (49), before
# the in-place rewrites (75). Registered under its name only: speedups.mode()
# includes it by that name.
if "zero_skipping_dot22" not in theano.compile.optdb:
    theano.compile.optdb.register("zero_skipping_dot22",
                                  in2out(local_zero_skipping_dot22), 49.6)
