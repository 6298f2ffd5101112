/* Spatial resampling with its backward passes: nearest upsampling (integer
 * scales) and resize (any size, torch's mode='nearest'), bilinear resize
 * (torch's align_corners=False), average pooling with kernel = stride (the
 * output floored, as torch), pixel shuffle / unshuffle. f32 kernels over
 * contiguous [N, C, H, W], threads over planes or rows; nearest upsampling
 * also reads channels-last as it lies and writes it so. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/resample/fd_resample.h"

static int check_nchw(const char *op, const char *arg, const fd_tensor *x)
{
    if (fd_nn_check_float(op, arg, x) || fd_nn_check_ndim(op, arg, x, 4) || fd_nn_check_nonempty(op, arg, x)) return FD_ERR;
    return FD_OK;
}

static int check_scale(const char *op, const char *what, int64_t a, int64_t b)
{
    if (a < 1 || b < 1) return fd_fail("%s: %s (%lld, %lld) must be >= 1", op, what, (long long)a, (long long)b);
    return FD_OK;
}

/* ---- nearest upsampling --------------------------------------------------- */

int fd_upsample_nearest(fd_tensor *y, const fd_tensor *x, int64_t sh, int64_t sw)
{
    const char *op = "upsample_nearest";
    if (check_nchw(op, "x", x) || check_scale(op, "scale", sh, sw)) return FD_ERR;
    if (x->dtype == FD_F64) return fd_ref_upsample_nearest(y, x, sh, sw);
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], OW = W * sw;
    int64_t shp[4] = {N, C, H * sh, OW};
    int perm[FD_MAX_DIMS];
    if (x->dtype == FD_F32 && fd_tensor_is_dense_permuted(x, perm) && perm[1] == 2 && perm[2] == 3 && perm[3] == 1) {
        /* channels-last in, channels-last out: a pixel's channels are one run */
        if (fd_tensor_empty(y, FD_F32, 4, shp)) return FD_ERR;
        fd_strides_in_order(4, shp, perm, y->stride);
        const float *px = fd_tensor_data(x);
        float *py = fd_tensor_data(y);
        const size_t run = sizeof(float) * (size_t)C;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < N * H; r++) { /* one input row of pixels -> sh output rows */
            const float *src = px + r * W * C;
            float *dst = py + r * sh * OW * C;
            for (int64_t ix = 0; ix < W; ix++)
                for (int64_t b = 0; b < sw; b++) memcpy(dst + (ix * sw + b) * C, src + ix * C, run);
            for (int64_t a = 1; a < sh; a++) memcpy(dst + a * OW * C, dst, run * (size_t)OW);
        }
        return FD_OK;
    }
    fd_tensor xs = {0};
    float *py;
    float *px = fd_nn_stage_and_alloc(&xs, x, y, 4, shp, false, &py);
    if (!px) return FD_ERR;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * C * H; r++) { /* one input row -> sh output rows */
        const float *src = px + r * W;
        float *dst = py + r * sh * OW;
        for (int64_t ix = 0; ix < W; ix++)
            for (int64_t b = 0; b < sw; b++) dst[ix * sw + b] = src[ix];
        for (int64_t a = 1; a < sh; a++) memcpy(dst + a * OW, dst, sizeof(float) * (size_t)OW);
    }
    fd_tensor_release(&xs);
    return FD_OK;
}

int fd_upsample_nearest_backward(fd_tensor *dx, const fd_tensor *dy, int64_t sh, int64_t sw)
{
    const char *op = "upsample_nearest_backward";
    if (check_nchw(op, "grad_out", dy) || check_scale(op, "scale", sh, sw)) return FD_ERR;
    if (dy->shape[2] % sh || dy->shape[3] % sw)
        return fd_fail("%s: grad_out %s is not a multiple of the scale (%lld, %lld)", op, FD_SHAPE_STR(dy),
                       (long long)sh, (long long)sw);
    if (dy->dtype == FD_F64) return fd_ref_upsample_nearest_backward(dx, dy, sh, sw);
    const int64_t N = dy->shape[0], C = dy->shape[1], H = dy->shape[2] / sh, W = dy->shape[3] / sw, OW = W * sw;
    int64_t shp[4] = {N, C, H, W};
    fd_tensor gs = {0};
    float *pd;
    float *pg = fd_nn_stage_and_alloc(&gs, dy, dx, 4, shp, false, &pd);
    if (!pg) return FD_ERR;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * C * H; r++)
        for (int64_t ix = 0; ix < W; ix++) {
            float s = 0;
            for (int64_t a = 0; a < sh; a++)
                for (int64_t b = 0; b < sw; b++) s += pg[(r * sh + a) * OW + ix * sw + b];
            pd[r * W + ix] = s;
        }
    fd_tensor_release(&gs);
    return FD_OK;
}

