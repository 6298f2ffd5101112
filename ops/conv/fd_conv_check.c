/* What the oneDNN path (fd_conv.c) and the reference loops (fd_conv_ref.c)
 * agree on before they compute: the operand checks, the output shape, and
 * the layout an output takes. See fd_conv_check.h. */
#include <string.h>

#include "ops/conv/fd_conv_check.h"

/* ---- layouts ------------------------------------------------------------ */

void fd_nhwc_strides(const int64_t s[4], int64_t st[4])
{
    st[1] = 1;
    st[3] = s[1];
    st[2] = s[3] * s[1];
    st[0] = s[2] * s[3] * s[1];
}

int fd_is_channels_last(const fd_tensor *t)
{
    if (t->ndim != 4 || t->block || fd_tensor_is_contiguous(t)) return 0;
    int64_t st[4];
    fd_nhwc_strides(t->shape, st);
    for (int i = 0; i < 4; i++)
        if (t->shape[i] != 1 && t->stride[i] != st[i]) return 0;
    return 1;
}

fd_layout fd_conv_out_layout(const fd_tensor *x, fd_layout asked)
{
    if (asked != FD_LAYOUT_AUTO) return asked;
    return x->block ? FD_LAYOUT_BLOCKED : fd_is_channels_last(x) ? FD_LAYOUT_NHWC : FD_LAYOUT_NCHW;
}

int fd_tensor_empty_layout(fd_tensor *out, fd_dtype dt, const int64_t shape[4], fd_layout layout)
{
    if (layout == FD_LAYOUT_BLOCKED && dt == FD_F32 && shape[1] % FD_CBLOCK == 0)
        return fd_tensor_empty_blocked(out, shape);
    if (layout != FD_LAYOUT_NHWC) return fd_tensor_empty(out, dt, 4, shape);
    int64_t phys[4] = {shape[0], shape[2], shape[3], shape[1]};
    if (fd_tensor_empty(out, dt, 4, phys)) return FD_ERR;
    memcpy(out->shape, shape, sizeof(int64_t) * 4);
    fd_nhwc_strides(shape, out->stride);
    return FD_OK;
}

/* ---- checks ------------------------------------------------------------- */

fd_dtype fd_conv_out_dtype(const fd_tensor *x) { return x->dtype == FD_BF16 ? FD_F32 : x->dtype; }

int fd_conv_check_dtype(const char *op, const char *what, const fd_tensor *t, const fd_tensor *x)
{
    if (t->dtype != FD_F32 && t->dtype != FD_F64)
        return fd_fail("%s: %s dtype %s; convolution takes f32 (f64 runs the reference loops; a bf16 input "
                       "takes f32 weights)", op, what, fd_dtype_name(t->dtype));
    if (x && t->dtype != fd_conv_out_dtype(x))
        return fd_fail("%s: %s dtype %s vs input dtype %s (wants %s)", op, what, fd_dtype_name(t->dtype),
                       fd_dtype_name(x->dtype), fd_dtype_name(fd_conv_out_dtype(x)));
    return FD_OK;
}

int fd_conv2d_check(const char *op, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b,
                    const fd_tensor *residual, const fd_conv_params *p, int64_t os[4])
{
    if (x->ndim != 4) return fd_fail("%s: input %s must have 4 dims [N, C, H, W]", op, FD_SHAPE_STR(x));
    if (w->ndim != 4) return fd_fail("%s: weight %s must have 4 dims [O, C/groups, KH, KW]", op, FD_SHAPE_STR(w));
    if ((x->dtype != FD_BF16 && fd_conv_check_dtype(op, "input", x, NULL)) || fd_conv_check_dtype(op, "weight", w, x))
        return FD_ERR;
    for (int i = 0; i < 4; i++) {
        if (x->shape[i] == 0) return fd_fail("%s: input %s has a zero-size dim %d", op, FD_SHAPE_STR(x), i + 1);
        if (w->shape[i] == 0) return fd_fail("%s: weight %s has a zero-size dim %d", op, FD_SHAPE_STR(w), i + 1);
    }
    if (p->groups < 1) return fd_fail("%s: groups %lld must be >= 1", op, (long long)p->groups);
    for (int i = 0; i < 2; i++) {
        if (p->stride[i] < 1) return fd_fail("%s: stride %lld must be >= 1", op, (long long)p->stride[i]);
        if (p->dilation[i] < 1) return fd_fail("%s: dilation %lld must be >= 1", op, (long long)p->dilation[i]);
        if (p->padding[i] < 0) return fd_fail("%s: padding %lld must be >= 0", op, (long long)p->padding[i]);
    }
    int64_t c = x->shape[1], o = w->shape[0];
    if (c % p->groups)
        return fd_fail("%s: groups %lld do not divide the input's %lld channels", op, (long long)p->groups,
                       (long long)c);
    if (o % p->groups)
        return fd_fail("%s: groups %lld do not divide the weight's %lld output channels", op,
                       (long long)p->groups, (long long)o);
    if (w->shape[1] * p->groups != c)
        return fd_fail("%s: weight %s vs input %s: in_channels %lld ~= %lld x %lld groups", op, FD_SHAPE_STR(w),
                       FD_SHAPE_STR(x), (long long)c, (long long)w->shape[1], (long long)p->groups);
    os[0] = x->shape[0];
    os[1] = o;
    for (int i = 0; i < 2; i++) {
        int64_t span = p->dilation[i] * (w->shape[2 + i] - 1) + 1;
        int64_t in = x->shape[2 + i] + 2 * p->padding[i];
        if (in < span)
            return fd_fail("%s: kernel %lld (dilated %lld) is larger than the padded input %lld (input %s, padding %lld)",
                           op, (long long)w->shape[2 + i], (long long)span, (long long)in, FD_SHAPE_STR(x),
                           (long long)p->padding[i]);
        os[2 + i] = (in - span) / p->stride[i] + 1;
    }
    if (b) {
        if (fd_conv_check_dtype(op, "bias", b, x)) return FD_ERR;
        if (b->ndim != 1 || b->shape[0] != o)
            return fd_fail("%s: bias %s vs %lld output channels", op, FD_SHAPE_STR(b), (long long)o);
    }
    if (residual) {
        if (fd_conv_check_dtype(op, "residual", residual, x)) return FD_ERR;
        if (residual->ndim != 4 || memcmp(residual->shape, os, sizeof(int64_t) * 4) != 0)
            return fd_fail("%s: residual %s vs output %s", op, FD_SHAPE_STR(residual),
                           fd_shape_str((char[128]){0}, 128, 4, os));
    }
    return FD_OK;
}
