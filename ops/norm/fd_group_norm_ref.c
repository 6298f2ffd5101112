/* Reference kernels for group_norm: plain loops in double over contiguous f64
 * copies of the inputs, written to match the textbook formulas rather than to
 * be fast. Outputs take the input's dtype. The tests compare the fast kernels
 * with these and these with finite differences. */
#include <math.h>
#include <stdlib.h>

#include "ops/common/fd_nn_common.h"
#include "ops/norm/fd_group_norm.h"

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
