/* Elementwise ops (see fd_elementwise.h).
 *
 * Two paths. The fast one takes all-f32 operands whose broadcast collapses
 * to at most [rows, cols] with unit or zero inner strides (same-shape
 * contiguous, tensor with scalar, row or column broadcasts) and runs plain
 * loops the compiler vectorises, one per op. The generic one walks any
 * strides and dtypes with fd_walk in blocks, converting to double, so every
 * op is written once. Both split work across OpenMP threads above PAR_MIN
 * elements. */
#include "ops/elementwise/fd_elementwise.h"

/* The kernels never read errno or FP exception flags; without these GCC
 * will not vectorise sqrtf or if-convert the selects in max/min/clamp/exp. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-math-errno", "no-trapping-math")
#endif

#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops/common/fd_blocks.h"

#define PAR_MIN 32768   /* below this, threads cost more than they save */
#define FAST_COLS 8192  /* columns per task on the fast path */

static const char *const binop_names[FD_NBINOPS] = {
    "add", "sub", "mul", "div", "pow", "maximum", "minimum", "remainder",
    "eq", "ne", "lt", "le", "gt", "ge",
};
static const char *const unop_names[FD_NUNOPS] = {
    "neg", "exp", "log", "sqrt", "rsqrt", "abs", "tanh", "sigmoid", "sin", "cos", "floor", "round", "sign",
};

const char *fd_binop_name(fd_binop op) { return (unsigned)op < FD_NBINOPS ? binop_names[op] : "?"; }
const char *fd_unop_name(fd_unop op) { return (unsigned)op < FD_NUNOPS ? unop_names[op] : "?"; }
bool fd_binop_is_comparison(fd_binop op) { return op >= FD_EQ && op <= FD_GE; }

/* ---- parallel strided walks -------------------------------------------- */

/* Called with up to FD_BLOCK elements: p[k] is operand k's first element,
 * s[k] its stride in elements. */
typedef void (*block_fn)(const void *ctx, char *const *p, const int64_t *s, int64_t n);

typedef struct walk_job {
    int nops;
    char *base[FD_WALK_MAX_OPS];
    size_t es[FD_WALK_MAX_OPS];
    block_fn fn;
    const void *ctx;
    int64_t chunk; /* elements per fn call; 0: FD_BLOCK (what the double buffers hold) */
} walk_job;

/* Runs fn over elements [from, to) of one run at the walk's position. */
static void run_slice(const walk_job *j, const fd_walk *w, int64_t from, int64_t to)
{
    int64_t chunk = j->chunk ? j->chunk : FD_BLOCK;
    for (int64_t i = from; i < to; i += chunk) {
        char *p[FD_WALK_MAX_OPS];
        for (int k = 0; k < j->nops; k++)
            p[k] = j->base[k] + (w->offset[k] + i * w->inner_stride[k]) * (int64_t)j->es[k];
        int64_t n = to - i < chunk ? to - i : chunk;
        j->fn(j->ctx, p, w->inner_stride, n);
    }
}

/* An operand read across its rows (a transpose): consecutive runs touch
 * neighbouring elements, so going row by row would fetch each cache line
 * once per row. Tiles of TILE_ROWS rows x FD_BLOCK columns use a line for
 * all the rows it holds. */
#define TILE_ROWS 16

static bool wants_tiles(const fd_walk *w)
{
    if (w->ndim < 2 || w->shape[w->ndim - 2] < TILE_ROWS) return false;
    for (int k = 0; k < w->nops; k++)
        if (w->inner_stride[k] != 0 && w->inner_stride[k] != 1) return true;
    return false;
}

