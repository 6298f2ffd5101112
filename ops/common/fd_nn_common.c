/* Shared checks and staging for the nn ops, the SIMD switch, and the
 * machine probes (peak FMA rate, copy bandwidth) the benchmark compares to. */

#define _DEFAULT_SOURCE /* syscall */
#include <omp.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ops/common/fd_nn_common.h"
#include "runtime/core/fd_runtime.h"

static int simd_off; /* set by tests to exercise the plain-C kernels */

bool fd_nn_simd_enabled(void)
{
    const fd_cpu_features *c = fd_cpu();
    return !simd_off && c->avx2 && c->fma;
}

void fd_nn_set_simd(bool on) { simd_off = !on; }

static int avx512_off; /* set by tests to exercise the AVX2 kernels on an AVX-512 CPU */

bool fd_nn_avx512_enabled(void)
{
    return fd_nn_simd_enabled() && !avx512_off && fd_cpu()->avx512f;
}

void fd_nn_set_avx512(bool on) { avx512_off = !on; }

static int amx_off;              /* set by tests to exercise the f32 kernels on an AMX CPU */
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static bool amx_granted;

/* Linux hands out the AMX tile state (8 KiB per thread) only to a process that asks. */
static void request_amx(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    amx_granted = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#endif
}

bool fd_nn_amx_enabled(void)
{
    const fd_cpu_features *c = fd_cpu();
    if (amx_off || !fd_nn_avx512_enabled() || !c->amx_bf16 || !c->avx512bf16) return false;
    pthread_once(&amx_once, request_amx);
    return amx_granted;
}

void fd_nn_set_amx(bool on) { amx_off = !on; }

int fd_nn_check_float(const char *op, const char *arg, const fd_tensor *t)
{
    if (!fd_dtype_is_float(t->dtype))
        return fd_fail("%s: %s %s has dtype %s, expected a float dtype (f32, f64, bf16, f16)", op, arg,
                       FD_SHAPE_STR(t), fd_dtype_name(t->dtype));
    return FD_OK;
}

int fd_nn_check_ndim(const char *op, const char *arg, const fd_tensor *t, int ndim)
{
    if (t->ndim != ndim)
        return fd_fail("%s: %s %s has %d dims, expected %d", op, arg, FD_SHAPE_STR(t), t->ndim, ndim);
    return FD_OK;
}

int fd_nn_check_same_shape(const char *op, const char *an, const fd_tensor *a, const char *bn, const fd_tensor *b)
{
    bool same = a->ndim == b->ndim;
    for (int i = 0; same && i < a->ndim; i++) same = a->shape[i] == b->shape[i];
    if (!same) return fd_fail("%s: %s %s vs %s %s: shapes differ", op, an, FD_SHAPE_STR(a), bn, FD_SHAPE_STR(b));
    return FD_OK;
}

int fd_nn_check_vec(const char *op, const char *arg, const fd_tensor *t, int64_t n)
{
    if (!t) return FD_OK;
    if (fd_nn_check_float(op, arg, t)) return FD_ERR;
    if (t->ndim != 1 || t->shape[0] != n)
        return fd_fail("%s: %s %s, expected [%lld]", op, arg, FD_SHAPE_STR(t), (long long)n);
    return FD_OK;
}

int fd_nn_check_nonempty(const char *op, const char *arg, const fd_tensor *t)
{
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] <= 0) return fd_fail("%s: %s %s has a zero-size dim %d", op, arg, FD_SHAPE_STR(t), i);
    return FD_OK;
}

double *fd_nn_stage_f64(fd_tensor *tmp, const fd_tensor *t)
{
    if (fd_tensor_to_dtype(tmp, t, FD_F64)) return NULL;
    return fd_tensor_data(tmp);
}

float *fd_nn_stage_f32(fd_tensor *tmp, const fd_tensor *t)
{
    int rc = t->dtype == FD_F32 ? fd_tensor_contiguous(tmp, t) : fd_tensor_to_dtype(tmp, t, FD_F32);
    return rc ? NULL : fd_tensor_data(tmp);
}

float *fd_nn_stage_and_alloc(fd_tensor *tmp, const fd_tensor *in, fd_tensor *out, int ndim, const int64_t *shape,
                             bool zero, float **out_data)
{
    float *p = fd_nn_stage_f32(tmp, in);
    if (!p || (zero ? fd_tensor_zeros(out, FD_F32, ndim, shape) : fd_tensor_empty(out, FD_F32, ndim, shape))) {
        fd_nn_release(tmp, out, NULL, NULL, NULL, NULL);
        return NULL;
    }
    *out_data = fd_tensor_data(out);
    return p;
}

int fd_nn_to_dtype_inplace(fd_tensor *t, fd_dtype dt)
{
    if (t->dtype == dt) return FD_OK;
    fd_tensor c = {0};
    int rc = fd_tensor_to_dtype(&c, t, dt);
    fd_tensor_release(t);
    if (rc) return FD_ERR;
    *t = c;
    return FD_OK;
}

void fd_nn_release(fd_tensor *a, fd_tensor *b, fd_tensor *c, fd_tensor *d, fd_tensor *e, fd_tensor *f)
{
    fd_tensor *all[6] = {a, b, c, d, e, f};
    for (int i = 0; i < 6; i++)
        if (all[i]) fd_tensor_release(all[i]);
}

/* ---- probes ----------------------------------------------------------- */

double fd_nn_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double fd_nn_measure_copy_gbs(int64_t nbytes, int reps)
{
    int64_t n = nbytes / 8; /* two float arrays of nbytes/2 each: read one, write the other */
    if (n < 1024) n = 1024;
    fd_tensor a = {0}, b = {0};
    int64_t shape[1] = {n};
    if (fd_tensor_zeros(&a, FD_F32, 1, shape) || fd_tensor_zeros(&b, FD_F32, 1, shape)) {
        fd_nn_release(&a, &b, NULL, NULL, NULL, NULL);
        return 0;
    }
    float *pa = fd_tensor_data(&a), *pb = fd_tensor_data(&b);
    if (reps < 1) reps = 1;
    if (reps > 63) reps = 63;
    double t[64];
    for (int r = 0; r < reps + 1; r++) {
        double t0 = fd_nn_now();
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) pb[i] = pa[i] * 1.0001f + 1.0f;
        if (r > 0) t[r - 1] = fd_nn_now() - t0;
    }
    /* the median, like the benchmark's figures (a best-of flatters a shared machine) */
    for (int i = 1; i < reps; i++)
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double s = t[j];
            t[j] = t[j - 1], t[j - 1] = s;
        }
    double best = 8.0 * (double)n / t[reps / 2];
    fd_tensor_release(&a);
    fd_tensor_release(&b);
    return best * 1e-9;
}
