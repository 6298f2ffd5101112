/* Reference kernels for pad: per-dim index mapping in double over a
 * contiguous f64 copy, independent of the fast kernel's row walk; outputs in
 * the input's dtype. */
#include <math.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/resample/fd_pad_check.h"

/* Flat index into x of the element that output multi-index o reads, or -1. */
static int64_t ref_pad_src(const fd_tensor *x, const int64_t *o, const int64_t *before, fd_pad_mode mode)
{
    int64_t flat = 0;
    for (int d = 0; d < x->ndim; d++) {
        int64_t n = x->shape[d], i = o[d] - before[d];
        if (mode == FD_PAD_REFLECT) {
            if (i < 0) i = -i;
            if (i > n - 1) i = 2 * (n - 1) - i;
        } else if (i < 0 || i >= n) {
            return -1;
        }
        flat = flat * n + i;
    }
    return flat;
}

static void ref_pad_walk(const fd_tensor *x, int ndim, const int64_t *ys, const int64_t *before, fd_pad_mode mode,
                         double *y, const double *px, double value, double *dx, const double *dy)
{
    int64_t o[FD_MAX_DIMS] = {0}, n = 1;
    for (int d = 0; d < ndim; d++) n *= ys[d];
    for (int64_t k = 0; k < n; k++) {
        int64_t s = ref_pad_src(x, o, before, mode);
        if (y) y[k] = s < 0 ? value : px[s];
        if (dx && s >= 0) dx[s] += dy[k];
        for (int d = ndim - 1; d >= 0; d--) { /* next multi-index */
            if (++o[d] < ys[d]) break;
            o[d] = 0;
        }
    }
}

int fd_ref_pad(fd_tensor *y, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode, double value)
{
    int64_t ys[FD_MAX_DIMS], before[FD_MAX_DIMS] = {0};
    if (fd_nn_check_float("pad", "x", x) || fd_nn_check_nonempty("pad", "x", x) ||
        fd_nn_pad_shape("pad", x, npads, pads, mode, ys))
        return FD_ERR;
    for (int p = 0; p < npads / 2; p++) before[x->ndim - 1 - p] = pads[2 * p];
    fd_tensor xs = {0};
    if (!fd_nn_stage_f64(&xs, x) || fd_tensor_empty(y, FD_F64, x->ndim, ys)) {
        fd_nn_release(&xs, y, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    ref_pad_walk(x, x->ndim, ys, before, mode, fd_tensor_data(y), fd_tensor_data(&xs), value, NULL, NULL);
    fd_tensor_release(&xs);
    FD_NN_OUT(y, x->dtype);
    return FD_OK;
}

int fd_ref_pad_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x_like, int npads, const int64_t *pads,
                        fd_pad_mode mode)
{
    int64_t ys[FD_MAX_DIMS], before[FD_MAX_DIMS] = {0};
    if (fd_nn_check_float("pad_backward", "grad_out", dy) || fd_nn_pad_shape("pad_backward", x_like, npads, pads, mode, ys))
        return FD_ERR;
    bool same = dy->ndim == x_like->ndim;
    for (int d = 0; same && d < dy->ndim; d++) same = dy->shape[d] == ys[d];
    if (!same)
        return fd_fail("pad_backward: grad_out %s, expected the padded shape of x %s", FD_SHAPE_STR(dy),
                       FD_SHAPE_STR(x_like));
    for (int p = 0; p < npads / 2; p++) before[x_like->ndim - 1 - p] = pads[2 * p];
    fd_tensor gs = {0};
    if (!fd_nn_stage_f64(&gs, dy) || fd_tensor_zeros(dx, FD_F64, x_like->ndim, x_like->shape)) {
        fd_nn_release(&gs, dx, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    ref_pad_walk(x_like, x_like->ndim, ys, before, mode, NULL, NULL, 0, fd_tensor_data(dx), fd_tensor_data(&gs));
    fd_tensor_release(&gs);
    FD_NN_OUT(dx, dy->dtype);
    return FD_OK;
}
