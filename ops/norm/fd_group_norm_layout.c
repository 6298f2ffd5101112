/* The layouts the fast GroupNorm kernels run in, staging into them, and the
 * argument checks forward and backward share (see fd_group_norm_layout.h). */
#include "ops/common/fd_nn_common.h"
#include "ops/norm/fd_group_norm_layout.h"

/* Strides of [N, C, *spatial] stored as [N, *spatial, C]. */
static void channels_last_strides(const fd_tensor *t, int64_t *st)
{
    int nd = t->ndim;
    st[1] = 1;
    int64_t s = t->shape[1];
    for (int k = nd - 1; k >= 2; k--) {
        st[k] = s;
        s *= t->shape[k];
    }
    st[0] = s;
}

bool fd_gn_is_channels_last(const fd_tensor *t)
{
    if (t->ndim < 3 || t->block) return false;
    int64_t st[FD_MAX_DIMS];
    channels_last_strides(t, st);
    for (int k = 0; k < t->ndim; k++)
        if (t->shape[k] != 1 && t->stride[k] != st[k]) return false;
    return !fd_tensor_is_contiguous(t); /* both: the NCHW kernel is as good */
}

/* An f32 copy (or view) of t in the layout the kernel runs in. */
float *fd_gn_stage_layout(fd_tensor *tmp, const fd_tensor *t, bool cl)
{
    if (!cl) return fd_nn_stage_f32(tmp, t);
    if (t->dtype == FD_F32 && fd_gn_is_channels_last(t)) {
        fd_tensor_view_of(tmp, t);
        return fd_tensor_data(tmp);
    }
    if (fd_tensor_empty_as(tmp, t, FD_F32)) return NULL;
    channels_last_strides(t, tmp->stride);
    if (fd_tensor_copy_(tmp, t)) {
        fd_tensor_release(tmp);
        return NULL;
    }
    return fd_tensor_data(tmp);
}

int fd_gn_alloc_like(fd_tensor *out, const fd_tensor *x, bool cl)
{
    if (fd_tensor_empty_as(out, x, FD_F32)) return FD_ERR;
    if (cl) channels_last_strides(x, out->stride);
    return FD_OK;
}

int fd_gn_check_args(const char *op, const fd_tensor *x, int64_t G, const fd_tensor *w, const fd_tensor *b)
{
    if (fd_nn_check_float(op, "x", x)) return FD_ERR;
    if (x->ndim < 2) return fd_fail("%s: x %s needs at least 2 dims [N, C, ...]", op, FD_SHAPE_STR(x));
    if (fd_nn_check_nonempty(op, "x", x)) return FD_ERR;
    if (G <= 0 || x->shape[1] % G != 0)
        return fd_fail("%s: groups %lld do not divide the %lld channels of x %s", op, (long long)G,
                       (long long)x->shape[1], FD_SHAPE_STR(x));
    if (fd_nn_check_vec(op, "weight", w, x->shape[1]) || fd_nn_check_vec(op, "bias", b, x->shape[1])) return FD_ERR;
    return FD_OK;
}
