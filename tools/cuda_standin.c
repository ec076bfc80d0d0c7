/* A stand-in for the NVIDIA driver (libcuda.so.1) and cuBLAS, and a recorder in
 * front of NVRTC, so that Theano's gpuarray backend (libgpuarray 0.7.6) can
 * build and call the tutorial's functions on a CUDA context on a machine
 * without a GPU. Built and used by tools/cuda_kernels.py (docs/gpu.md).
 *
 * What is real: libgpuarray and pygpu, Theano's code generation and its C
 * modules, and NVRTC, which compiles every kernel with libgpuarray's own
 * preamble and options. What stands in: the device. Memory is host memory
 * (zeroed), copies are memcpy, a kernel launch and a cuBLAS call check their
 * arguments against the limits of the device described below and compute
 * nothing. The driver's own steps that a GPU would do are checked as far as
 * they can be without one: the PTX's ISA version against the driver's CUDA
 * version (CUDA_ERROR_UNSUPPORTED_PTX_VERSION on a real driver), its target
 * against the device's compute capability, the kernel's name in the PTX.
 *
 * Environment: FLM_STANDIN_CC (compute capability, e.g. 90), FLM_STANDIN_CUDA
 * (the driver's CUDA version, e.g. 13000), FLM_STANDIN_NVRTC (the real
 * libnvrtc.so.N the recorder forwards to), FLM_STANDIN_RECORD (a folder: each
 * program NVRTC compiles is written there as NNNN.cu with NNNN.txt holding
 * its options, result and log; the headers as given; launches.txt).
 *
 * One library: installed under the names libcuda.so.1, libcublas.so.13,
 * libcublasLt.so.13 and (in a folder of its own) libnvrtc.so.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int CUresult;
typedef unsigned long long CUdeviceptr;
typedef int CUdevice;

enum {
  SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, INVALID_DEVICE = 101,
  INVALID_IMAGE = 200, NO_BINARY_FOR_GPU = 209, INVALID_PTX = 218,
  UNSUPPORTED_PTX_VERSION = 222, NOT_FOUND = 500, NOT_SUPPORTED = 801
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int env_int(const char *name, int fallback) {
  const char *v = getenv(name);
  return v && *v ? atoi(v) : fallback;
}

static void record_line(const char *file, const char *fmt, const char *a, long b) {
  const char *dir = getenv("FLM_STANDIN_RECORD");
  char path[4096];
  FILE *f;
  if (!dir) return;
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  pthread_mutex_lock(&lock);
  if ((f = fopen(path, "a")) != NULL) {
    fprintf(f, fmt, a, b);
    fclose(f);
  }
  pthread_mutex_unlock(&lock);
}

/* --- The device: an H100/H200-class GPU's limits --------------------------- */
/* CU_DEVICE_ATTRIBUTE_* numbers of cuda.h; what libgpuarray 0.7.6 and pygpu
 * ask for, with the values an H100 SXM or H200 reports. */
static int attribute(int attrib) {
  switch (attrib) {
    case 1: return 1024;        /* MAX_THREADS_PER_BLOCK */
    case 2: return 1024;        /* MAX_BLOCK_DIM_X */
    case 3: return 1024;        /* MAX_BLOCK_DIM_Y */
    case 4: return 64;          /* MAX_BLOCK_DIM_Z */
    case 5: return 2147483647;  /* MAX_GRID_DIM_X */
    case 6: return 65535;       /* MAX_GRID_DIM_Y */
    case 7: return 65535;       /* MAX_GRID_DIM_Z */
    case 8: return 49152;       /* MAX_SHARED_MEMORY_PER_BLOCK (without opt-in) */
    case 9: return 65536;       /* TOTAL_CONSTANT_MEMORY */
    case 10: return 32;         /* WARP_SIZE */
    case 12: return 65536;      /* MAX_REGISTERS_PER_BLOCK */
    case 16: return 132;        /* MULTIPROCESSOR_COUNT */
    case 39: return 2048;       /* MAX_THREADS_PER_MULTIPROCESSOR */
    case 41: return 1;          /* UNIFIED_ADDRESSING */
    case 75: return env_int("FLM_STANDIN_CC", 90) / 10;  /* COMPUTE_CAPABILITY_MAJOR */
    case 76: return env_int("FLM_STANDIN_CC", 90) % 10;  /* COMPUTE_CAPABILITY_MINOR */
    case 81: return 233472;     /* MAX_SHARED_MEMORY_PER_MULTIPROCESSOR */
    default: return -1;
  }
}