/* ---- nearest resize to any size ------------------------------------------- */

/* The source index of each output position along one dim, [out]. */
static int64_t *nearest_table(int64_t in, int64_t out)
{
    int64_t *t = malloc(sizeof *t * (size_t)out);
    if (t)
        for (int64_t o = 0; o < out; o++) t[o] = fd_nearest_source(o, in, out);
    return t;
}

int fd_resize_nearest(fd_tensor *y, const fd_tensor *x, int64_t oh, int64_t ow)
{
    const char *op = "resize_nearest";
    if (check_nchw(op, "x", x) || check_scale(op, "output size", oh, ow)) return FD_ERR;
    if (x->dtype == FD_F64) return fd_ref_resize_nearest(y, x, oh, ow);
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t *ix = nearest_table(W, ow);
    if (!ix) return fd_fail("%s: out of memory", op);
    int64_t shp[4] = {N, C, oh, ow};
    fd_tensor xs = {0};
    float *py;
    float *px = fd_nn_stage_and_alloc(&xs, x, y, 4, shp, false, &py);
    if (!px) {
        free(ix);
        return FD_ERR;
    }
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * C * oh; r++) { /* one output row */
        const float *src = px + (r / oh * H + fd_nearest_source(r % oh, H, oh)) * W;
        float *dst = py + r * ow;
        for (int64_t ox = 0; ox < ow; ox++) dst[ox] = src[ix[ox]];
    }
    free(ix);
    fd_tensor_release(&xs);
    return FD_OK;
}

int fd_resize_nearest_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw)
{
    const char *op = "resize_nearest_backward";
    if (check_nchw(op, "grad_out", dy) || check_scale(op, "input size", ih, iw)) return FD_ERR;
    if (dy->dtype == FD_F64) return fd_ref_resize_nearest_backward(dx, dy, ih, iw);
    const int64_t N = dy->shape[0], C = dy->shape[1], oh = dy->shape[2], ow = dy->shape[3];
    int64_t *ix = nearest_table(iw, ow);
    if (!ix) return fd_fail("%s: out of memory", op);
    int64_t shp[4] = {N, C, ih, iw};
    fd_tensor gs = {0};
    float *pd;
    float *pg = fd_nn_stage_and_alloc(&gs, dy, dx, 4, shp, true, &pd);
    if (!pg) {
        free(ix);
        return FD_ERR;
    }
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < N * C; p++) /* planes are independent: scatter without races */
        for (int64_t oy = 0; oy < oh; oy++) {
            float *dst = pd + (p * ih + fd_nearest_source(oy, ih, oh)) * iw;
            const float *g = pg + (p * oh + oy) * ow;
            for (int64_t ox = 0; ox < ow; ox++) dst[ix[ox]] += g[ox];
        }
    free(ix);
    fd_tensor_release(&gs);
    return FD_OK;
}

/* ---- bilinear resize ------------------------------------------------------ */

/* torch's source index for align_corners=False: (dst + 0.5) * in/out - 0.5, clamped at 0. */
static void bilinear_taps(int64_t in, int64_t out, int64_t o, int64_t *i0, int64_t *i1, float *l1)
{
    float src = ((float)o + 0.5f) * ((float)in / (float)out) - 0.5f;
    if (src < 0) src = 0;
    *i0 = (int64_t)src;
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 < in - 1 ? *i0 + 1 : *i0;
    *l1 = src - (float)*i0;
}

