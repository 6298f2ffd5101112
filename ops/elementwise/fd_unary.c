/* Unary elementwise ops (see fd_elementwise.h): math functions and clamp,
 * on the f32 fast path or the generic walk (the two paths: fd_elementwise.c). */
#include "ops/elementwise/fd_elementwise_walk.h"

#include <math.h>
#include <string.h>

/* ---- unary -------------------------------------------------------------- */

/* Ops with bounds (clamp) ride along as parameters of the unary core. */
#define FD_CLAMP FD_NUNOPS

static bool unop_needs_float(int op)
{
    switch (op) {
    case FD_EXP: case FD_LOG: case FD_SQRT: case FD_RSQRT: case FD_TANH: case FD_SIGMOID: case FD_SIN: case FD_COS:
        return true;
    default: return false;
    }
}

/* exp in plain arithmetic, so the loops around it vectorise (libm's expf
 * is a call per element). Cody-Waite reduction x = n ln2 + r, a degree-6
 * polynomial for e^r (Cephes' coefficients, ~1 ulp), and 2^n applied in two
 * halves so results down in the subnormals come out right. */
static inline float exp_f32(float x)
{
    float xc = x != x ? 0.0f : x;                       /* NaN: computed on 0, put back below */
    xc = xc < -104.0f ? -104.0f : xc > 89.0f ? 89.0f : xc;
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f + n * 2.12194440e-4f;
    float q = 1.9875691500e-4f;
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    float y = q * r * r + r + 1.0f;
    int32_t n1 = (int32_t)n / 2, n2 = (int32_t)n - n1;
    int32_t b1 = (n1 + 127) << 23, b2 = (n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    y = y * s1 * s2;
    y = x > 88.7228394f ? INFINITY : y;
    y = x < -103.97208f ? 0.0f : y;
    return x != x ? x : y;
}

static inline float sign_f32(float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : x; } /* keeps 0, -0, NaN */
static inline double sign_f64(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : x; }

__attribute__((target_clones("avx2", "default")))
static void unary_f32_run(int op, float *o, const float *a, int64_t n, float lo, float hi)
{
    switch (op) {
    case FD_NEG: for (int64_t i = 0; i < n; i++) o[i] = -a[i]; break;
    case FD_EXP: for (int64_t i = 0; i < n; i++) o[i] = exp_f32(a[i]); break;
    case FD_LOG: for (int64_t i = 0; i < n; i++) o[i] = logf(a[i]); break;
    case FD_SQRT: for (int64_t i = 0; i < n; i++) o[i] = sqrtf(a[i]); break;
    case FD_RSQRT: for (int64_t i = 0; i < n; i++) o[i] = 1.0f / sqrtf(a[i]); break;
    case FD_ABS: for (int64_t i = 0; i < n; i++) o[i] = fabsf(a[i]); break;
    case FD_TANH: for (int64_t i = 0; i < n; i++) o[i] = tanhf(a[i]); break;
    case FD_SIGMOID: for (int64_t i = 0; i < n; i++) o[i] = 1.0f / (1.0f + exp_f32(-a[i])); break;
    case FD_SIN: for (int64_t i = 0; i < n; i++) o[i] = sinf(a[i]); break;
    case FD_COS: for (int64_t i = 0; i < n; i++) o[i] = cosf(a[i]); break;
    case FD_FLOOR: for (int64_t i = 0; i < n; i++) o[i] = floorf(a[i]); break;
    case FD_ROUND: for (int64_t i = 0; i < n; i++) o[i] = nearbyintf(a[i]); break; /* half to even */
    case FD_SIGN: for (int64_t i = 0; i < n; i++) o[i] = sign_f32(a[i]); break;
    case FD_CLAMP: /* NaN inputs stay NaN; NaN bounds were replaced by +-inf */
        for (int64_t i = 0; i < n; i++) {
            float x = a[i] < lo ? lo : a[i];
            o[i] = x > hi ? hi : x;
        }
        break;
    default: break;
    }
}

static void unary_f64(int op, double *z, const double *x, int64_t n, double lo, double hi)
{
    switch (op) {
    case FD_NEG: for (int64_t i = 0; i < n; i++) z[i] = -x[i]; break;
    case FD_EXP: for (int64_t i = 0; i < n; i++) z[i] = exp(x[i]); break;
    case FD_LOG: for (int64_t i = 0; i < n; i++) z[i] = log(x[i]); break;
    case FD_SQRT: for (int64_t i = 0; i < n; i++) z[i] = sqrt(x[i]); break;
    case FD_RSQRT: for (int64_t i = 0; i < n; i++) z[i] = 1.0 / sqrt(x[i]); break;
    case FD_ABS: for (int64_t i = 0; i < n; i++) z[i] = fabs(x[i]); break;
    case FD_TANH: for (int64_t i = 0; i < n; i++) z[i] = tanh(x[i]); break;
    case FD_SIGMOID: for (int64_t i = 0; i < n; i++) z[i] = 1.0 / (1.0 + exp(-x[i])); break;
    case FD_SIN: for (int64_t i = 0; i < n; i++) z[i] = sin(x[i]); break;
    case FD_COS: for (int64_t i = 0; i < n; i++) z[i] = cos(x[i]); break;
    case FD_FLOOR: for (int64_t i = 0; i < n; i++) z[i] = floor(x[i]); break;
    case FD_ROUND: for (int64_t i = 0; i < n; i++) z[i] = nearbyint(x[i]); break;
    case FD_SIGN: for (int64_t i = 0; i < n; i++) z[i] = sign_f64(x[i]); break;
    case FD_CLAMP:
        for (int64_t i = 0; i < n; i++) {
            double v = x[i] < lo ? lo : x[i];
            z[i] = v > hi ? hi : v;
        }
        break;
    default: break;
    }
}

typedef struct unary_ctx {
    int op;
    fd_dtype dt[2];
    double lo, hi;
} unary_ctx;

static void unary_block(const void *vctx, char *const *p, const int64_t *s, int64_t n)
{
    const unary_ctx *c = vctx;
    double x[FD_BLOCK], z[FD_BLOCK];
    fd_load_block(x, p[1], s[1], c->dt[1], n);
    unary_f64(c->op, z, x, n, c->lo, c->hi);
    fd_store_block(p[0], s[0], c->dt[0], z, n);
}

static void unary_f32_block(const void *vctx, char *const *p, const int64_t *s, int64_t n)
{
    const unary_ctx *c = vctx;
    unary_f32_run(c->op, (float *)p[0], (const float *)p[1], n, (float)c->lo, (float)c->hi);
}

static int unary_core(fd_tensor *out, int op, const fd_tensor *a, fd_dtype rdt, double lo, double hi)
{
    const char *name = op == FD_CLAMP ? "clamp" : fd_unop_name(op);
    bool fresh = out->storage == NULL;
    const fd_tensor *ins[1] = {a};
    fd_tensor tmp[1] = {{0}};
    /* a new result keeps a's layout */
    if (fresh && fd_tensor_empty_in_order_of(out, rdt, a->ndim, a->shape, a)) return FD_ERR;
    if (fd_ew_prepare_out(name, out, rdt, a->ndim, a->shape, ins, tmp, 1)) {
        if (fresh) fd_tensor_release(out);
        return FD_ERR;
    }
    a = ins[0];
    /* walked in out's memory order: a borrowed header of a with its dims permuted */
    fd_tensor av = *a;
    int64_t so[FD_MAX_DIMS];
    memcpy(so, out->stride, sizeof(int64_t) * (size_t)a->ndim);
    int64_t *ord[2] = {so, av.stride};
    fd_ew_memory_order(a->ndim, av.shape, 2, ord);
    a = &av;
    const int64_t *strides[2] = {so, a->stride};
    bool fast = false;
    if (a->dtype == FD_F32 && out->dtype == FD_F32) {
        fd_walk w;
        fd_walk_init(&w, a->ndim, a->shape, 2, strides);
        fast = w.empty || (w.inner_stride[0] == 1 && w.inner_stride[1] == 1);
        if (fast && w.ndim > 1) { /* unit-stride runs of a view: walked */
            unary_ctx ctx = {op, {FD_F32, FD_F32}, lo, hi};
            walk_job job = {2, {fd_tensor_data(out), fd_tensor_data(a)}, {4, 4}, unary_f32_block, &ctx, FAST_COLS};
            fd_ew_parallel_walk(&job, a->ndim, a->shape, strides);
        } else if (fast && !w.empty) {
            float *o = fd_tensor_data(out);
            const float *x = fd_tensor_data(a);
            int64_t n = w.inner_len, tasks = (n + FAST_COLS - 1) / FAST_COLS;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
            for (int64_t t = 0; t < tasks; t++) {
                int64_t c = t * FAST_COLS, m = n - c < FAST_COLS ? n - c : FAST_COLS;
                unary_f32_run(op, o + c, x + c, m, (float)lo, (float)hi);
            }
        }
    }
    if (!fast) {
        unary_ctx ctx = {op, {out->dtype, a->dtype}, lo, hi};
        walk_job job = {2, {fd_tensor_data(out), fd_tensor_data(a)},
                        {fd_dtype_size(out->dtype), fd_dtype_size(a->dtype)}, unary_block, &ctx, 0};
        fd_ew_parallel_walk(&job, a->ndim, a->shape, strides);
    }
    if (!fresh) fd_tensor_bump_version(out);
    fd_tensor_release(&tmp[0]);
    return FD_OK;
}

int fd_unary(fd_tensor *out, fd_unop op, const fd_tensor *a)
{
    if ((unsigned)op >= FD_NUNOPS) return fd_fail("unary: invalid op code %d", (int)op);
    if (op == FD_NEG && a->dtype == FD_BOOL)
        return fd_fail("neg: a bool tensor cannot be negated (use t:eq(0) or logical ops)");
    fd_dtype rdt = unop_needs_float(op) && !fd_dtype_is_float(a->dtype) ? FD_F32 : a->dtype;
    return unary_core(out, op, a, rdt, 0, 0);
}

int fd_clamp(fd_tensor *out, const fd_tensor *a, double lo, double hi)
{
    if (!isnan(lo) && !isnan(hi) && lo > hi) return fd_fail("clamp: min %g is greater than max %g", lo, hi);
    fd_dtype rdt = a->dtype;
    bool fractional = (!isnan(lo) && lo != floor(lo)) || (!isnan(hi) && hi != floor(hi));
    if (!fd_dtype_is_float(a->dtype) && fractional) rdt = FD_F32;
    return unary_core(out, FD_CLAMP, a, rdt, isnan(lo) ? -INFINITY : lo, isnan(hi) ? INFINITY : hi);
}