CUresult cuInit(int flags) { (void)flags; return SUCCESS; }

/* NVRTC itself opens libcuda.so.1 and asks it for the driver's private tables
 * (cuGetExportTable, undocumented): there are none here. */
CUresult cuGetExportTable(const void **table, const void *id) {
  (void)id;
  *table = NULL;
  return NOT_FOUND;
}

CUresult cuDriverGetVersion(int *v) {
  *v = env_int("FLM_STANDIN_CUDA", 13000);
  return SUCCESS;
}

static const char *error_name(CUresult e) {
  switch (e) {
    case SUCCESS: return "CUDA_SUCCESS";
    case INVALID_VALUE: return "CUDA_ERROR_INVALID_VALUE";
    case OUT_OF_MEMORY: return "CUDA_ERROR_OUT_OF_MEMORY";
    case INVALID_DEVICE: return "CUDA_ERROR_INVALID_DEVICE";
    case INVALID_IMAGE: return "CUDA_ERROR_INVALID_IMAGE";
    case NO_BINARY_FOR_GPU: return "CUDA_ERROR_NO_BINARY_FOR_GPU";
    case INVALID_PTX: return "CUDA_ERROR_INVALID_PTX";
    case UNSUPPORTED_PTX_VERSION: return "CUDA_ERROR_UNSUPPORTED_PTX_VERSION";
    case NOT_FOUND: return "CUDA_ERROR_NOT_FOUND";
    case NOT_SUPPORTED: return "CUDA_ERROR_NOT_SUPPORTED";
    default: return "CUDA_ERROR_UNKNOWN";
  }
}
CUresult cuGetErrorName(CUresult e, const char **s) { *s = error_name(e); return SUCCESS; }
CUresult cuGetErrorString(CUresult e, const char **s) { *s = error_name(e); return SUCCESS; }

CUresult cuDeviceGet(CUdevice *d, int ordinal) {
  if (ordinal != 0) return INVALID_DEVICE;
  *d = 0;
  return SUCCESS;
}
CUresult cuDeviceGetCount(int *n) { *n = 1; return SUCCESS; }
CUresult cuDeviceGetName(char *name, int len, CUdevice d) {
  (void)d;
  snprintf(name, len, "CUDA stand-in, compute_%d (no GPU)", env_int("FLM_STANDIN_CC", 90));
  return SUCCESS;
}
CUresult cuDeviceGetAttribute(int *pi, int attrib, CUdevice d) {
  (void)d;
  *pi = attribute(attrib);
  if (*pi < 0) {
    /* Said, not guessed: a value the stand-in does not know. */
    fprintf(stderr, "cuda stand-in: device attribute %d is not known\n", attrib);
    return INVALID_VALUE;
  }
  return SUCCESS;
}
CUresult cuDeviceGetPCIBusId(char *id, int len, CUdevice d) {
  (void)d;
  snprintf(id, len, "0000:00:00.0");
  return SUCCESS;
}

/* --- Contexts, streams, events: tokens ------------------------------------- */
static char context_token;
CUresult cuDevicePrimaryCtxGetState(CUdevice d, unsigned *flags, int *active) {
  (void)d; *flags = 0; *active = 0; return SUCCESS;
}
CUresult cuDevicePrimaryCtxSetFlags(CUdevice d, unsigned flags) { (void)d; (void)flags; return SUCCESS; }
CUresult cuDevicePrimaryCtxRelease(CUdevice d) { (void)d; return SUCCESS; }
CUresult cuDevicePrimaryCtxRetain(void **ctx, CUdevice d) { (void)d; *ctx = &context_token; return SUCCESS; }
CUresult cuCtxGetDevice(CUdevice *d) { *d = 0; return SUCCESS; }
CUresult cuCtxPushCurrent_v2(void *ctx) { (void)ctx; return SUCCESS; }
CUresult cuCtxPopCurrent_v2(void **ctx) { if (ctx) *ctx = &context_token; return SUCCESS; }