int fd_resize_bilinear(fd_tensor *y, const fd_tensor *x, int64_t oh, int64_t ow)
{
    const char *op = "resize_bilinear";
    if (check_nchw(op, "x", x) || check_scale(op, "output size", oh, ow)) return FD_ERR;
    if (x->dtype == FD_F64) return fd_ref_resize_bilinear(y, x, oh, ow);
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    int64_t shp[4] = {N, C, oh, ow};
    fd_tensor xs = {0};
    float *py;
    float *px = fd_nn_stage_and_alloc(&xs, x, y, 4, shp, false, &py);
    if (!px) return FD_ERR;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * C * oh; r++) {
        int64_t p = r / oh, oy = r % oh, y0, y1, x0, x1;
        float ly, lx;
        bilinear_taps(H, oh, oy, &y0, &y1, &ly);
        const float *r0 = px + (p * H + y0) * W, *r1 = px + (p * H + y1) * W;
        for (int64_t ox = 0; ox < ow; ox++) {
            bilinear_taps(W, ow, ox, &x0, &x1, &lx);
            py[r * ow + ox] = (1 - ly) * ((1 - lx) * r0[x0] + lx * r0[x1]) + ly * ((1 - lx) * r1[x0] + lx * r1[x1]);
        }
    }
    fd_tensor_release(&xs);
    return FD_OK;
}

int fd_resize_bilinear_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw)
{
    const char *op = "resize_bilinear_backward";
    if (check_nchw(op, "grad_out", dy) || check_scale(op, "input size", ih, iw)) return FD_ERR;
    if (dy->dtype == FD_F64) return fd_ref_resize_bilinear_backward(dx, dy, ih, iw);
    const int64_t N = dy->shape[0], C = dy->shape[1], oh = dy->shape[2], ow = dy->shape[3];
    int64_t shp[4] = {N, C, ih, iw};
    fd_tensor gs = {0};
    float *pd;
    float *pg = fd_nn_stage_and_alloc(&gs, dy, dx, 4, shp, true, &pd);
    if (!pg) return FD_ERR;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < N * C; p++) /* planes are independent: scatter without races */
        for (int64_t oy = 0; oy < oh; oy++) {
            int64_t y0, y1, x0, x1;
            float ly, lx;
            bilinear_taps(ih, oh, oy, &y0, &y1, &ly);
            float *r0 = pd + (p * ih + y0) * iw, *r1 = pd + (p * ih + y1) * iw;
            for (int64_t ox = 0; ox < ow; ox++) {
                bilinear_taps(iw, ow, ox, &x0, &x1, &lx);
                float g = pg[(p * oh + oy) * ow + ox];
                r0[x0] += (1 - ly) * (1 - lx) * g, r0[x1] += (1 - ly) * lx * g;
                r1[x0] += ly * (1 - lx) * g, r1[x1] += ly * lx * g;
            }
        }
    fd_tensor_release(&gs);
    return FD_OK;
}

/* ---- average pooling, kernel = stride, the output floored (torch) --------- */

int fd_avg_pool2d(fd_tensor *y, const fd_tensor *x, int64_t kh, int64_t kw)
{
    const char *op = "avg_pool2d";
    if (check_nchw(op, "x", x) || check_scale(op, "kernel", kh, kw)) return FD_ERR;
    if (x->shape[2] < kh || x->shape[3] < kw)
        return fd_fail("%s: x %s is smaller than the kernel (%lld, %lld)", op, FD_SHAPE_STR(x), (long long)kh,
                       (long long)kw);
    if (x->dtype == FD_F64) return fd_ref_avg_pool2d(y, x, kh, kw);
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3], OH = H / kh, OW = W / kw;
    int64_t shp[4] = {N, C, OH, OW};
    fd_tensor xs = {0};
    float *py;
    float *px = fd_nn_stage_and_alloc(&xs, x, y, 4, shp, false, &py);
    if (!px) return FD_ERR;
    const float inv = 1.0f / (float)(kh * kw);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * C * OH; r++) {
        const float *plane = px + (r / OH) * H * W, *rows = plane + (r % OH) * kh * W;
        for (int64_t ox = 0; ox < OW; ox++) {
            float s = 0;
            for (int64_t a = 0; a < kh; a++)
                for (int64_t b = 0; b < kw; b++) s += rows[a * W + ox * kw + b];
            py[r * OW + ox] = s * inv;
        }
    }
    fd_tensor_release(&xs);
    return FD_OK;
}

