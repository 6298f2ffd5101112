/* Binary elementwise ops (see fd_elementwise.h): arithmetic and
 * comparisons, broadcasting, on the f32 fast path or the generic walk (the
 * two paths: fd_elementwise.c). */
#include "ops/elementwise/fd_elementwise_walk.h"

#include <math.h>

/* ---- binary: the f32 fast path ------------------------------------------ */

enum { VV, VS, SV }; /* which operands advance: both, only a, only b */

/* One loop per op and stride mode; EXPR reads x (from a) and y (from b). */
#define RUN3(EXPR)                                                              \
    do {                                                                        \
        if (mode == VV) {                                                       \
            for (int64_t i = 0; i < n; i++) { float x = a[i], y = b[i]; o[i] = (EXPR); } \
        } else if (mode == VS) {                                                \
            float y = b[0];                                                     \
            for (int64_t i = 0; i < n; i++) { float x = a[i]; o[i] = (EXPR); }  \
        } else {                                                                \
            float x = a[0];                                                     \
            for (int64_t i = 0; i < n; i++) { float y = b[i]; o[i] = (EXPR); }  \
        }                                                                       \
    } while (0)

static inline float remainder_f32(float x, float y)
{
    float r = fmodf(x, y);
    return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r; /* the sign of the divisor, as torch */
}

__attribute__((target_clones("avx2", "default")))
static void binary_f32_run(fd_binop op, float *o, const float *a, const float *b, int64_t n, int mode)
{
    switch (op) {
    case FD_ADD: RUN3(x + y); break;
    case FD_SUB: RUN3(x - y); break;
    case FD_MUL: RUN3(x * y); break;
    case FD_DIV: RUN3(x / y); break;
    case FD_POW: RUN3(powf(x, y)); break;
    case FD_MAXIMUM: RUN3((x != x || x > y) ? x : y); break; /* NaN wins, as torch */
    case FD_MINIMUM: RUN3((x != x || x < y) ? x : y); break;
    case FD_REMAINDER: RUN3(remainder_f32(x, y)); break;
    default: break; /* comparisons never come here */
    }
}

/* Comparisons of f32 into bool (masks), the same way. */
__attribute__((target_clones("avx2", "default")))
static void compare_f32_run(fd_binop op, uint8_t *o, const float *a, const float *b, int64_t n, int mode)
{
    switch (op) {
    case FD_EQ: RUN3(x == y); break;
    case FD_NE: RUN3(x != y); break;
    case FD_LT: RUN3(x < y); break;
    case FD_LE: RUN3(x <= y); break;
    case FD_GT: RUN3(x > y); break;
    case FD_GE: RUN3(x >= y); break;
    default: break;
    }
}

/* Either kernel by op; o is f32 for arithmetic, bool for comparisons. */
static void f32_run(fd_binop op, char *o, const float *a, const float *b, int64_t n, int mode)
{
    if (fd_binop_is_comparison(op)) compare_f32_run(op, (uint8_t *)o, a, b, n, mode);
    else binary_f32_run(op, (float *)o, a, b, n, mode);
}

/* The fast kernel as a parallel_walk block (runs with unit or zero strides). */
static void binary_f32_block(const void *ctx, char *const *p, const int64_t *s, int64_t n)
{
    f32_run(*(const fd_binop *)ctx, p[0], (const float *)p[1], (const float *)p[2], n,
            s[1] && s[2] ? VV : s[1] ? VS : SV);
}

/* Returns false when the layout does not suit the fast path (f32 operands,
 * an f32 output, or bool for comparisons). */
