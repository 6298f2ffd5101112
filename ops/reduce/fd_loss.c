/* The mse / l1 losses, forward and backward, on contiguous f32 with OpenMP. */
#include <omp.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/reduce/fd_loss.h"

#define CHUNK 16384

/* x, target (same shape) and the weight map broadcast to x, as contiguous f32. */
static int loss_stage(const char *op, const fd_tensor *x, const fd_tensor *t, const fd_tensor *wm, fd_tensor *xs,
                      fd_tensor *ts, fd_tensor *ws)
{
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_float(op, "target", t) || fd_nn_check_same_shape(op, "x", x, "target", t) ||
        (wm && fd_nn_check_float(op, "weight", wm)))
        return FD_ERR;
    if (wm) {
        int nd;
        int64_t sh[FD_MAX_DIMS];
        if (fd_broadcast_shape(op, x->ndim, x->shape, wm->ndim, wm->shape, &nd, sh)) return FD_ERR;
        bool same = nd == x->ndim;
        for (int i = 0; same && i < nd; i++) same = sh[i] == x->shape[i];
        if (!same) return fd_fail("%s: weight %s does not broadcast to x %s", op, FD_SHAPE_STR(wm), FD_SHAPE_STR(x));
    }
    if (!fd_nn_stage_f32(xs, x) || !fd_nn_stage_f32(ts, t) ||
        (wm && (fd_tensor_empty_as(ws, x, FD_F32) || fd_tensor_copy_(ws, wm)))) {
        fd_nn_release(xs, ts, ws, NULL, NULL, NULL);
        return FD_ERR;
    }
    return FD_OK;
}

int fd_loss(fd_tensor *out, const fd_tensor *x, const fd_tensor *target, const fd_tensor *wmap, fd_loss_kind k,
            bool mean)
{
    const char *op = k == FD_LOSS_MSE ? "mse_loss" : "l1_loss";
    if (x->dtype == FD_F64) return fd_ref_loss(out, x, target, wmap, k, mean);
    fd_tensor xs = {0}, ts = {0}, ws = {0};
    if (loss_stage(op, x, target, wmap, &xs, &ts, &ws)) return FD_ERR;
    const float *px = fd_tensor_data(&xs), *pt = fd_tensor_data(&ts), *pw = wmap ? fd_tensor_data(&ws) : NULL;
    const int64_t n = fd_tensor_numel(x);
    double s = 0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (n > CHUNK)
    for (int64_t c0 = 0; c0 < n; c0 += CHUNK) {
        int64_t c1 = c0 + CHUNK < n ? c0 + CHUNK : n;
        float part = 0;
        for (int64_t i = c0; i < c1; i++) {
            float d = px[i] - pt[i], e = k == FD_LOSS_MSE ? d * d : fabsf(d);
            part += pw ? pw[i] * e : e;
        }
        s += part;
    }
    fd_nn_release(&xs, &ts, &ws, NULL, NULL, NULL);
    if (fd_tensor_empty(out, FD_F32, 0, (int64_t[1]){1})) return FD_ERR;
    *(float *)fd_tensor_data(out) = (float)(mean && n ? s / (double)n : s);
    return FD_OK;
}

int fd_loss_backward(fd_tensor *dx, double grad, const fd_tensor *x, const fd_tensor *target, const fd_tensor *wmap,
                     fd_loss_kind k, bool mean)
{
    const char *op = k == FD_LOSS_MSE ? "mse_loss_backward" : "l1_loss_backward";
    if (x->dtype == FD_F64) return fd_ref_loss_backward(dx, grad, x, target, wmap, k, mean);
    fd_tensor xs = {0}, ts = {0}, ws = {0};
    if (loss_stage(op, x, target, wmap, &xs, &ts, &ws)) return FD_ERR;
    if (fd_tensor_empty_as(dx, x, FD_F32)) {
        fd_nn_release(&xs, &ts, &ws, NULL, NULL, NULL);
        return FD_ERR;
    }
    const float *px = fd_tensor_data(&xs), *pt = fd_tensor_data(&ts), *pw = wmap ? fd_tensor_data(&ws) : NULL;
    float *pd = fd_tensor_data(dx);
    const int64_t n = fd_tensor_numel(x);
    const float g = (float)(mean && n ? grad / (double)n : grad);
#pragma omp parallel for schedule(static) if (n > CHUNK)
    for (int64_t i = 0; i < n; i++) {
        float d = px[i] - pt[i], e = k == FD_LOSS_MSE ? 2.0f * d : (float)((d > 0) - (d < 0));
        pd[i] = g * (pw ? pw[i] : 1.0f) * e;
    }
    fd_nn_release(&xs, &ts, &ws, NULL, NULL, NULL);
    return FD_OK;
}
