/* Reference kernels for group_norm, layer_norm and softmax: plain loops in
 * double over contiguous f64 copies of the inputs, written to match the
 * textbook formulas rather than to be fast. Outputs take the input's dtype.
 * The tests compare the fast kernels with these and these with finite
 * differences. */
#include <math.h>
#include <stdlib.h>

#include "nn_common.h"

static double sigm(double z) { return 1.0 / (1.0 + exp(-z)); }

/* ---- group_norm ------------------------------------------------------- */

int fd_ref_group_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                      const fd_tensor *w, const fd_tensor *b, double eps, bool silu)
{
    const char *op = "group_norm";
    if (fd_nn_check_float(op, "x", x)) return FD_ERR;
    if (x->ndim < 2) return fd_fail("%s: x %s needs at least 2 dims [N, C, ...]", op, FD_SHAPE_STR(x));
    if (fd_nn_check_nonempty(op, "x", x)) return FD_ERR;
    if (G <= 0 || x->shape[1] % G)
        return fd_fail("%s: groups %lld do not divide the %lld channels of x %s", op, (long long)G,
                       (long long)x->shape[1], FD_SHAPE_STR(x));
    if (fd_nn_check_vec(op, "weight", w, x->shape[1]) || fd_nn_check_vec(op, "bias", b, x->shape[1])) return FD_ERR;
    const int64_t N = x->shape[0], C = x->shape[1], Cg = C / G, HW = fd_tensor_numel(x) / (N * C);
    fd_tensor xs = {0}, ws = {0}, bs = {0};
    double *px = fd_nn_stage_f64(&xs, x), *pw = w ? fd_nn_stage_f64(&ws, w) : NULL, *pb = b ? fd_nn_stage_f64(&bs, b) : NULL;
    int64_t sh[2] = {N, G};
    if (!px || (w && !pw) || (b && !pb) || fd_tensor_empty_as(y, x, FD_F64) || fd_tensor_empty(mean, FD_F64, 2, sh) ||
        fd_tensor_empty(rstd, FD_F64, 2, sh)) {
        fd_nn_release(&xs, &ws, &bs, y, mean, rstd);
        return FD_ERR;
    }
    double *py = fd_tensor_data(y), *pm = fd_tensor_data(mean), *pr = fd_tensor_data(rstd);
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            const double *p = px + (n * C + g * Cg) * HW;
            int64_t m = Cg * HW;
            double mu = 0, var = 0;
            for (int64_t i = 0; i < m; i++) mu += p[i];
            mu /= (double)m;
            for (int64_t i = 0; i < m; i++) var += (p[i] - mu) * (p[i] - mu);
            var /= (double)m;
            double r = 1.0 / sqrt(var + eps);
            pm[n * G + g] = mu;
            pr[n * G + g] = r;
            for (int64_t c = g * Cg; c < (g + 1) * Cg; c++)
                for (int64_t i = 0; i < HW; i++) {
                    int64_t k = (n * C + c) * HW + i;
                    double z = (px[k] - mu) * r * (pw ? pw[c] : 1.0) + (pb ? pb[c] : 0.0);
                    py[k] = silu ? z * sigm(z) : z;
                }
        }
    fd_nn_release(&xs, &ws, &bs, NULL, NULL, NULL);
    fd_dtype st = x->dtype == FD_F64 ? FD_F64 : FD_F32;
    if (fd_nn_to_dtype_inplace(y, x->dtype) || fd_nn_to_dtype_inplace(mean, st) || fd_nn_to_dtype_inplace(rstd, st)) {
        fd_nn_release(y, mean, rstd, NULL, NULL, NULL);
        return FD_ERR;
    }
    return FD_OK;
}