static bool binary_f32_fast(fd_binop op, fd_tensor *out, const fd_tensor *a, const int64_t *sa,
                            const fd_tensor *b, const int64_t *sb)
{
    const int64_t *strides[3] = {out->stride, sa, sb};
    fd_walk w;
    fd_walk_init(&w, out->ndim, out->shape, 3, strides);
    if (w.empty) return true;
    int64_t ia = w.inner_stride[1], ib = w.inner_stride[2];
    size_t eo = fd_dtype_size(out->dtype);
    if (w.inner_stride[0] != 1 || (ia != 0 && ia != 1) || (ib != 0 && ib != 1) || (!ia && !ib))
        return false;
    if (w.ndim > 2) { /* e.g. [B, C, H, W] * [1, C, 1, 1]: unit-stride runs, walked */
        walk_job job = {3, {(char *)fd_tensor_data(out), fd_tensor_data(a), fd_tensor_data(b)}, {eo, 4, 4},
                        binary_f32_block, &op, FAST_COLS};
        fd_ew_parallel_walk(&job, out->ndim, out->shape, strides);
        return true;
    }
    int mode = ia && ib ? VV : ia ? VS : SV;
    int64_t rows = w.ndim == 2 ? w.shape[0] : 1, cols = w.inner_len;
    int64_t ro = w.ndim == 2 ? w.stride[0][0] : 0, ra = w.ndim == 2 ? w.stride[1][0] : 0,
            rb = w.ndim == 2 ? w.stride[2][0] : 0;
    char *o0 = fd_tensor_data(out);
    const float *a0 = fd_tensor_data(a), *b0 = fd_tensor_data(b);
    int64_t per_row = (cols + FAST_COLS - 1) / FAST_COLS, tasks = rows * per_row;
#pragma omp parallel for schedule(static) if (rows * cols >= PAR_MIN)
    for (int64_t t = 0; t < tasks; t++) {
        int64_t r = t / per_row, c = (t % per_row) * FAST_COLS;
        int64_t n = cols - c < FAST_COLS ? cols - c : FAST_COLS;
        f32_run(op, o0 + (r * ro + c) * (int64_t)eo, a0 + r * ra + c * ia, b0 + r * rb + c * ib, n, mode);
    }
    return true;
}

/* ---- binary: the generic path ------------------------------------------- */

static inline double remainder_f64(double x, double y)
{
    double r = fmod(x, y);
    return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
}

static void binary_f64(fd_binop op, double *z, const double *x, const double *y, int64_t n)
{
    switch (op) {
    case FD_ADD: for (int64_t i = 0; i < n; i++) z[i] = x[i] + y[i]; break;
    case FD_SUB: for (int64_t i = 0; i < n; i++) z[i] = x[i] - y[i]; break;
    case FD_MUL: for (int64_t i = 0; i < n; i++) z[i] = x[i] * y[i]; break;
    case FD_DIV: for (int64_t i = 0; i < n; i++) z[i] = x[i] / y[i]; break;
    case FD_POW: for (int64_t i = 0; i < n; i++) z[i] = pow(x[i], y[i]); break;
    case FD_MAXIMUM: for (int64_t i = 0; i < n; i++) z[i] = (x[i] != x[i] || x[i] > y[i]) ? x[i] : y[i]; break;
    case FD_MINIMUM: for (int64_t i = 0; i < n; i++) z[i] = (x[i] != x[i] || x[i] < y[i]) ? x[i] : y[i]; break;
    case FD_REMAINDER: for (int64_t i = 0; i < n; i++) z[i] = remainder_f64(x[i], y[i]); break;
    case FD_EQ: for (int64_t i = 0; i < n; i++) z[i] = x[i] == y[i]; break;
    case FD_NE: for (int64_t i = 0; i < n; i++) z[i] = x[i] != y[i]; break;
    case FD_LT: for (int64_t i = 0; i < n; i++) z[i] = x[i] < y[i]; break;
    case FD_LE: for (int64_t i = 0; i < n; i++) z[i] = x[i] <= y[i]; break;
    case FD_GT: for (int64_t i = 0; i < n; i++) z[i] = x[i] > y[i]; break;
    case FD_GE: for (int64_t i = 0; i < n; i++) z[i] = x[i] >= y[i]; break;
    default: break;
    }
}

typedef struct binary_ctx {
    fd_binop op;
    fd_dtype dt[3]; /* out, a, b */
    bool integral;  /* computes in an integer type: the int64 kernel below */
} binary_ctx;

/* ---- binary: integers, exactly ------------------------------------------ */

/* Integer ops run in int64 so i64 values beyond 2^53 stay exact, and wrap
 * around on overflow (through uint64, so without undefined behaviour) the way
 * torch's integer kernels do: u8 1 - 3 is 254. */
