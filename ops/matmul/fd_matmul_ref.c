/* Reference matrix products: plain loops in double, for tests and as the
 * fallback when oneDNN refuses a case. The shape logic both paths share is
 * fd_matmul_check.c. */
#include <string.h>

#include "ops/matmul/fd_matmul.h"
#include "ops/matmul/fd_matmul_check.h"

/* ---- reference kernels ------------------------------------------------- */

/* Element offset of batch entry `flat` (row-major over shape[0..nb)) in a
 * tensor with broadcast strides st. */
static int64_t batch_offset(int64_t flat, int nb, const int64_t *shape, const int64_t *st)
{
    int64_t off = 0;
    for (int d = nb - 1; d >= 0; d--) {
        off += (flat % shape[d]) * st[d];
        flat /= shape[d];
    }
    return off;
}

/* f64 views of the plan's operands: contiguous copies, then the plan's
 * (broadcast) strides recomputed against them. */
typedef struct f64_ops {
    fd_tensor a, b;
    int64_t sa[FD_MAX_DIMS], sb[FD_MAX_DIMS];
} f64_ops;

static int load_f64(f64_ops *f, const fd_mm_plan *pl)
{
    memset(f, 0, sizeof *f);
    if (fd_tensor_to_dtype(&f->a, &pl->a, FD_F64)) return FD_ERR;
    if (fd_tensor_to_dtype(&f->b, &pl->b, FD_F64)) {
        fd_tensor_release(&f->a);
        return FD_ERR;
    }
    fd_broadcast_strides(&f->a, pl->nd, pl->full, f->sa);
    fd_broadcast_strides(&f->b, pl->nd, pl->full, f->sb);
    /* the last two dims are not broadcast: keep the real strides */
    for (int i = pl->nd - 2; i < pl->nd; i++) f->sa[i] = f->a.stride[i], f->sb[i] = f->b.stride[i];
    return FD_OK;
}

int fd_ref_matmul(fd_tensor *out, const fd_tensor *a, const fd_tensor *b, const fd_mm_opts *o)
{
    memset(out, 0, sizeof *out);
    fd_mm_plan pl;
    if (fd_matmul_plan("matmul", a, b, o, &pl)) return FD_ERR;
    f64_ops f;
    fd_tensor Y = {0};
    int rc = FD_ERR;
    if (load_f64(&f, &pl)) goto done;
    if (fd_tensor_empty(&Y, FD_F64, pl.nd, pl.full)) goto done;
    int nb = pl.nd - 2;
    int64_t m = pl.full[nb], n = pl.full[nb + 1], k = pl.a.shape[nb + 1], nbatch = 1;
    for (int i = 0; i < nb; i++) nbatch *= pl.full[i];
    const double *ad = fd_tensor_data(&f.a), *bd = fd_tensor_data(&f.b);
    double *yd = fd_tensor_data(&Y);
    for (int64_t t = 0; t < nbatch; t++) {
        const double *at = ad + batch_offset(t, nb, pl.full, f.sa), *bt = bd + batch_offset(t, nb, pl.full, f.sb);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0;
                for (int64_t q = 0; q < k; q++) acc += at[i * f.sa[nb] + q * f.sa[nb + 1]] * bt[q * f.sb[nb] + j * f.sb[nb + 1]];
                yd[(t * m + i) * n + j] = acc;
            }
    }
    if (fd_view_reshape(&Y, pl.out_ndim, pl.out_shape) || fd_tensor_to_dtype(out, &Y, a->dtype)) goto done;
    rc = FD_OK;
done:
    fd_tensor_release(&f.a), fd_tensor_release(&f.b), fd_tensor_release(&Y);
    fd_mm_plan_release(&pl);
    return rc;
}

