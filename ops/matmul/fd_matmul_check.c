/* The shape logic both matmul paths share (see fd_matmul_check.h): the
 * oneDNN/OpenBLAS kernels in fd_matmul.c and the reference loops in
 * fd_matmul_ref.c plan, check and reduce their operands the same way. */
#include <string.h>

#include "ops/matmul/fd_matmul_check.h"

void fd_mm_opts_default(fd_mm_opts *o)
{
    *o = (fd_mm_opts){.act = FD_ACT_NONE, .compute = FD_NDTYPES};
}

int fd_matmul_check_dtype(const char *op, const char *what, const fd_tensor *t, const fd_tensor *like)
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
    if (fd_matmul_check_dtype(op, "a", a, NULL) || fd_matmul_check_dtype(op, "b", b, a)) return FD_ERR;
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
    if (fd_matmul_check_dtype(op, "input", x, NULL) || fd_matmul_check_dtype(op, "weight", w, x)) return FD_ERR;
    if (x->ndim < 1) return fd_fail("%s: input %s needs at least 1 dim", op, FD_SHAPE_STR(x));
    if (w->ndim != 2) return fd_fail("%s: weight %s must be [out, in]", op, FD_SHAPE_STR(w));
    if (x->shape[x->ndim - 1] != w->shape[1])
        return fd_fail("%s: weight %s vs input %s: in_features %lld ~= %lld", op, FD_SHAPE_STR(w), FD_SHAPE_STR(x),
                       (long long)x->shape[x->ndim - 1], (long long)w->shape[1]);
    if (b) {
        if (fd_matmul_check_dtype(op, "bias", b, x)) return FD_ERR;
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