static void tiled_walk(const walk_job *j, const fd_walk *w0, int nth)
{
    int64_t rows = w0->shape[w0->ndim - 2], len = w0->inner_len;
    int64_t planes = 1, row_blocks = (rows + TILE_ROWS - 1) / TILE_ROWS;
    for (int d = 0; d < w0->ndim - 2; d++) planes *= w0->shape[d];
#pragma omp parallel for schedule(static) num_threads(nth) if (nth > 1)
    for (int64_t t = 0; t < planes * row_blocks; t++) {
        int64_t plane = t / row_blocks, r0 = (t % row_blocks) * TILE_ROWS;
        int64_t r1 = r0 + TILE_ROWS < rows ? r0 + TILE_ROWS : rows;
        fd_walk w = *w0;
        fd_walk_seek(&w, (plane * rows) * len);
        int64_t base[FD_WALK_MAX_OPS];
        for (int k = 0; k < j->nops; k++) base[k] = w.offset[k];
        for (int64_t c = 0; c < len; c += FD_BLOCK) {
            int64_t c1 = c + FD_BLOCK < len ? c + FD_BLOCK : len;
            for (int64_t r = r0; r < r1; r++) {
                for (int k = 0; k < j->nops; k++) w.offset[k] = base[k] + r * w.stride[k][w.ndim - 2];
                run_slice(j, &w, c, c1);
            }
        }
    }
}

/* Walks operands of one shape in parallel: whole runs per thread when there
 * are enough of them, else slices of each run; tiles for transposed reads. */
static void parallel_walk(const walk_job *j, int ndim, const int64_t *shape, const int64_t *const *strides)
{
    fd_walk w0;
    fd_walk_init(&w0, ndim, shape, j->nops, strides);
    if (w0.empty) return;
    int64_t numel = 1;
    for (int d = 0; d < w0.ndim; d++) numel *= w0.shape[d];
    int64_t len = w0.inner_len, nruns = numel / len;
    int nth = numel >= PAR_MIN ? omp_get_max_threads() : 1;
    if (wants_tiles(&w0)) {
        tiled_walk(j, &w0, nth);
    } else if (nth <= 1) {
        do run_slice(j, &w0, 0, len);
        while (fd_walk_next(&w0));
    } else if (nruns >= nth) {
#pragma omp parallel num_threads(nth)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            int64_t r0 = nruns * t / T, r1 = nruns * (t + 1) / T;
            fd_walk w = w0;
            fd_walk_seek(&w, r0 * len);
            for (int64_t r = r0; r < r1; r++) {
                run_slice(j, &w, 0, len);
                fd_walk_next(&w);
            }
        }
    } else {
        do {
            int64_t nblocks = (len + FD_BLOCK - 1) / FD_BLOCK;
#pragma omp parallel for num_threads(nth) schedule(static)
            for (int64_t b = 0; b < nblocks; b++) {
                int64_t to = (b + 1) * FD_BLOCK;
                run_slice(j, &w0, b * FD_BLOCK, to < len ? to : len);
            }
        } while (fd_walk_next(&w0));
    }
}

/* ---- scalars ------------------------------------------------------------ */

/* A Lua number as a 0-d tensor over storage on the stack: only read, never
 * retained or released. f32 when the op computes in f32 (so the fast path
 * takes it), else f64. */
typedef struct scalar_operand {
    fd_storage storage;
    union { float f; double d; } v;
    fd_tensor t;
} scalar_operand;

static const fd_tensor *scalar_tensor(scalar_operand *s, double v, fd_dtype compute)
{
    memset(s, 0, sizeof *s);
    if (compute == FD_F32) s->v.f = (float)v;
    else s->v.d = v;
    s->storage.data = &s->v;
    s->storage.nbytes = sizeof s->v;
    s->storage.refcount = 1;
    s->t.storage = &s->storage;
    s->t.dtype = compute == FD_F32 ? FD_F32 : FD_F64;
    return &s->t;
}

/* The type a tensor of type `dt` computes in with a scalar: floats keep
 * theirs; integers stay integral with an integral scalar (bool becomes
 * i64), and become f32 with a fractional one. */
static fd_dtype scalar_compute_dtype(fd_dtype dt, bool s_is_int)
{
    if (fd_dtype_is_float(dt)) return dt;
    if (!s_is_int) return FD_F32;
    return dt == FD_BOOL ? FD_I64 : dt;
}