int fd_ref_matmul_backward(fd_tensor *ga, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *a,
                           const fd_tensor *b, const fd_mm_opts *o)
{
    if (ga) memset(ga, 0, sizeof *ga);
    if (gb) memset(gb, 0, sizeof *gb);
    fd_mm_plan pl;
    if (fd_matmul_plan("matmul_backward", a, b, o, &pl)) return FD_ERR;
    f64_ops f;
    fd_tensor G = {0}, GA = {0}, GB = {0}, GAv = {0}, GBv = {0};
    int rc = FD_ERR;
    if (fd_matmul_check_dtype("matmul_backward", "grad_output", gy, a)) goto done;
    if (gy->ndim != pl.out_ndim || memcmp(gy->shape, pl.out_shape, sizeof(int64_t) * (size_t)pl.out_ndim)) {
        fd_fail("matmul_backward: grad_output %s vs output shape %s", FD_SHAPE_STR(gy),
                fd_shape_str((char[128]){0}, 128, pl.out_ndim, pl.out_shape));
        goto done;
    }
    if (load_f64(&f, &pl) || fd_tensor_to_dtype(&G, gy, FD_F64)) goto done;
    /* gradients in the plan's (promoted, transposed) operand shapes, contiguous */
    if (fd_tensor_zeros(&GA, FD_F64, pl.nd, pl.a.shape) || fd_tensor_zeros(&GB, FD_F64, pl.nd, pl.b.shape)) goto done;
    int nb = pl.nd - 2;
    int64_t m = pl.full[nb], n = pl.full[nb + 1], k = pl.a.shape[nb + 1], nbatch = 1;
    for (int i = 0; i < nb; i++) nbatch *= pl.full[i];
    int64_t sga[FD_MAX_DIMS], sgb[FD_MAX_DIMS];
    fd_broadcast_strides(&GA, pl.nd, pl.full, sga);
    fd_broadcast_strides(&GB, pl.nd, pl.full, sgb);
    const double *ad = fd_tensor_data(&f.a), *bd = fd_tensor_data(&f.b), *gd = fd_tensor_data(&G);
    double *gad = fd_tensor_data(&GA), *gbd = fd_tensor_data(&GB);
    for (int64_t t = 0; t < nbatch; t++) {
        const double *at = ad + batch_offset(t, nb, pl.full, f.sa), *bt = bd + batch_offset(t, nb, pl.full, f.sb);
        double *gat = gad + batch_offset(t, nb, pl.full, sga), *gbt = gbd + batch_offset(t, nb, pl.full, sgb);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double g = gd[(t * m + i) * n + j];
                for (int64_t q = 0; q < k; q++) {
                    gat[i * k + q] += g * bt[q * f.sb[nb] + j * f.sb[nb + 1]];
                    gbt[q * n + j] += g * at[i * f.sa[nb] + q * f.sa[nb + 1]];
                }
            }
    }
    fd_mm_unplan(&GAv, &GA, a, o && o->transpose_a, 0);
    fd_mm_unplan(&GBv, &GB, b, o && o->transpose_b, 1);
    if (ga && fd_tensor_to_dtype(ga, &GAv, a->dtype)) goto done;
    if (gb && fd_tensor_to_dtype(gb, &GBv, b->dtype)) goto done;
    rc = FD_OK;
done:
    if (rc) {
        if (ga) fd_tensor_release(ga);
        if (gb) fd_tensor_release(gb);
    }
    fd_tensor_release(&f.a), fd_tensor_release(&f.b), fd_tensor_release(&G);
    fd_tensor_release(&GA), fd_tensor_release(&GB), fd_tensor_release(&GAv), fd_tensor_release(&GBv);
    fd_mm_plan_release(&pl);
    return rc;
}

