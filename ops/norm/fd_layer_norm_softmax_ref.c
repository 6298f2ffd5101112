/* Reference kernels for layer_norm and softmax: plain loops in double over
 * contiguous f64 copies of the inputs, written to match the textbook formulas
 * rather than to be fast. Outputs take the input's dtype. The tests compare
 * the fast kernels with these and these with finite differences. */
#include <math.h>
#include <stdlib.h>

#include "ops/common/fd_nn_common.h"
#include "ops/norm/fd_layer_norm_softmax.h"

/* ---- layer_norm --------------------------------------------------------- */

int fd_ref_layer_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, const fd_tensor *w,
                      const fd_tensor *b, double eps)
{
    const char *op = "layer_norm";
    if (fd_nn_check_float(op, "x", x)) return FD_ERR;
    if (x->ndim < 1 || fd_nn_check_nonempty(op, "x", x))
        return x->ndim < 1 ? fd_fail("%s: x %s needs at least 1 dim", op, FD_SHAPE_STR(x)) : FD_ERR;
    const int64_t D = x->shape[x->ndim - 1], R = fd_tensor_numel(x) / D;
    if (fd_nn_check_vec(op, "weight", w, D) || fd_nn_check_vec(op, "bias", b, D)) return FD_ERR;
    fd_tensor xs = {0}, ws = {0}, bs = {0};
    double *px = fd_nn_stage_f64(&xs, x), *pw = w ? fd_nn_stage_f64(&ws, w) : NULL, *pb = b ? fd_nn_stage_f64(&bs, b) : NULL;
    if (!px || (w && !pw) || (b && !pb) || fd_tensor_empty_as(y, x, FD_F64) ||
        fd_tensor_empty(mean, FD_F64, x->ndim - 1, x->shape) || fd_tensor_empty(rstd, FD_F64, x->ndim - 1, x->shape)) {
        fd_nn_release(&xs, &ws, &bs, y, mean, rstd);
        return FD_ERR;
    }
    double *py = fd_tensor_data(y), *pm = fd_tensor_data(mean), *pr = fd_tensor_data(rstd);
    for (int64_t i = 0; i < R; i++) {
        const double *p = px + i * D;
        double mu = 0, var = 0;
        for (int64_t j = 0; j < D; j++) mu += p[j];
        mu /= (double)D;
        for (int64_t j = 0; j < D; j++) var += (p[j] - mu) * (p[j] - mu);
        double r = 1.0 / sqrt(var / (double)D + eps);
        pm[i] = mu, pr[i] = r;
        for (int64_t j = 0; j < D; j++) py[i * D + j] = (p[j] - mu) * r * (pw ? pw[j] : 1.0) + (pb ? pb[j] : 0.0);
    }
    fd_nn_release(&xs, &ws, &bs, NULL, NULL, NULL);
    fd_dtype st = x->dtype == FD_F64 ? FD_F64 : FD_F32;
    if (fd_nn_to_dtype_inplace(y, x->dtype) || fd_nn_to_dtype_inplace(mean, st) || fd_nn_to_dtype_inplace(rstd, st)) {
        fd_nn_release(y, mean, rstd, NULL, NULL, NULL);
        return FD_ERR;
    }
    return FD_OK;
}

int fd_ref_layer_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                               const fd_tensor *mean, const fd_tensor *rstd, const fd_tensor *w, const fd_tensor *b)
{
    const char *op = "layer_norm_backward";
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_float(op, "grad_out", dy) ||
        fd_nn_check_same_shape(op, "grad_out", dy, "x", x) || x->ndim < 1 || fd_nn_check_nonempty(op, "x", x))
        return x->ndim < 1 ? fd_fail("%s: x %s needs at least 1 dim", op, FD_SHAPE_STR(x)) : FD_ERR;
    const int64_t D = x->shape[x->ndim - 1], R = fd_tensor_numel(x) / D;
    if (fd_nn_check_vec(op, "weight", w, D) || fd_nn_check_vec(op, "bias", b, D)) return FD_ERR;
    if (fd_tensor_numel(mean) != R || fd_tensor_numel(rstd) != R)
        return fd_fail("%s: mean %s / rstd %s, expected %lld elements", op, FD_SHAPE_STR(mean), FD_SHAPE_STR(rstd),
                       (long long)R);
    fd_tensor xs = {0}, gs = {0}, ws = {0}, ms = {0}, rs = {0};
    double *px = fd_nn_stage_f64(&xs, x), *pg = fd_nn_stage_f64(&gs, dy), *pm = fd_nn_stage_f64(&ms, mean),
           *pr = fd_nn_stage_f64(&rs, rstd), *pw = w ? fd_nn_stage_f64(&ws, w) : NULL;
    int64_t shd[1] = {D};
    if (!px || !pg || !pm || !pr || (w && !pw) || fd_tensor_empty_as(dx, x, FD_F64) ||
        (w && fd_tensor_zeros(dw, FD_F64, 1, shd)) || (b && fd_tensor_zeros(db, FD_F64, 1, shd))) {
        fd_nn_release(&xs, &gs, &ws, &ms, &rs, NULL);
        fd_nn_release(dx, dw, db, NULL, NULL, NULL);
        return FD_ERR;
    }
    double *pdx = fd_tensor_data(dx), *pdw = w ? fd_tensor_data(dw) : NULL, *pdb = b ? fd_tensor_data(db) : NULL;
    for (int64_t i = 0; i < R; i++) {
        double sd = 0, sdx = 0, mu = pm[i], r = pr[i];
        for (int64_t j = 0; j < D; j++) {
            double xh = (px[i * D + j] - mu) * r, g = pg[i * D + j];
            if (pdw) pdw[j] += g * xh;
            if (pdb) pdb[j] += g;
            double dxh = g * (pw ? pw[j] : 1.0);
            sd += dxh, sdx += dxh * xh;
        }
        for (int64_t j = 0; j < D; j++) {
            double xh = (px[i * D + j] - mu) * r, dxh = pg[i * D + j] * (pw ? pw[j] : 1.0);
            pdx[i * D + j] = r * (dxh - sd / (double)D - xh * sdx / (double)D);
        }
    }
    fd_nn_release(&xs, &gs, &ws, &ms, &rs, NULL);
    if (fd_nn_to_dtype_inplace(dx, x->dtype) || (w && fd_nn_to_dtype_inplace(dw, w->dtype)) ||
        (b && fd_nn_to_dtype_inplace(db, b->dtype))) {
        fd_nn_release(dx, dw, db, NULL, NULL, NULL);
        return FD_ERR;
    }
    return FD_OK;
}

