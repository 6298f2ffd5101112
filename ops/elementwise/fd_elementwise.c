/* Elementwise ops (see fd_elementwise.h): the op names, and the machinery
 * the ops share (declared in fd_elementwise_walk.h). The ops themselves:
 * fd_binary.c (arithmetic and comparisons), fd_unary.c (math and clamp),
 * fd_where.c.
 *
 * Two paths. The fast one takes all-f32 operands whose broadcast collapses
 * to at most [rows, cols] with unit or zero inner strides (same-shape
 * contiguous, tensor with scalar, row or column broadcasts) and runs plain
 * loops the compiler vectorises, one per op. The generic one walks any
 * strides and dtypes with fd_walk in blocks, converting to double, so every
 * op is written once. Both split work across OpenMP threads above PAR_MIN
 * elements. */
#include "ops/elementwise/fd_elementwise_walk.h"

#include <omp.h>
#include <string.h>

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

void fd_ew_parallel_walk(const walk_job *j, int ndim, const int64_t *shape, const int64_t *const *strides)
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

const fd_tensor *fd_ew_scalar_tensor(scalar_operand *s, double v, fd_dtype compute)
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

fd_dtype fd_ew_scalar_compute_dtype(fd_dtype dt, bool s_is_int)
{
    if (fd_dtype_is_float(dt)) return dt;
    if (!s_is_int) return FD_F32;
    return dt == FD_BOOL ? FD_I64 : dt;
}

/* ---- outputs ------------------------------------------------------------ */

void fd_ew_memory_order(int nd, int64_t *shape, int nops, int64_t *const *strides)
{
    int perm[FD_MAX_DIMS];
    fd_memory_order(nd, strides[0], perm);
    int64_t t[FD_MAX_DIMS];
    for (int k = -1; k < nops; k++) {
        int64_t *v = k < 0 ? shape : strides[k];
        for (int d = 0; d < nd; d++) t[d] = v[perm[d]];
        memcpy(v, t, sizeof(int64_t) * (size_t)nd);
    }
}

int fd_ew_prepare_out(const char *name, fd_tensor *out, fd_dtype rdt, int nd, const int64_t *shape,
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
