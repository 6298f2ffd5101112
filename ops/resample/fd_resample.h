/* Resampling of [N, C, H, W]: nearest upsampling (integer factors) and
 * resize (any size), bilinear resize, average pooling, pixel shuffle /
 * unshuffle, forward and backward: the fast kernels (fd_resample.c) and the
 * reference kernels (fd_resample_ref.c).
 * Conventions of the nn ops: ops/common/fd_nn_common.h. */
#ifndef FD_RESAMPLE_H
#define FD_RESAMPLE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

/* ---- resampling ------------------------------------------------------ */
/* x [N, C, H, W] -> [N, C, H*sh, W*sw]; backward sums each block. */
int fd_upsample_nearest(fd_tensor *y, const fd_tensor *x, int64_t sh, int64_t sw);
int fd_upsample_nearest_backward(fd_tensor *dx, const fd_tensor *dy, int64_t sh, int64_t sw);
int fd_ref_upsample_nearest(fd_tensor *y, const fd_tensor *x, int64_t sh, int64_t sw);
int fd_ref_upsample_nearest_backward(fd_tensor *dx, const fd_tensor *dy, int64_t sh, int64_t sw);
/* torch interpolate(size=(oh, ow), mode='nearest') to [N, C, oh, ow], any
 * sizes (7 -> 5, 5 -> 12); backward sums into each source pixel. */
int fd_resize_nearest(fd_tensor *y, const fd_tensor *x, int64_t oh, int64_t ow);
int fd_resize_nearest_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw);
int fd_ref_resize_nearest(fd_tensor *y, const fd_tensor *x, int64_t oh, int64_t ow);
int fd_ref_resize_nearest_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw);
/* The source index of output o along a dim of `in` -> `out` as torch 1.13
 * defines mode='nearest' (UpSample.h nearest_idx): the identity at equal
 * sizes, o >> 1 at twice the size, else floor(o * (float)in / out) in float
 * arithmetic, clamped to in - 1. The rounding of that float product is part
 * of the definition (it picks a different pixel than the exact rational for
 * some sizes), so both kernels take it from here. */
static inline int64_t fd_nearest_source(int64_t o, int64_t in, int64_t out)
{
    if (out == in) return o;
    if (out == 2 * in) return o >> 1;
    const float scale = (float)in / (float)out;
    int64_t i = (int64_t)floorf((float)o * scale);
    return i < in - 1 ? i : in - 1;
}
/* torch interpolate(mode='bilinear', align_corners=False) to [N, C, oh, ow]. */
int fd_resize_bilinear(fd_tensor *y, const fd_tensor *x, int64_t oh, int64_t ow);
int fd_resize_bilinear_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw);
int fd_ref_resize_bilinear(fd_tensor *y, const fd_tensor *x, int64_t oh, int64_t ow);
int fd_ref_resize_bilinear_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw);
/* torch avg_pool2d(kernel_size=(kh, kw)): kernel = stride, no padding, the
 * output floor(H / kh) x floor(W / kw) (rows and columns past the last whole
 * window are dropped, as torch does). The backward takes the input's size
 * (ih, iw): it is not implied by dy's, and the dropped pixels get 0. */
int fd_avg_pool2d(fd_tensor *y, const fd_tensor *x, int64_t kh, int64_t kw);
int fd_avg_pool2d_backward(fd_tensor *dx, const fd_tensor *dy, int64_t kh, int64_t kw, int64_t ih, int64_t iw);
int fd_ref_avg_pool2d(fd_tensor *y, const fd_tensor *x, int64_t kh, int64_t kw);
int fd_ref_avg_pool2d_backward(fd_tensor *dx, const fd_tensor *dy, int64_t kh, int64_t kw, int64_t ih, int64_t iw);

/* ---- pixel shuffle --------------------------------------------------- */
/* shuffle: [N, C*r*r, H, W] -> [N, C, H*r, W*r]; unshuffle is its inverse
 * (and each one's backward is the other). */
int fd_pixel_shuffle(fd_tensor *y, const fd_tensor *x, int64_t r, bool unshuffle);
int fd_ref_pixel_shuffle(fd_tensor *y, const fd_tensor *x, int64_t r, bool unshuffle);

#endif
