/* Reference matrix products: plain loops in double, for tests and as the
 * fallback when oneDNN refuses a case. Plus the shape logic both paths share. */
#include <string.h>

#include "fd_matmul.h"

void fd_mm_opts_default(fd_mm_opts *o)
{
    *o = (fd_mm_opts){.act = FD_ACT_NONE, .compute = FD_NDTYPES};
}

static int float_dtype(const char *op, const char *what, const fd_tensor *t, const fd_tensor *like)
{
    if (t->dtype != FD_F32 && t->dtype != FD_F64)
        return fd_fail("%s: %s dtype %s; takes f32 (f64 runs the reference loops)", op, what, fd_dtype_name(t->dtype));
    if (like && like->dtype != t->dtype)
        return fd_fail("%s: %s dtype %s vs %s", op, what, fd_dtype_name(t->dtype), fd_dtype_name(like->dtype));
    return FD_OK;
}

void fd_mm_plan_release(fd_mm_plan *pl)
{
    fd_tensor_release(&pl->a);
    fd_tensor_release(&pl->b);
}

int fd_matmul_plan(const char *op, const fd_tensor *a, const fd_tensor *b, const fd_mm_opts *o, fd_mm_plan *pl)
{
    memset(pl, 0, sizeof *pl);
    if (float_dtype(op, "a", a, NULL) || float_dtype(op, "b", b, a)) return FD_ERR;
    if (a->ndim < 1 || b->ndim < 1)
        return fd_fail("%s: operands need at least 1 dim, got %s and %s", op, FD_SHAPE_STR(a), FD_SHAPE_STR(b));
    fd_tensor_view_of(&pl->a, a);
    fd_tensor_view_of(&pl->b, b);
    int a1 = a->ndim == 1, b1 = b->ndim == 1;
    int rc = FD_OK;
    if (!a1 && o && o->transpose_a) rc = fd_view_transpose(&pl->a, -1, -2);
    if (rc == FD_OK && !b1 && o && o->transpose_b) rc = fd_view_transpose(&pl->b, -1, -2);
    if (rc == FD_OK && a1) rc = fd_view_unsqueeze(&pl->a, 0); /* [K] -> [1, K] */
    if (rc == FD_OK && b1) rc = fd_view_unsqueeze(&pl->b, 1); /* [K] -> [K, 1] */
    if (rc) goto fail;
    fd_tensor *A = &pl->a, *B = &pl->b;
    int64_t m = A->shape[A->ndim - 2], k = A->shape[A->ndim - 1], kb = B->shape[B->ndim - 2], n = B->shape[B->ndim - 1];
    if (k != kb) {
        rc = fd_fail("%s: shapes %s and %s: inner dims %lld ~= %lld", op, FD_SHAPE_STR(a), FD_SHAPE_STR(b),
                     (long long)k, (long long)kb);
        goto fail;
    }
    int nbd;
    int64_t batch[FD_MAX_DIMS];
    if (fd_broadcast_shape(op, A->ndim - 2, A->shape, B->ndim - 2, B->shape, &nbd, batch)) goto fail;
    if (nbd + 2 > FD_MAX_DIMS) {
        rc = fd_fail("%s: too many dims", op);
        goto fail;
    }
    while (A->ndim < nbd + 2) fd_view_unsqueeze(A, 0);
    while (B->ndim < nbd + 2) fd_view_unsqueeze(B, 0);
    pl->nd = nbd + 2;
    memcpy(pl->full, batch, sizeof(int64_t) * (size_t)nbd);
    pl->full[nbd] = m;
    pl->full[nbd + 1] = n;
    pl->out_ndim = 0;
    for (int i = 0; i < nbd; i++) pl->out_shape[pl->out_ndim++] = batch[i];
    if (!a1) pl->out_shape[pl->out_ndim++] = m;
    if (!b1) pl->out_shape[pl->out_ndim++] = n;
    return FD_OK;
fail:
    fd_mm_plan_release(pl);
    return FD_ERR;
}

int fd_linear_check(const char *op, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b)
{
    if (float_dtype(op, "input", x, NULL) || float_dtype(op, "weight", w, x)) return FD_ERR;
    if (x->ndim < 1) return fd_fail("%s: input %s needs at least 1 dim", op, FD_SHAPE_STR(x));
    if (w->ndim != 2) return fd_fail("%s: weight %s must be [out, in]", op, FD_SHAPE_STR(w));
    if (x->shape[x->ndim - 1] != w->shape[1])
        return fd_fail("%s: weight %s vs input %s: in_features %lld ~= %lld", op, FD_SHAPE_STR(w), FD_SHAPE_STR(x),
                       (long long)x->shape[x->ndim - 1], (long long)w->shape[1]);
    if (b) {
        if (float_dtype(op, "bias", b, x)) return FD_ERR;
        if (b->ndim != 1 || b->shape[0] != w->shape[0])
            return fd_fail("%s: bias %s vs %lld out_features", op, FD_SHAPE_STR(b), (long long)w->shape[0]);
    }
    return FD_OK;
}

int fd_sum_to_shape(fd_tensor *out, const fd_tensor *full, int ndim, const int64_t *shape)
{
    if (fd_tensor_zeros(out, full->dtype, ndim, shape)) return FD_ERR;
    int64_t ost[FD_MAX_DIMS];
    fd_broadcast_strides(out, full->ndim, full->shape, ost);
    const int64_t *strides[2] = {full->stride, ost};
    fd_walk w;
    fd_walk_init(&w, full->ndim, full->shape, 2, strides);
    if (w.empty) return FD_OK;
    const char *src = fd_tensor_data(full);
    char *dst = fd_tensor_data(out);
    do {
        for (int64_t i = 0; i < w.inner_len; i++) {
            int64_t si = w.offset[0] + i * w.inner_stride[0], di = w.offset[1] + i * w.inner_stride[1];
            if (full->dtype == FD_F64)
                ((double *)dst)[di] += ((const double *)src)[si];
            else
                ((float *)dst)[di] += ((const float *)src)[si];
        }
    } while (fd_walk_next(&w));
    return FD_OK;
}

void fd_mm_unplan(fd_tensor *view, const fd_tensor *g, const fd_tensor *orig, int transposed, int is_b)
{
    fd_tensor_view_of(view, g);
    if (transposed && orig->ndim > 1) fd_view_transpose(view, -1, -2);
    if (is_b && orig->ndim == 1) fd_view_select(view, view->ndim - 1, 0); /* the promoted [K, 1] column */
    while (view->ndim > orig->ndim) fd_view_select(view, 0, 0);         /* leading batch 1s, a's [1, K] row */
}

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
    if (float_dtype("matmul_backward", "grad_output", gy, a)) goto done;
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