int fd_ref_group_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                               const fd_tensor *mean, const fd_tensor *rstd, int64_t G, const fd_tensor *w,
                               const fd_tensor *b, bool silu)
{
    const char *op = "group_norm_backward";
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_float(op, "grad_out", dy) ||
        fd_nn_check_same_shape(op, "grad_out", dy, "x", x))
        return FD_ERR;
    if (x->ndim < 2 || G <= 0 || x->shape[1] % G)
        return fd_fail("%s: x %s with groups %lld: need [N, C, ...] with C divisible by groups", op, FD_SHAPE_STR(x),
                       (long long)G);
    if (fd_nn_check_nonempty(op, "x", x)) return FD_ERR;
    const int64_t N = x->shape[0], C = x->shape[1], Cg = C / G, HW = fd_tensor_numel(x) / (N * C);
    if (fd_nn_check_vec(op, "weight", w, C) || fd_nn_check_vec(op, "bias", b, C)) return FD_ERR;
    if (fd_tensor_numel(mean) != N * G || fd_tensor_numel(rstd) != N * G)
        return fd_fail("%s: mean %s / rstd %s, expected [%lld, %lld]", op, FD_SHAPE_STR(mean), FD_SHAPE_STR(rstd),
                       (long long)N, (long long)G);
    fd_tensor xs = {0}, gs = {0}, ws = {0}, bs = {0}, ms = {0}, rs = {0};
    double *px = fd_nn_stage_f64(&xs, x), *pg = fd_nn_stage_f64(&gs, dy), *pm = fd_nn_stage_f64(&ms, mean),
           *pr = fd_nn_stage_f64(&rs, rstd);
    double *pw = w ? fd_nn_stage_f64(&ws, w) : NULL, *pb = b ? fd_nn_stage_f64(&bs, b) : NULL;
    int64_t shc[1] = {C};
    if (!px || !pg || !pm || !pr || (w && !pw) || (b && !pb) || fd_tensor_empty_as(dx, x, FD_F64) ||
        (w && fd_tensor_zeros(dw, FD_F64, 1, shc)) || (b && fd_tensor_zeros(db, FD_F64, 1, shc))) {
        fd_nn_release(&xs, &gs, &ws, &bs, &ms, &rs);
        fd_nn_release(dx, dw, db, NULL, NULL, NULL);
        return FD_ERR;
    }
    double *pdx = fd_tensor_data(dx), *pdw = w ? fd_tensor_data(dw) : NULL, *pdb = b ? fd_tensor_data(db) : NULL;
    const double M = (double)(Cg * HW);
    for (int64_t n = 0; n < N; n++)
        for (int64_t g = 0; g < G; g++) {
            double mu = pm[n * G + g], r = pr[n * G + g], sd = 0, sdx = 0;
            /* pass 1: dz into dx, and the group sums of dxhat and dxhat*xhat */
            for (int64_t c = g * Cg; c < (g + 1) * Cg; c++)
                for (int64_t i = 0; i < HW; i++) {
                    int64_t k = (n * C + c) * HW + i;
                    double xh = (px[k] - mu) * r, wc = pw ? pw[c] : 1.0;
                    double z = xh * wc + (pb ? pb[c] : 0.0), dz = pg[k];
                    if (silu) dz *= sigm(z) * (1.0 + z * (1.0 - sigm(z)));
                    if (pdw) pdw[c] += dz * xh;
                    if (pdb) pdb[c] += dz;
                    pdx[k] = dz * wc; /* dxhat */
                    sd += pdx[k];
                    sdx += pdx[k] * xh;
                }
            for (int64_t c = g * Cg; c < (g + 1) * Cg; c++)
                for (int64_t i = 0; i < HW; i++) {
                    int64_t k = (n * C + c) * HW + i;
                    double xh = (px[k] - mu) * r;
                    pdx[k] = r * (pdx[k] - sd / M - xh * sdx / M);
                }
        }
    fd_nn_release(&xs, &gs, &ws, &bs, &ms, &rs);
    if (fd_nn_to_dtype_inplace(dx, x->dtype) || (w && fd_nn_to_dtype_inplace(dw, w->dtype)) ||
        (b && fd_nn_to_dtype_inplace(db, b->dtype))) {
        fd_nn_release(dx, dw, db, NULL, NULL, NULL);
        return FD_ERR;
    }
    return FD_OK;
}

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