CUresult cuStreamCreate(void **s, unsigned flags) { (void)flags; *s = malloc(1); return SUCCESS; }
CUresult cuStreamWaitEvent(void *s, void *e, unsigned flags) { (void)s; (void)e; (void)flags; return SUCCESS; }
CUresult cuStreamSynchronize(void *s) { (void)s; return SUCCESS; }
CUresult cuStreamDestroy_v2(void *s) { free(s); return SUCCESS; }
CUresult cuEventCreate(void **e, unsigned flags) { (void)flags; *e = malloc(1); return SUCCESS; }
CUresult cuEventRecord(void *e, void *s) { (void)e; (void)s; return SUCCESS; }
CUresult cuEventSynchronize(void *e) { (void)e; return SUCCESS; }
CUresult cuEventDestroy_v2(void *e) { free(e); return SUCCESS; }

/* --- Memory: host memory, zeroed ------------------------------------------- */
#define GIB (1024ULL * 1024 * 1024)
CUresult cuMemGetInfo_v2(size_t *free_, size_t *total) { *free_ = *total = 141 * GIB; return SUCCESS; }
CUresult cuMemAlloc_v2(CUdeviceptr *p, size_t n) {
  void *m = NULL;
  if (posix_memalign(&m, 256, n ? n : 1) != 0) return OUT_OF_MEMORY;
  memset(m, 0, n);
  *p = (CUdeviceptr)m;
  return SUCCESS;
}
CUresult cuMemFree_v2(CUdeviceptr p) { free((void *)p); return SUCCESS; }
CUresult cuMemAllocHost_v2(void **p, size_t n) { *p = calloc(1, n ? n : 1); return *p ? SUCCESS : OUT_OF_MEMORY; }
CUresult cuMemFreeHost(void *p) { free(p); return SUCCESS; }
CUresult cuMemcpyHtoD_v2(CUdeviceptr d, const void *s, size_t n) { memcpy((void *)d, s, n); return SUCCESS; }
CUresult cuMemcpyHtoDAsync_v2(CUdeviceptr d, const void *s, size_t n, void *st) {
  (void)st; memcpy((void *)d, s, n); return SUCCESS;
}
CUresult cuMemcpyDtoHAsync_v2(void *d, CUdeviceptr s, size_t n, void *st) {
  (void)st; memcpy(d, (void *)s, n); return SUCCESS;
}
CUresult cuMemcpyDtoDAsync_v2(CUdeviceptr d, CUdeviceptr s, size_t n, void *st) {
  (void)st; memmove((void *)d, (void *)s, n); return SUCCESS;
}
CUresult cuMemcpyPeerAsync(CUdeviceptr d, void *dc, CUdeviceptr s, void *sc, size_t n, void *st) {
  (void)dc; (void)sc; (void)st; memmove((void *)d, (void *)s, n); return SUCCESS;
}
CUresult cuMemsetD8Async(CUdeviceptr d, unsigned char c, size_t n, void *st) {
  (void)st; memset((void *)d, c, n); return SUCCESS;
}
CUresult cuIpcGetMemHandle(void *h, CUdeviceptr p) { (void)h; (void)p; return NOT_SUPPORTED; }
CUresult cuIpcOpenMemHandle(CUdeviceptr *p, char h[64], unsigned flags) {
  (void)p; (void)h; (void)flags; return NOT_SUPPORTED;
}
CUresult cuIpcCloseMemHandle(CUdeviceptr p) { (void)p; return NOT_SUPPORTED; }