static void store_i64(char *dst, int64_t s, fd_dtype dt, const int64_t *v, int64_t n)
{
    switch (dt) {
    case FD_I64: for (int64_t i = 0; i < n; i++) ((int64_t *)dst)[i * s] = v[i]; break;
    case FD_I32: for (int64_t i = 0; i < n; i++) ((int32_t *)dst)[i * s] = (int32_t)(uint32_t)(uint64_t)v[i]; break;
    case FD_U8: for (int64_t i = 0; i < n; i++) ((uint8_t *)dst)[i * s] = (uint8_t)(uint64_t)v[i]; break;
    case FD_BOOL: for (int64_t i = 0; i < n; i++) ((uint8_t *)dst)[i * s] = v[i] != 0; break;
    default: { /* a float output written in place: exact integers converted once */
        double x[FD_BLOCK];
        for (int64_t i = 0; i < n; i++) x[i] = (double)v[i];
        fd_store_block(dst, s, dt, x, n);
    }
    }
}

static int64_t wrap_add(int64_t x, int64_t y) { return (int64_t)((uint64_t)x + (uint64_t)y); }
static int64_t wrap_sub(int64_t x, int64_t y) { return (int64_t)((uint64_t)x - (uint64_t)y); }
static int64_t wrap_mul(int64_t x, int64_t y) { return (int64_t)((uint64_t)x * (uint64_t)y); }

/* x^y by squaring; negative powers truncate toward zero (only 1 and -1 survive). */
static int64_t ipow(int64_t x, int64_t y)
{
    if (y < 0) return x == 1 ? 1 : x == -1 ? (y & 1 ? -1 : 1) : 0;
    int64_t r = 1;
    while (y) {
        if (y & 1) r = wrap_mul(r, x);
        x = wrap_mul(x, x);
        y >>= 1;
    }
    return r;
}

/* The sign of the divisor, as torch; a zero divisor gives 0 (torch raises). */
static int64_t iremainder(int64_t x, int64_t y)
{
    if (y == 0 || y == -1) return 0;
    int64_t r = x % y;
    return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
}

static void binary_i64(fd_binop op, int64_t *z, const int64_t *x, const int64_t *y, int64_t n)
{
    switch (op) {
    case FD_ADD: for (int64_t i = 0; i < n; i++) z[i] = wrap_add(x[i], y[i]); break;
    case FD_SUB: for (int64_t i = 0; i < n; i++) z[i] = wrap_sub(x[i], y[i]); break;
    case FD_MUL: for (int64_t i = 0; i < n; i++) z[i] = wrap_mul(x[i], y[i]); break;
    case FD_POW: for (int64_t i = 0; i < n; i++) z[i] = ipow(x[i], y[i]); break;
    case FD_MAXIMUM: for (int64_t i = 0; i < n; i++) z[i] = x[i] > y[i] ? x[i] : y[i]; break;
    case FD_MINIMUM: for (int64_t i = 0; i < n; i++) z[i] = x[i] < y[i] ? x[i] : y[i]; break;
    case FD_REMAINDER: for (int64_t i = 0; i < n; i++) z[i] = iremainder(x[i], y[i]); break;
    case FD_EQ: for (int64_t i = 0; i < n; i++) z[i] = x[i] == y[i]; break;
    case FD_NE: for (int64_t i = 0; i < n; i++) z[i] = x[i] != y[i]; break;
    case FD_LT: for (int64_t i = 0; i < n; i++) z[i] = x[i] < y[i]; break;
    case FD_LE: for (int64_t i = 0; i < n; i++) z[i] = x[i] <= y[i]; break;
    case FD_GT: for (int64_t i = 0; i < n; i++) z[i] = x[i] > y[i]; break;
    case FD_GE: for (int64_t i = 0; i < n; i++) z[i] = x[i] >= y[i]; break;
    default: break; /* div is true division: the double path */
    }
}

static void binary_block(const void *vctx, char *const *p, const int64_t *s, int64_t n)
{
    const binary_ctx *c = vctx;
    if (c->integral && c->op != FD_DIV) {
        int64_t x[FD_BLOCK], y[FD_BLOCK], z[FD_BLOCK];
        fd_load_block_i64(x, p[1], s[1], c->dt[1], n);
        fd_load_block_i64(y, p[2], s[2], c->dt[2], n);
        binary_i64(c->op, z, x, y, n);
        store_i64(p[0], s[0], c->dt[0], z, n);
        return;
    }
    double x[FD_BLOCK], y[FD_BLOCK], z[FD_BLOCK];
    fd_load_block(x, p[1], s[1], c->dt[1], n);
    fd_load_block(y, p[2], s[2], c->dt[2], n);
    binary_f64(c->op, z, x, y, n);
    fd_store_block(p[0], s[0], c->dt[0], z, n);
}

