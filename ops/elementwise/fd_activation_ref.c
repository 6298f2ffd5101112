/* Reference kernels for the activations: loops in double over a contiguous
 * f64 copy, written from the definitions; outputs in the input's dtype. */
#include <math.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/elementwise/fd_activation_check.h"

static double act(fd_activation_kind k, double x, bool deriv)
{
    const double K = sqrt(2.0 / M_PI), A = 0.044715;
    double s = 1.0 / (1.0 + exp(-x));
    switch (k) {
    case FD_ACTIVATION_SILU: return deriv ? s * (1 + x * (1 - s)) : x * s;
    case FD_ACTIVATION_GELU: {
        double cdf = 0.5 * (1 + erf(x / sqrt(2.0)));
        return deriv ? cdf + x * exp(-0.5 * x * x) / sqrt(2 * M_PI) : x * cdf;
    }
    case FD_ACTIVATION_GELU_TANH: {
        double t = tanh(K * (x + A * x * x * x));
        return deriv ? 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * A * x * x) : 0.5 * x * (1 + t);
    }
    case FD_ACTIVATION_SIGMOID: return deriv ? s * (1 - s) : s;
    case FD_ACTIVATION_TANH: return deriv ? 1 - tanh(x) * tanh(x) : tanh(x);
    case FD_ACTIVATION_RELU: return deriv ? (x > 0 ? 1 : 0) : (x > 0 ? x : 0);
    default: return 0;
    }
}

int fd_ref_activation(fd_tensor *y, const fd_tensor *x, fd_activation_kind k)
{
    if (k < 0 || k >= FD_ACTIVATION_COUNT) return fd_fail("activation: unknown kind %d", (int)k);
    if (fd_nn_check_float(fd_activation_name(k), "x", x)) return FD_ERR;
    fd_tensor xs = {0};
    double *px = fd_nn_stage_f64(&xs, x);
    if (!px || fd_tensor_empty_as(y, x, FD_F64)) {
        fd_nn_release(&xs, y, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    double *py = fd_tensor_data(y);
    for (int64_t i = 0, n = fd_tensor_numel(x); i < n; i++) py[i] = act(k, px[i], false);
    fd_tensor_release(&xs);
    FD_NN_OUT(y, x->dtype);
    return FD_OK;
}

int fd_ref_activation_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x, fd_activation_kind k)
{
    const char *op = fd_activation_name(k);
    if (k < 0 || k >= FD_ACTIVATION_COUNT) return fd_fail("activation_backward: unknown kind %d", (int)k);
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_float(op, "grad_out", dy) ||
        fd_nn_check_same_shape(op, "grad_out", dy, "x", x))
        return FD_ERR;
    fd_tensor xs = {0}, gs = {0};
    double *px = fd_nn_stage_f64(&xs, x), *pg = fd_nn_stage_f64(&gs, dy);
    if (!px || !pg || fd_tensor_empty_as(dx, x, FD_F64)) {
        fd_nn_release(&xs, &gs, dx, NULL, NULL, NULL);
        return FD_ERR;
    }
    double *pd = fd_tensor_data(dx);
    for (int64_t i = 0, n = fd_tensor_numel(x); i < n; i++) pd[i] = pg[i] * act(k, px[i], true);
    fd_nn_release(&xs, &gs, NULL, NULL, NULL, NULL);
    FD_NN_OUT(dx, x->dtype);
    return FD_OK;
}
