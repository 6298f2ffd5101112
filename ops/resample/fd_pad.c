/* pad (constant or reflect; negative pads crop) and its backward, a
 * scatter-add into x's shape: f32 kernels, threads over rows. */
#include <omp.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/resample/fd_pad_check.h"

/* Source index of output index o along a dim: -1 when it falls in constant padding. */
static inline int64_t pad_src(int64_t o, int64_t before, int64_t n, fd_pad_mode mode)
{
    int64_t i = o - before;
    if (mode == FD_PAD_REFLECT) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
        return i;
    }
    return i >= 0 && i < n ? i : -1;
}

/* Walks every output element; calls back with its source flat index (or -1). */
static void pad_map(int ndim, const int64_t *xs, const int64_t *ys, const int64_t *before, fd_pad_mode mode,
                    float *y, const float *x, float value, float *dx, const float *dy)
{
    int64_t inner = ys[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= ys[d];
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, src = 0, mul = 1;
        bool out = false;
        for (int d = ndim - 2; d >= 0; d--) {
            int64_t o = rem % ys[d], i = pad_src(o, before[d], xs[d], mode);
            rem /= ys[d];
            if (i < 0) out = true;
            src += i * mul * xs[ndim - 1];
            mul *= xs[d];
        }
        for (int64_t c = 0; c < inner; c++) {
            int64_t i = pad_src(c, before[ndim - 1], xs[ndim - 1], mode);
            bool o = out || i < 0;
            if (y) y[r * inner + c] = o ? value : x[src + i];
            if (dx && !o) {
#pragma omp atomic
                dx[src + i] += dy[r * inner + c];
            }
        }
    }
}

static void pad_before(const fd_tensor *x, int npads, const int64_t *pads, int64_t *before)
{
    for (int d = 0; d < x->ndim; d++) before[d] = 0;
    for (int p = 0; p < npads / 2; p++) before[x->ndim - 1 - p] = pads[2 * p];
}

int fd_pad(fd_tensor *y, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode, double value)
{
    const char *op = "pad";
    int64_t ys[FD_MAX_DIMS], before[FD_MAX_DIMS];
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_nonempty(op, "x", x) || fd_nn_pad_shape(op, x, npads, pads, mode, ys))
        return FD_ERR;
    if (x->ndim == 0) return fd_tensor_clone(y, x);
    if (x->dtype == FD_F64) return fd_ref_pad(y, x, npads, pads, mode, value);
    fd_tensor xs = {0};
    float *py;
    float *px = fd_nn_stage_and_alloc(&xs, x, y, x->ndim, ys, false, &py);
    if (!px) return FD_ERR;
    pad_before(x, npads, pads, before);
    pad_map(x->ndim, x->shape, ys, before, mode, py, px, (float)value, NULL, NULL);
    fd_tensor_release(&xs);
    return FD_OK;
}

int fd_pad_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x_like, int npads, const int64_t *pads,
                    fd_pad_mode mode)
{
    const char *op = "pad_backward";
    int64_t ys[FD_MAX_DIMS], before[FD_MAX_DIMS];
    if (fd_nn_check_float(op, "grad_out", dy) || fd_nn_check_nonempty(op, "x", x_like) ||
        fd_nn_pad_shape(op, x_like, npads, pads, mode, ys))
        return FD_ERR;
    bool same = dy->ndim == x_like->ndim;
    for (int d = 0; same && d < dy->ndim; d++) same = dy->shape[d] == ys[d];
    if (!same) return fd_fail("%s: grad_out %s, expected the padded shape of x %s", op, FD_SHAPE_STR(dy),
                              FD_SHAPE_STR(x_like));
    if (dy->dtype == FD_F64) return fd_ref_pad_backward(dx, dy, x_like, npads, pads, mode);
    fd_tensor gs = {0};
    float *pd;
    float *pg = fd_nn_stage_and_alloc(&gs, dy, dx, x_like->ndim, x_like->shape, true, &pd);
    if (!pg) return FD_ERR;
    if (x_like->ndim > 0) {
        pad_before(x_like, npads, pads, before);
        pad_map(x_like->ndim, x_like->shape, ys, before, mode, NULL, NULL, 0, pd, pg);
    } else {
        *pd = *pg;
    }
    fd_tensor_release(&gs);
    return FD_OK;
}