/* --- The JIT steps: what a driver checks of a PTX before it compiles it ----- */
/* The newest PTX ISA each CUDA release's driver loads (NVIDIA's PTX ISA notes). */
static int max_ptx_isa(int cuda) {
  int major = cuda / 1000, minor = cuda % 1000 / 10;
  if (major >= 13) return 90 + minor;
  if (major == 12) {
    static const int isa[] = {80, 81, 82, 83, 84, 85, 85, 85, 87, 88};
    return isa[minor < 10 ? minor : 9];
  }
  return major == 11 ? 70 + minor : 0;
}

/* 0, or the driver's error for this PTX on this device (said on stderr). */
static CUresult check_ptx(const char *ptx) {
  int major, minor, target, cuda = env_int("FLM_STANDIN_CUDA", 13000);
  int cc = env_int("FLM_STANDIN_CC", 90);
  const char *v = strstr(ptx, "\n.version "), *t = strstr(ptx, "\n.target sm_");
  if (!v || !t || sscanf(v, "\n.version %d.%d", &major, &minor) != 2 ||
      sscanf(t, "\n.target sm_%d", &target) != 1) {
    fprintf(stderr, "cuda stand-in: not a PTX module (no .version or .target)\n");
    return INVALID_PTX;
  }
  if (major * 10 + minor > max_ptx_isa(cuda)) {
    fprintf(stderr, "cuda stand-in: PTX ISA %d.%d is newer than CUDA %d.%d's driver loads\n",
            major, minor, cuda / 1000, cuda % 1000 / 10);
    return UNSUPPORTED_PTX_VERSION;
  }
  if (target > cc) {
    fprintf(stderr, "cuda stand-in: PTX for sm_%d cannot run on compute capability %d\n",
            target, cc);
    return NO_BINARY_FOR_GPU;
  }
  return SUCCESS;
}

struct link { char *ptx; size_t size; };
CUresult cuLinkCreate(unsigned n, int *opts, void **vals, struct link **st) {
  (void)n; (void)opts; (void)vals;
  *st = calloc(1, sizeof(struct link));
  return *st ? SUCCESS : OUT_OF_MEMORY;
}
CUresult cuLinkAddData(struct link *st, int type, void *data, size_t size, const char *name,
                       unsigned n, int *opts, void **vals) {
  CUresult r;
  (void)name; (void)n; (void)opts; (void)vals;
  if (type != 1 /* CU_JIT_INPUT_PTX */) return INVALID_VALUE;
  if ((r = check_ptx((const char *)data)) != SUCCESS) return r;
  free(st->ptx);
  st->ptx = malloc(size + 1);
  memcpy(st->ptx, data, size);
  st->ptx[size] = 0;
  st->size = size + 1;
  return SUCCESS;
}
/* The "binary" is the PTX itself (which cuModuleLoadData also takes). */
CUresult cuLinkComplete(struct link *st, void **bin, size_t *size) {
  if (!st->ptx) return INVALID_VALUE;
  *bin = st->ptx;
  *size = st->size;
  return SUCCESS;
}
CUresult cuLinkDestroy(struct link *st) { free(st->ptx); free(st); return SUCCESS; }

struct module { char *ptx; };
struct function { char name[256]; };
CUresult cuModuleLoadData(struct module **m, const void *image) {
  CUresult r = check_ptx((const char *)image);
  if (r != SUCCESS) return r;
  *m = malloc(sizeof(struct module));
  (*m)->ptx = strdup((const char *)image);
  return SUCCESS;
}
CUresult cuModuleLoadDataEx(struct module **m, const void *image, unsigned n, int *o, void **v) {
  (void)n; (void)o; (void)v;
  return cuModuleLoadData(m, image);
}
CUresult cuModuleUnload(struct module *m) { free(m->ptx); free(m); return SUCCESS; }
/* A kernel is found as a real driver finds it: by its entry's name in the PTX. */
CUresult cuModuleGetFunction(struct function **f, struct module *m, const char *name) {
  char entry[300];
  const char *at;
  size_t len;
  snprintf(entry, sizeof(entry), ".entry %s", name);
  len = strlen(entry);
  for (at = strstr(m->ptx, entry); at; at = strstr(at + 1, entry))
    if (at[len] == '(' || at[len] == ' ' || at[len] == '\n' || at[len] == '\r') break;
  if (!at) return NOT_FOUND;
  *f = calloc(1, sizeof(struct function));
  snprintf((*f)->name, sizeof((*f)->name), "%s", name);
  return SUCCESS;
}
CUresult cuFuncGetAttribute(int *pi, int attrib, struct function *f) {
  (void)f;
  *pi = attrib == 0 ? 1024 : 0;  /* MAX_THREADS_PER_BLOCK; the others are sizes */
  return SUCCESS;
}