/* ---- softmax ------------------------------------------------------------ */

/* x seen as [outer, D, inner] around dim. */
static void split_dims(const fd_tensor *x, int dim, int64_t *outer, int64_t *D, int64_t *inner)
{
    *outer = 1, *inner = 1;
    for (int i = 0; i < dim; i++) *outer *= x->shape[i];
    for (int i = dim + 1; i < x->ndim; i++) *inner *= x->shape[i];
    *D = x->shape[dim];
}

int fd_ref_softmax(fd_tensor *y, const fd_tensor *x, int dim, bool take_log)
{
    const char *op = take_log ? "log_softmax" : "softmax";
    if (fd_nn_check_float(op, "x", x) || fd_dim_index(op, dim, x->ndim, 0, &dim) || fd_nn_check_nonempty(op, "x", x))
        return FD_ERR;
    int64_t O, D, I;
    split_dims(x, dim, &O, &D, &I);
    fd_tensor xs = {0};
    double *px = fd_nn_stage_f64(&xs, x);
    if (!px || fd_tensor_empty_as(y, x, FD_F64)) {
        fd_nn_release(&xs, y, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    double *py = fd_tensor_data(y);
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
            const double *p = px + o * D * I + i;
            double *q = py + o * D * I + i, m = -INFINITY, s = 0;
            for (int64_t j = 0; j < D; j++) m = p[j * I] > m ? p[j * I] : m;
            for (int64_t j = 0; j < D; j++) s += exp(p[j * I] - m);
            for (int64_t j = 0; j < D; j++) q[j * I] = take_log ? p[j * I] - m - log(s) : exp(p[j * I] - m) / s;
        }
    fd_tensor_release(&xs);
    if (fd_nn_to_dtype_inplace(y, x->dtype)) return FD_ERR;
    return FD_OK;
}

int fd_ref_softmax_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *y, int dim, bool log)
{
    const char *op = log ? "log_softmax_backward" : "softmax_backward";
    if (fd_nn_check_float(op, "y", y) || fd_nn_check_float(op, "grad_out", dy) ||
        fd_nn_check_same_shape(op, "grad_out", dy, "y", y) || fd_dim_index(op, dim, y->ndim, 0, &dim) ||
        fd_nn_check_nonempty(op, "y", y))
        return FD_ERR;
    int64_t O, D, I;
    split_dims(y, dim, &O, &D, &I);
    fd_tensor ys = {0}, gs = {0};
    double *py = fd_nn_stage_f64(&ys, y), *pg = fd_nn_stage_f64(&gs, dy);
    if (!py || !pg || fd_tensor_empty_as(dx, y, FD_F64)) {
        fd_nn_release(&ys, &gs, dx, NULL, NULL, NULL);
        return FD_ERR;
    }
    double *pd = fd_tensor_data(dx);
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
            int64_t base = o * D * I + i;
            double s = 0;
            for (int64_t j = 0; j < D; j++) s += log ? pg[base + j * I] : pg[base + j * I] * py[base + j * I];
            for (int64_t j = 0; j < D; j++) {
                int64_t k = base + j * I;
                pd[k] = log ? pg[k] - exp(py[k]) * s : py[k] * (pg[k] - s);
            }
        }
    fd_nn_release(&ys, &gs, NULL, NULL, NULL, NULL);
    if (fd_nn_to_dtype_inplace(dx, y->dtype)) return FD_ERR;
    return FD_OK;
}