/* ---- outputs ------------------------------------------------------------ */

/* Makes `out` (released: a new tensor) or checks it (live: in place / out=).
 * Inputs that share storage with a live out in another layout are copied
 * into tmp[k] first and ins[k] is pointed at the copy. */
static int prepare_out(const char *name, fd_tensor *out, fd_dtype rdt, int nd, const int64_t *shape,
                       const fd_tensor **ins, fd_tensor *tmp, int nin)
{
    if (!out->storage) return fd_tensor_empty(out, rdt, nd, shape);
    if (out->ndim != nd || memcmp(out->shape, shape, sizeof(int64_t) * (size_t)nd) != 0)
        return fd_fail("%s: output %s does not match the result shape %s (an in-place op cannot "
                       "broadcast its first operand)",
                       name, FD_SHAPE_STR(out), fd_shape_str((char[128]){0}, 128, nd, shape));
    for (int d = 0; d < nd; d++)
        if (out->stride[d] == 0 && out->shape[d] > 1)
            return fd_fail("%s: the output %s is an expanded view (dim %d has stride 0), so several results "
                           "would land on one element; write into a tensor that owns its elements",
                           name, FD_SHAPE_STR(out), d + 1);
    if (!fd_can_cast(rdt, out->dtype))
        return fd_fail("%s: result type %s cannot be written into the %s output", name, fd_dtype_name(rdt),
                       fd_dtype_name(out->dtype));
    for (int k = 0; k < nin; k++) {
        if (!ins[k] || !fd_views_overlap(out, ins[k])) continue;
        if (fd_tensor_clone(&tmp[k], ins[k])) return FD_ERR;
        ins[k] = &tmp[k];
    }
    return FD_OK;
}

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
        parallel_walk(&job, out->ndim, out->shape, strides);
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
    if (prepare_out(name, out, rdt, nd, shape, ins, tmp, 2)) {
        fd_tensor_release(&tmp[0]);
        fd_tensor_release(&tmp[1]);
        if (fresh) fd_tensor_release(out);
        return FD_ERR;
    }
    a = ins[0], b = ins[1];
    int64_t sa[FD_MAX_DIMS], sb[FD_MAX_DIMS];
    fd_broadcast_strides(a, nd, shape, sa);
    fd_broadcast_strides(b, nd, shape, sb);
    bool all_f32 = a->dtype == FD_F32 && b->dtype == FD_F32 &&
                   out->dtype == (fd_binop_is_comparison(op) ? FD_BOOL : FD_F32);
    if (!(all_f32 && binary_f32_fast(op, out, a, sa, b, sb))) {
        binary_ctx ctx = {op, {out->dtype, a->dtype, b->dtype}, !fd_dtype_is_float(compute)};
        walk_job job = {3, {fd_tensor_data(out), fd_tensor_data(a), fd_tensor_data(b)},
                        {fd_dtype_size(out->dtype), fd_dtype_size(a->dtype), fd_dtype_size(b->dtype)},
                        binary_block, &ctx, 0};
        const int64_t *strides[3] = {out->stride, sa, sb};
        parallel_walk(&job, nd, shape, strides);
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
    fd_dtype compute = scalar_compute_dtype(a->dtype, s_is_int);
    scalar_operand so;
    const fd_tensor *st = scalar_tensor(&so, s, compute);
    return scalar_first ? binary_core(out, op, st, a, compute) : binary_core(out, op, a, st, compute);
}

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
    if (prepare_out(name, out, rdt, a->ndim, a->shape, ins, tmp, 1)) {
        if (fresh) fd_tensor_release(out);
        return FD_ERR;
    }
    a = ins[0];
    const int64_t *strides[2] = {out->stride, a->stride};
    bool fast = false;
    if (a->dtype == FD_F32 && out->dtype == FD_F32) {
        fd_walk w;
        fd_walk_init(&w, a->ndim, a->shape, 2, strides);
        fast = w.empty || (w.inner_stride[0] == 1 && w.inner_stride[1] == 1);
        if (fast && w.ndim > 1) { /* unit-stride runs of a view: walked */
            unary_ctx ctx = {op, {FD_F32, FD_F32}, lo, hi};
            walk_job job = {2, {fd_tensor_data(out), fd_tensor_data(a)}, {4, 4}, unary_f32_block, &ctx, FAST_COLS};
            parallel_walk(&job, a->ndim, a->shape, strides);
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
        parallel_walk(&job, a->ndim, a->shape, strides);
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

/* ---- where -------------------------------------------------------------- */

typedef struct where_ctx {
    fd_dtype dt[4]; /* out, cond, a, b */
} where_ctx;

static void where_block(const void *vctx, char *const *p, const int64_t *s, int64_t n)
{
    const where_ctx *c = vctx;
    double m[FD_BLOCK], x[FD_BLOCK], y[FD_BLOCK];
    fd_load_block(m, p[1], s[1], c->dt[1], n);
    fd_load_block(x, p[2], s[2], c->dt[2], n);
    fd_load_block(y, p[3], s[3], c->dt[3], n);
    for (int64_t i = 0; i < n; i++) x[i] = m[i] != 0 ? x[i] : y[i];
    fd_store_block(p[0], s[0], c->dt[0], x, n);
}

int fd_where(fd_tensor *out, const fd_tensor *cond, const fd_tensor *a, double sa, bool sa_is_int,
             const fd_tensor *b, double sb, bool sb_is_int)
{
    fd_dtype rdt;
    if (a && b) rdt = fd_dtype_promote(a->dtype, b->dtype);
    else if (a) rdt = scalar_compute_dtype(a->dtype, sb_is_int);
    else if (b) rdt = scalar_compute_dtype(b->dtype, sa_is_int);
    else rdt = sa_is_int && sb_is_int ? FD_I64 : FD_F32;
    scalar_operand soa, sob;
    if (!a) a = scalar_tensor(&soa, sa, FD_F64);
    if (!b) b = scalar_tensor(&sob, sb, FD_F64);
    int nd, nd2;
    int64_t shape[FD_MAX_DIMS], shape2[FD_MAX_DIMS];
    if (fd_broadcast_shape("where", a->ndim, a->shape, b->ndim, b->shape, &nd, shape) ||
        fd_broadcast_shape("where", cond->ndim, cond->shape, nd, shape, &nd2, shape2))
        return FD_ERR;
    bool fresh = out->storage == NULL;
    const fd_tensor *ins[3] = {cond, a, b};
    fd_tensor tmp[3] = {{0}, {0}, {0}};
    int rc = prepare_out("where", out, rdt, nd2, shape2, ins, tmp, 3);
    if (rc == FD_OK) {
        int64_t sc[FD_MAX_DIMS], sx[FD_MAX_DIMS], sy[FD_MAX_DIMS];
        fd_broadcast_strides(ins[0], nd2, shape2, sc);
        fd_broadcast_strides(ins[1], nd2, shape2, sx);
        fd_broadcast_strides(ins[2], nd2, shape2, sy);
        where_ctx ctx = {{out->dtype, ins[0]->dtype, ins[1]->dtype, ins[2]->dtype}};
        walk_job job = {4,
                        {fd_tensor_data(out), fd_tensor_data(ins[0]), fd_tensor_data(ins[1]), fd_tensor_data(ins[2])},
                        {fd_dtype_size(out->dtype), fd_dtype_size(ins[0]->dtype), fd_dtype_size(ins[1]->dtype),
                         fd_dtype_size(ins[2]->dtype)},
                        where_block, &ctx, 0};
        const int64_t *strides[4] = {out->stride, sc, sx, sy};
        parallel_walk(&job, nd2, shape2, strides);
        if (!fresh) fd_tensor_bump_version(out);
    } else if (fresh) {
        fd_tensor_release(out);
    }
    for (int k = 0; k < 3; k++) fd_tensor_release(&tmp[k]);
    return rc;
}