static fd_dtype binary_result_dtype(fd_binop op, fd_dtype compute)
{
    if (fd_binop_is_comparison(op)) return FD_BOOL;
    if (op == FD_DIV && !fd_dtype_is_float(compute)) return FD_F32; /* true division, as torch */
    return compute;
}

static int binary_core(fd_tensor *out, fd_binop op, const fd_tensor *a, const fd_tensor *b, fd_dtype compute)
{
    const char *name = fd_binop_name(op);
    if ((unsigned)op >= FD_NBINOPS) return fd_fail("binary: invalid op code %d", (int)op);
    int nd;
    int64_t shape[FD_MAX_DIMS];
    if (fd_broadcast_shape(name, a->ndim, a->shape, b->ndim, b->shape, &nd, shape)) return FD_ERR;
    bool fresh = out->storage == NULL;
    fd_dtype rdt = binary_result_dtype(op, compute);
    const fd_tensor *ins[2] = {a, b};
    fd_tensor tmp[2] = {{0}, {0}};
    /* a new result takes the layout of its full-shape operands when they agree on one
     * (a channels-last x + a broadcast shift stays channels-last; mixed layouts give NCHW) */
    bool fa = a->ndim == nd && !memcmp(a->shape, shape, sizeof(int64_t) * (size_t)nd);
    bool fb = b->ndim == nd && !memcmp(b->shape, shape, sizeof(int64_t) * (size_t)nd);
    const fd_tensor *like = fa ? a : fb ? b : NULL;
    for (int d = 0; fa && fb && like && d < nd; d++)
        if (shape[d] > 1 && a->stride[d] != b->stride[d]) like = NULL;
    if (fresh && fd_tensor_empty_in_order_of(out, rdt, nd, shape, like)) return FD_ERR;
    if (fd_ew_prepare_out(name, out, rdt, nd, shape, ins, tmp, 2)) {
        fd_tensor_release(&tmp[0]);
        fd_tensor_release(&tmp[1]);
        if (fresh) fd_tensor_release(out);
        return FD_ERR;
    }
    a = ins[0], b = ins[1];
    int64_t sa[FD_MAX_DIMS], sb[FD_MAX_DIMS];
    fd_broadcast_strides(a, nd, shape, sa);
    fd_broadcast_strides(b, nd, shape, sb);
    /* walked in out's memory order: a borrowed header of out with its dims permuted */
    fd_tensor ov = *out;
    int64_t *ord[3] = {ov.stride, sa, sb};
    fd_ew_memory_order(nd, ov.shape, 3, ord);
    bool all_f32 = a->dtype == FD_F32 && b->dtype == FD_F32 &&
                   out->dtype == (fd_binop_is_comparison(op) ? FD_BOOL : FD_F32);
    if (!(all_f32 && binary_f32_fast(op, &ov, a, sa, b, sb))) {
        binary_ctx ctx = {op, {out->dtype, a->dtype, b->dtype}, !fd_dtype_is_float(compute)};
        walk_job job = {3, {fd_tensor_data(out), fd_tensor_data(a), fd_tensor_data(b)},
                        {fd_dtype_size(out->dtype), fd_dtype_size(a->dtype), fd_dtype_size(b->dtype)},
                        binary_block, &ctx, 0};
        const int64_t *strides[3] = {ov.stride, sa, sb};
        fd_ew_parallel_walk(&job, nd, ov.shape, strides);
    }
    if (!fresh) fd_tensor_bump_version(out);
    fd_tensor_release(&tmp[0]);
    fd_tensor_release(&tmp[1]);
    return FD_OK;
}

int fd_binary(fd_tensor *out, fd_binop op, const fd_tensor *a, const fd_tensor *b)
{
    return binary_core(out, op, a, b, fd_dtype_promote(a->dtype, b->dtype));
}

int fd_binary_scalar(fd_tensor *out, fd_binop op, const fd_tensor *a, double s, bool s_is_int, bool scalar_first)
{
    fd_dtype compute = fd_ew_scalar_compute_dtype(a->dtype, s_is_int);
    scalar_operand so;
    const fd_tensor *st = fd_ew_scalar_tensor(&so, s, compute);
    return scalar_first ? binary_core(out, op, st, a, compute) : binary_core(out, op, a, st, compute);
}