int fd_avg_pool2d_backward(fd_tensor *dx, const fd_tensor *dy, int64_t kh, int64_t kw, int64_t ih, int64_t iw)
{
    const char *op = "avg_pool2d_backward";
    if (check_nchw(op, "grad_out", dy) || check_scale(op, "kernel", kh, kw)) return FD_ERR;
    const int64_t N = dy->shape[0], C = dy->shape[1], OH = dy->shape[2], OW = dy->shape[3];
    if (ih / kh != OH || iw / kw != OW)
        return fd_fail("%s: grad_out %s does not pool from an input of %lldx%lld by kernel (%lld, %lld): expected "
                       "%lldx%lld", op, FD_SHAPE_STR(dy), (long long)ih, (long long)iw, (long long)kh, (long long)kw,
                       (long long)(ih / kh), (long long)(iw / kw));
    if (dy->dtype == FD_F64) return fd_ref_avg_pool2d_backward(dx, dy, kh, kw, ih, iw);
    int64_t shp[4] = {N, C, ih, iw};
    fd_tensor gs = {0};
    float *pd;
    float *pg = fd_nn_stage_and_alloc(&gs, dy, dx, 4, shp, ih % kh || iw % kw, &pd);
    if (!pg) return FD_ERR;
    const float inv = 1.0f / (float)(kh * kw);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * C * OH; r++) {
        float *rows = pd + (r / OH) * ih * iw + (r % OH) * kh * iw;
        for (int64_t a = 0; a < kh; a++)
            for (int64_t ox = 0; ox < OW; ox++)
                for (int64_t b = 0; b < kw; b++) rows[a * iw + ox * kw + b] = pg[r * OW + ox] * inv;
    }
    fd_tensor_release(&gs);
    return FD_OK;
}

/* ---- pixel shuffle: a permuted copy of a 6-d view -------------------------- */

int fd_pixel_shuffle(fd_tensor *y, const fd_tensor *x, int64_t r, bool unshuffle)
{
    const char *op = unshuffle ? "pixel_unshuffle" : "pixel_shuffle";
    if (check_nchw(op, "x", x) || check_scale(op, "factor", r, r)) return FD_ERR;
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    if (!unshuffle && C % (r * r))
        return fd_fail("%s: x %s: channels %lld are not a multiple of %lld", op, FD_SHAPE_STR(x), (long long)C,
                       (long long)(r * r));
    if (unshuffle && (H % r || W % r))
        return fd_fail("%s: x %s: H and W must be multiples of %lld", op, FD_SHAPE_STR(x), (long long)r);
    fd_tensor v = {0};
    fd_tensor_view_of(&v, x);
    /* shuffle: [N, C', r, r, H, W] -> [N, C', H, r, W, r]; unshuffle the reverse */
    int64_t s6[6], o4[4];
    int perm_s[6] = {0, 1, 4, 2, 5, 3}, perm_u[6] = {0, 1, 3, 5, 2, 4};
    if (!unshuffle) {
        int64_t t[6] = {N, C / (r * r), r, r, H, W}, o[4] = {N, C / (r * r), H * r, W * r};
        memcpy(s6, t, sizeof t), memcpy(o4, o, sizeof o);
    } else {
        int64_t t[6] = {N, C, H / r, r, W / r, r}, o[4] = {N, C * r * r, H / r, W / r};
        memcpy(s6, t, sizeof t), memcpy(o4, o, sizeof o);
    }
    fd_tensor c = {0};
    int rc = fd_view_reshape(&v, 6, s6);
    if (rc) { /* not viewable as 6-d (odd strides): copy first */
        fd_tensor_release(&v);
        if (fd_tensor_contiguous(&v, x) || fd_view_reshape(&v, 6, s6)) {
            fd_tensor_release(&v);
            return FD_ERR;
        }
    }
    if (fd_view_permute(&v, unshuffle ? perm_u : perm_s) || fd_tensor_clone(&c, &v) || fd_view_reshape(&c, 4, o4)) {
        fd_nn_release(&v, &c, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    fd_tensor_release(&v);
    *y = c;
    return FD_OK;
}
