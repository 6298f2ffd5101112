/* The blocked activation layout (fd_tensor.block == FD_CBLOCK): a 4-d f32
 * tensor [N, C, H, W] stored as [N, C/8, H, W, 8], oneDNN's nChw8c. On AVX2,
 * oneDNN's convolutions read and write only this layout, so a chain of
 * conv2d and group_norm that keeps it skips the NCHW <-> nChw8c reorders
 * around every convolution. Everything else sees NCHW: copies and
 * contiguous() convert here, and the Lua binding converts a blocked tensor
 * in place before handing it to an op that does not read the layout. */
#include <string.h>

#include "runtime/core/fd_tensor.h"

/* One (n, 8-channel block) item: 8 channel planes of hw floats <-> hw pixels
 * of 8 lanes. Element (pixel p, lane l) is at p * dp + l * dl in d and
 * p * sp + l * sl in s; the callers pass constants, so each direction
 * compiles to its own loops. Tiles of 8 pixels keep the 8 strided streams short. */
static inline void transpose_item(float *restrict d, int64_t dp, int64_t dl, const float *restrict s, int64_t sp,
                                  int64_t sl, int64_t hw)
{
    int64_t p = 0;
    for (; p + 8 <= hw; p += 8)
        for (int l = 0; l < FD_CBLOCK; l++)
            for (int q = 0; q < 8; q++) d[(p + q) * dp + l * dl] = s[(p + q) * sp + l * sl];
    for (; p < hw; p++)
        for (int l = 0; l < FD_CBLOCK; l++) d[p * dp + l * dl] = s[p * sp + l * sl];
}

/* Both between contiguous buffers of n*c*hw floats; to_blocked picks the way. */
static void convert(float *d, const float *s, int64_t n, int64_t c, int64_t hw, bool to_blocked)
{
    int64_t items = n * (c / FD_CBLOCK), run = FD_CBLOCK * hw;
#pragma omp parallel for schedule(static) if (items * run > 32768)
    for (int64_t i = 0; i < items; i++) {
        if (to_blocked)
            transpose_item(d + i * run, FD_CBLOCK, 1, s + i * run, 1, hw, hw);
        else
            transpose_item(d + i * run, 1, hw, s + i * run, FD_CBLOCK, 1, hw);
    }
}

bool fd_tensor_can_block(const fd_tensor *t)
{
    return t->ndim == 4 && t->dtype == FD_F32 && t->shape[1] % FD_CBLOCK == 0;
}

int fd_tensor_empty_blocked(fd_tensor *out, const int64_t shape[4])
{
    if (shape[1] % FD_CBLOCK)
        return fd_fail("blocked layout: %lld channels are not a multiple of %d", (long long)shape[1], FD_CBLOCK);
    if (fd_tensor_empty(out, FD_F32, 4, shape)) return FD_ERR;
    out->block = FD_CBLOCK;
    return FD_OK;
}

int fd_tensor_block(fd_tensor *out, const fd_tensor *x)
{
    memset(out, 0, sizeof *out);
    if (x->block) {
        fd_tensor_view_of(out, x);
        return FD_OK;
    }
    if (!fd_tensor_can_block(x))
        return fd_fail("blocked layout: needs a 4-d f32 tensor [N, C, H, W] with C a multiple of %d, got %s %s",
                       FD_CBLOCK, fd_dtype_name(x->dtype), FD_SHAPE_STR(x));
    return fd_tensor_empty_blocked(out, x->shape) || fd_tensor_copy_(out, x) ? (fd_tensor_release(out), FD_ERR)
                                                                             : FD_OK;
}

int fd_tensor_unblock(fd_tensor *out, const fd_tensor *x)
{
    memset(out, 0, sizeof *out);
    if (!x->block) {
        fd_tensor_view_of(out, x);
        return FD_OK;
    }
    if (fd_tensor_empty(out, FD_F32, 4, x->shape)) return FD_ERR;
    convert(fd_tensor_data(out), fd_tensor_data(x), x->shape[0], x->shape[1], x->shape[2] * x->shape[3], false);
    return FD_OK;
}

/* fd_tensor_copy_ when either side is blocked. */
int fd_tensor_copy_blocked_(fd_tensor *dst, const fd_tensor *src)
{
    bool same_shape = dst->ndim == src->ndim && memcmp(dst->shape, src->shape, sizeof(int64_t) * (size_t)dst->ndim) == 0;
    fd_tensor tmp = {0};
    int rc;
    if (src->block && dst->block) {
        if (!same_shape) return fd_fail("copy: blocked source %s vs blocked destination %s", FD_SHAPE_STR(src), FD_SHAPE_STR(dst));
        memcpy(fd_tensor_data(dst), fd_tensor_data(src), (size_t)fd_tensor_numel(src) * sizeof(float));
        fd_tensor_bump_version(dst);
        return FD_OK;
    }
    if (src->block) { /* into a plain destination: straight in when it is NCHW-contiguous f32 */
        if (same_shape && dst->dtype == FD_F32 && fd_tensor_is_contiguous(dst)) {
            convert(fd_tensor_data(dst), fd_tensor_data(src), src->shape[0], src->shape[1],
                    src->shape[2] * src->shape[3], false);
            fd_tensor_bump_version(dst);
            return FD_OK;
        }
        rc = fd_tensor_unblock(&tmp, src) || fd_tensor_copy_(dst, &tmp);
    } else { /* a plain source (any strides, dtype, broadcast) into a blocked destination */
        if (same_shape && src->dtype == FD_F32 && fd_tensor_is_contiguous(src)) {
            convert(fd_tensor_data(dst), fd_tensor_data(src), dst->shape[0], dst->shape[1],
                    dst->shape[2] * dst->shape[3], true);
            fd_tensor_bump_version(dst);
            return FD_OK;
        }
        rc = fd_tensor_empty(&tmp, FD_F32, 4, dst->shape) || fd_tensor_copy_(&tmp, src) || fd_tensor_copy_(dst, &tmp);
    }
    fd_tensor_release(&tmp);
    return rc ? FD_ERR : FD_OK;
}
