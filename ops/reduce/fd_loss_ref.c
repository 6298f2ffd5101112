/* Reference kernels for the mse / l1 losses: loops in double over contiguous
 * f64 copies; outputs in the input's dtype. */
#include <math.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/reduce/fd_loss.h"

static int ref_loss_stage(const char *op, const fd_tensor *x, const fd_tensor *t, const fd_tensor *wm, fd_tensor *xs,
                          fd_tensor *ts, fd_tensor *ws)
{
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_float(op, "target", t) || fd_nn_check_same_shape(op, "x", x, "target", t) ||
        (wm && fd_nn_check_float(op, "weight", wm)))
        return FD_ERR;
    if (!fd_nn_stage_f64(xs, x) || !fd_nn_stage_f64(ts, t) ||
        (wm && (fd_tensor_empty_as(ws, x, FD_F64) || fd_tensor_copy_(ws, wm)))) {
        fd_nn_release(xs, ts, ws, NULL, NULL, NULL);
        return FD_ERR;
    }
    return FD_OK;
}

int fd_ref_loss(fd_tensor *out, const fd_tensor *x, const fd_tensor *target, const fd_tensor *wmap, fd_loss_kind k,
                bool mean)
{
    fd_tensor xs = {0}, ts = {0}, ws = {0};
    if (ref_loss_stage(k == FD_LOSS_MSE ? "mse_loss" : "l1_loss", x, target, wmap, &xs, &ts, &ws)) return FD_ERR;
    const double *px = fd_tensor_data(&xs), *pt = fd_tensor_data(&ts), *pw = wmap ? fd_tensor_data(&ws) : NULL;
    double s = 0;
    int64_t n = fd_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        double d = px[i] - pt[i];
        s += (pw ? pw[i] : 1.0) * (k == FD_LOSS_MSE ? d * d : fabs(d));
    }
    fd_nn_release(&xs, &ts, &ws, NULL, NULL, NULL);
    if (fd_tensor_empty(out, FD_F64, 0, (int64_t[1]){1})) return FD_ERR;
    *(double *)fd_tensor_data(out) = mean && n ? s / (double)n : s;
    FD_NN_OUT(out, x->dtype);
    return FD_OK;
}

int fd_ref_loss_backward(fd_tensor *dx, double grad, const fd_tensor *x, const fd_tensor *target,
                         const fd_tensor *wmap, fd_loss_kind k, bool mean)
{
    fd_tensor xs = {0}, ts = {0}, ws = {0};
    if (ref_loss_stage(k == FD_LOSS_MSE ? "mse_loss_backward" : "l1_loss_backward", x, target, wmap, &xs, &ts, &ws))
        return FD_ERR;
    if (fd_tensor_empty_as(dx, x, FD_F64)) {
        fd_nn_release(&xs, &ts, &ws, NULL, NULL, NULL);
        return FD_ERR;
    }
    const double *px = fd_tensor_data(&xs), *pt = fd_tensor_data(&ts), *pw = wmap ? fd_tensor_data(&ws) : NULL;
    double *pd = fd_tensor_data(dx);
    int64_t n = fd_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        double d = px[i] - pt[i], e = k == FD_LOSS_MSE ? 2 * d : (d > 0) - (d < 0);
        pd[i] = grad * (pw ? pw[i] : 1.0) * e / (mean && n ? (double)n : 1.0);
    }
    fd_nn_release(&xs, &ts, &ws, NULL, NULL, NULL);
    FD_NN_OUT(dx, x->dtype);
    return FD_OK;
}