/* A launch checks its shape against the device's limits, records the kernel's
 * name and computes nothing. */
CUresult cuLaunchKernel(struct function *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                        unsigned by, unsigned bz, unsigned shmem, void *st, void **params,
                        void **extra) {
  (void)st; (void)params; (void)extra;
  if (!f || !gx || !gy || !gz || !bx || !by || !bz || gx > (unsigned)attribute(5) ||
      gy > (unsigned)attribute(6) || gz > (unsigned)attribute(7) || bx > (unsigned)attribute(2) ||
      by > (unsigned)attribute(3) || bz > (unsigned)attribute(4) ||
      (unsigned long)bx * by * bz > (unsigned long)attribute(1) || shmem > (unsigned)attribute(8)) {
    fprintf(stderr, "cuda stand-in: %s launched with grid (%u, %u, %u), block (%u, %u, %u), "
            "%u bytes of shared memory: beyond the device's limits\n",
            f ? f->name : "(no kernel)", gx, gy, gz, bx, by, bz, shmem);
    return INVALID_VALUE;
  }
  record_line("launches.txt", "%s %ld\n", f->name, (long)bx * by * bz);
  return SUCCESS;
}

/* --- cuBLAS: the argument checks of the calls libgpuarray makes -------------- */
enum { CUBLAS_SUCCESS = 0, CUBLAS_INVALID_VALUE = 7 };
static char cublas_token;
int cublasCreate_v2(void **h) { *h = &cublas_token; return CUBLAS_SUCCESS; }
int cublasDestroy_v2(void *h) { (void)h; return CUBLAS_SUCCESS; }
int cublasSetStream_v2(void *h, void *s) { (void)h; (void)s; return CUBLAS_SUCCESS; }
int cublasSetPointerMode_v2(void *h, int m) { (void)h; (void)m; return CUBLAS_SUCCESS; }
int cublasGetPointerMode_v2(void *h, int *m) { (void)h; *m = 0; return CUBLAS_SUCCESS; }
int cublasSetAtomicsMode(void *h, int m) { (void)h; (void)m; return CUBLAS_SUCCESS; }