int fd_ref_linear(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b, const fd_mm_opts *o)
{
    memset(out, 0, sizeof *out);
    if (fd_linear_check("linear", x, w, b)) return FD_ERR;
    fd_tensor X = {0}, W = {0}, B = {0}, Y = {0};
    int rc = FD_ERR;
    int64_t n = w->shape[0], k = w->shape[1], m = fd_tensor_numel(x) / (k ? k : 1);
    int64_t shape[FD_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 1] = n;
    if (fd_tensor_to_dtype(&X, x, FD_F64) || fd_tensor_to_dtype(&W, w, FD_F64)) goto done;
    if (b && fd_tensor_to_dtype(&B, b, FD_F64)) goto done;
    if (fd_tensor_empty(&Y, FD_F64, x->ndim, shape)) goto done;
    const double *xd = fd_tensor_data(&X), *wd = fd_tensor_data(&W), *bd = b ? fd_tensor_data(&B) : NULL;
    double *yd = fd_tensor_data(&Y);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = bd ? bd[j] : 0;
            for (int64_t q = 0; q < k; q++) acc += xd[i * k + q] * wd[j * k + q];
            yd[i * n + j] = fd_act_apply(o ? o->act : FD_ACT_NONE, acc);
        }
    if (fd_tensor_to_dtype(out, &Y, x->dtype)) goto done;
    rc = FD_OK;
done:
    fd_tensor_release(&X), fd_tensor_release(&W), fd_tensor_release(&B), fd_tensor_release(&Y);
    return rc;
}

int fd_ref_linear_backward(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *x,
                           const fd_tensor *w, const fd_mm_opts *o)
{
    if (gx) memset(gx, 0, sizeof *gx);
    if (gw) memset(gw, 0, sizeof *gw);
    if (gb) memset(gb, 0, sizeof *gb);
    if (fd_linear_check("linear_backward", x, w, NULL)) return FD_ERR;
    int64_t n = w->shape[0], k = w->shape[1], m = fd_tensor_numel(x) / (k ? k : 1);
    if (gy->ndim != x->ndim || gy->shape[gy->ndim - 1] != n || fd_tensor_numel(gy) != m * n)
        return fd_fail("linear_backward: grad_output %s vs input %s and weight %s", FD_SHAPE_STR(gy), FD_SHAPE_STR(x),
                       FD_SHAPE_STR(w));
    fd_tensor X = {0}, W = {0}, G = {0}, GX = {0}, GW = {0}, GB = {0};
    int rc = FD_ERR;
    int64_t bshape[1] = {n};
    if (fd_tensor_to_dtype(&X, x, FD_F64) || fd_tensor_to_dtype(&W, w, FD_F64) || fd_tensor_to_dtype(&G, gy, FD_F64))
        goto done;
    if (fd_tensor_zeros(&GX, FD_F64, x->ndim, x->shape) || fd_tensor_zeros(&GW, FD_F64, 2, w->shape) ||
        fd_tensor_zeros(&GB, FD_F64, 1, bshape))
        goto done;
    const double *xd = fd_tensor_data(&X), *wd = fd_tensor_data(&W), *gd = fd_tensor_data(&G);
    double *gxd = fd_tensor_data(&GX), *gwd = fd_tensor_data(&GW), *gbd = fd_tensor_data(&GB);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double g = gd[i * n + j];
            gbd[j] += g;
            for (int64_t q = 0; q < k; q++) {
                gxd[i * k + q] += g * wd[j * k + q];
                gwd[j * k + q] += g * xd[i * k + q];
            }
        }
    if (gx && fd_tensor_to_dtype(gx, &GX, x->dtype)) goto done;
    if (gw && fd_tensor_to_dtype(gw, &GW, w->dtype)) goto done;
    if (gb && fd_tensor_to_dtype(gb, &GB, gy->dtype)) goto done;
    rc = FD_OK;
done:
    if (rc) {
        if (gx) fd_tensor_release(gx);
        if (gw) fd_tensor_release(gw);
        if (gb) fd_tensor_release(gb);
    }
    fd_tensor_release(&X), fd_tensor_release(&W), fd_tensor_release(&G);
    fd_tensor_release(&GX), fd_tensor_release(&GW), fd_tensor_release(&GB);
    return rc;
}