static int max1(int a) { return a > 1 ? a : 1; }
/* cuBLAS's own checks of a GEMM (CUBLAS_STATUS_INVALID_VALUE otherwise). */
static int gemm(const char *name, int ta, int tb, int m, int n, int k, int lda, int ldb, int ldc,
                int batch) {
  if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < max1(ta == 0 ? m : k) ||
      ldb < max1(tb == 0 ? k : n) || ldc < max1(m)) {
    fprintf(stderr, "cuda stand-in: %s(m=%d, n=%d, k=%d, lda=%d, ldb=%d, ldc=%d): invalid\n",
            name, m, n, k, lda, ldb, ldc);
    return CUBLAS_INVALID_VALUE;
  }
  record_line("launches.txt", "%s %ld\n", name, (long)m * n * k);
  return CUBLAS_SUCCESS;
}
#define GEMM_ARGS void *h, int ta, int tb, int m, int n, int k, const void *alpha
int cublasSgemm_v2(GEMM_ARGS, const void *A, int lda, const void *B, int ldb, const void *beta,
                   void *C, int ldc) {
  return gemm("cublasSgemm", ta, tb, m, n, k, lda, ldb, ldc, 1);
}
int cublasDgemm_v2(GEMM_ARGS, const void *A, int lda, const void *B, int ldb, const void *beta,
                   void *C, int ldc) {
  return gemm("cublasDgemm", ta, tb, m, n, k, lda, ldb, ldc, 1);
}
int cublasSgemmEx(GEMM_ARGS, const void *A, int at, int lda, const void *B, int bt, int ldb,
                  const void *beta, void *C, int ct, int ldc) {
  return gemm("cublasSgemmEx", ta, tb, m, n, k, lda, ldb, ldc, 1);
}
int cublasGemmEx(GEMM_ARGS, const void *A, int at, int lda, const void *B, int bt, int ldb,
                 const void *beta, void *C, int ct, int ldc, int compute, int algo) {
  return gemm("cublasGemmEx", ta, tb, m, n, k, lda, ldb, ldc, 1);
}
int cublasSgemmBatched(GEMM_ARGS, const void **A, int lda, const void **B, int ldb,
                       const void *beta, void **C, int ldc, int batch) {
  return gemm("cublasSgemmBatched", ta, tb, m, n, k, lda, ldb, ldc, batch);
}
int cublasDgemmBatched(GEMM_ARGS, const void **A, int lda, const void **B, int ldb,
                       const void *beta, void **C, int ldc, int batch) {
  return gemm("cublasDgemmBatched", ta, tb, m, n, k, lda, ldb, ldc, batch);
}
#define STRIDED(fn) \
  int fn(GEMM_ARGS, const void *A, int lda, long long sa, const void *B, int ldb, long long sb, \
         const void *beta, void *C, int ldc, long long sc, int batch) { \
    return gemm(#fn, ta, tb, m, n, k, lda, ldb, ldc, batch); \
  }
STRIDED(cublasHgemmStridedBatched)
STRIDED(cublasSgemmStridedBatched)
STRIDED(cublasDgemmStridedBatched)
/* (cuBLAS's checks of a GEMV, a GER and a DOT: sizes and increments.) */
static int vector_op(const char *name, int m, int n, int lda, int incx, int incy) {
  if (m < 0 || n < 0 || lda < max1(m) || incx == 0 || incy == 0) {
    fprintf(stderr, "cuda stand-in: %s(m=%d, n=%d, lda=%d): invalid\n", name, m, n, lda);
    return CUBLAS_INVALID_VALUE;
  }
  record_line("launches.txt", "%s %ld\n", name, (long)m * n);
  return CUBLAS_SUCCESS;
}
int cublasSgemv_v2(void *h, int t, int m, int n, const void *al, const void *A, int lda,
                   const void *x, int incx, const void *be, void *y, int incy) {
  return vector_op("cublasSgemv", m, n, lda, incx, incy);
}
int cublasDgemv_v2(void *h, int t, int m, int n, const void *al, const void *A, int lda,
                   const void *x, int incx, const void *be, void *y, int incy) {
  return vector_op("cublasDgemv", m, n, lda, incx, incy);
}
int cublasSger_v2(void *h, int m, int n, const void *al, const void *x, int incx, const void *y,
                  int incy, void *A, int lda) {
  return vector_op("cublasSger", m, n, lda, incx, incy);
}
int cublasDger_v2(void *h, int m, int n, const void *al, const void *x, int incx, const void *y,
                  int incy, void *A, int lda) {
  return vector_op("cublasDger", m, n, lda, incx, incy);
}
int cublasSdot_v2(void *h, int n, const void *x, int incx, const void *y, int incy, void *r) {
  return vector_op("cublasSdot", 1, n, 1, incx, incy);
}
int cublasDdot_v2(void *h, int n, const void *x, int incx, const void *y, int incy, void *r) {
  return vector_op("cublasDdot", 1, n, 1, incx, incy);
}

/* --- NVRTC: the real one, each program recorded ----------------------------- */
typedef int (*create_fn)(void **, const char *, const char *, int, const char **, const char **);
typedef int (*compile_fn)(void *, int, const char **);
typedef int (*prog_fn)(void *, void *);
typedef int (*destroy_fn)(void **);
typedef const char *(*error_fn)(int);
static void *real_nvrtc;

static void *nvrtc_fn(const char *name) {
  const char *path = getenv("FLM_STANDIN_NVRTC");
  pthread_mutex_lock(&lock);
  if (!real_nvrtc && path) real_nvrtc = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  pthread_mutex_unlock(&lock);
  if (!real_nvrtc) {
    fprintf(stderr, "cuda stand-in: cannot open FLM_STANDIN_NVRTC=%s\n", path ? path : "");
    abort();
  }
  return dlsym(real_nvrtc, name);
}

#define MAX_PROGRAMS 4096
static void *programs[MAX_PROGRAMS];
static int nprograms;

static int program_number(void *prog) {
  int i;
  for (i = 0; i < nprograms; i++)
    if (programs[i] == prog) return i;
  return -1;
}

static void write_file(const char *name, const char *text) {
  const char *dir = getenv("FLM_STANDIN_RECORD");
  char path[4096];
  FILE *f;
  if (!dir) return;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  if ((f = fopen(path, "w")) != NULL) {
    fputs(text, f);
    fclose(f);
  }
}

int nvrtcCreateProgram(void **prog, const char *src, const char *name, int nh,
                       const char **headers, const char **names) {
  int r = ((create_fn)nvrtc_fn("nvrtcCreateProgram"))(prog, src, name, nh, headers, names);
  char file[64];
  int i, n;
  if (r != 0) return r;
  pthread_mutex_lock(&lock);
  n = nprograms < MAX_PROGRAMS ? nprograms++ : -1;
  if (n >= 0) programs[n] = *prog;
  pthread_mutex_unlock(&lock);
  if (n < 0) return r;
  snprintf(file, sizeof(file), "%04d.cu", n);
  write_file(file, src);
  for (i = 0; i < nh; i++)
    if (strchr(names[i], '/') == NULL) write_file(names[i], headers[i]);
  return r;
}

int nvrtcCompileProgram(void *prog, int nopts, const char **opts) {
  int r = ((compile_fn)nvrtc_fn("nvrtcCompileProgram"))(prog, nopts, opts);
  int i, n = program_number(prog);
  size_t size = 0;
  char file[64], *log, *text;
  size_t len = 64;
  if (n < 0) return r;
  ((prog_fn)nvrtc_fn("nvrtcGetProgramLogSize"))(prog, &size);
  log = calloc(1, size + 1);
  ((prog_fn)nvrtc_fn("nvrtcGetProgramLog"))(prog, log);
  for (i = 0; i < nopts; i++) len += strlen(opts[i]) + 1;
  text = calloc(1, len + size + 1);
  sprintf(text, "result %d\n", r);
  for (i = 0; i < nopts; i++) {
    strcat(text, "option ");
    strcat(text, opts[i]);
    strcat(text, "\n");
  }
  strcat(text, log);
  snprintf(file, sizeof(file), "%04d.txt", n);
  write_file(file, text);
  free(log);
  free(text);
  return r;
}

int nvrtcDestroyProgram(void **prog) {
  int i;
  pthread_mutex_lock(&lock);
  for (i = 0; i < nprograms; i++)
    if (programs[i] == *prog) programs[i] = NULL;
  pthread_mutex_unlock(&lock);
  return ((destroy_fn)nvrtc_fn("nvrtcDestroyProgram"))(prog);
}
int nvrtcGetProgramLog(void *p, char *log) { return ((prog_fn)nvrtc_fn("nvrtcGetProgramLog"))(p, log); }
int nvrtcGetProgramLogSize(void *p, size_t *n) {
  return ((prog_fn)nvrtc_fn("nvrtcGetProgramLogSize"))(p, n);
}
int nvrtcGetPTX(void *p, char *ptx) { return ((prog_fn)nvrtc_fn("nvrtcGetPTX"))(p, ptx); }
int nvrtcGetPTXSize(void *p, size_t *n) { return ((prog_fn)nvrtc_fn("nvrtcGetPTXSize"))(p, n); }
const char *nvrtcGetErrorString(int r) { return ((error_fn)nvrtc_fn("nvrtcGetErrorString"))(r); }
