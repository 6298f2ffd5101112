/* Reference kernels for nearest upsampling and resize, bilinear resize,
 * average pooling and pixel shuffle: simple loops in double over contiguous
 * f64 copies, outputs in the input's dtype. Written from the definitions,
 * independent of the fast kernels' index tricks (pixel shuffle by explicit
 * indices, bilinear by its 4-tap formula in double); nearest resize shares
 * only fd_nearest_source, torch's float index rule, which is its definition. */
#include <math.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/resample/fd_resample.h"

/* ---- resampling ----------------------------------------------------------------- */

/* Stages an NCHW input as f64 and makes a zeroed f64 output of shape (n, c, h, w). */
static int stage4(const char *op, const fd_tensor *x, fd_tensor *xs, fd_tensor *y, int64_t h, int64_t w)
{
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_ndim(op, "x", x, 4) || fd_nn_check_nonempty(op, "x", x)) return FD_ERR;
    if (h < 1 || w < 1) return fd_fail("%s: output size (%lld, %lld) must be positive", op, (long long)h, (long long)w);
    int64_t shp[4] = {x->shape[0], x->shape[1], h, w};
    if (!fd_nn_stage_f64(xs, x) || fd_tensor_zeros(y, FD_F64, 4, shp)) {
        fd_nn_release(xs, y, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    return FD_OK;
}

int fd_ref_upsample_nearest(fd_tensor *y, const fd_tensor *x, int64_t sh, int64_t sw)
{
    fd_tensor xs = {0};
    if (sh < 1 || sw < 1) return fd_fail("upsample_nearest: scale (%lld, %lld) must be >= 1", (long long)sh, (long long)sw);
    if (x->ndim == 4 && stage4("upsample_nearest", x, &xs, y, x->shape[2] * sh, x->shape[3] * sw)) return FD_ERR;
    if (x->ndim != 4) return fd_nn_check_ndim("upsample_nearest", "x", x, 4);
    const double *px = fd_tensor_data(&xs);
    double *py = fd_tensor_data(y);
    int64_t P = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3], OH = H * sh, OW = W * sw;
    for (int64_t p = 0; p < P; p++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) py[(p * OH + oy) * OW + ox] = px[(p * H + oy / sh) * W + ox / sw];
    fd_tensor_release(&xs);
    FD_NN_OUT(y, x->dtype);
    return FD_OK;
}

int fd_ref_upsample_nearest_backward(fd_tensor *dx, const fd_tensor *dy, int64_t sh, int64_t sw)
{
    const char *op = "upsample_nearest_backward";
    if (fd_nn_check_ndim(op, "grad_out", dy, 4)) return FD_ERR;
    if (sh < 1 || sw < 1 || dy->shape[2] % sh || dy->shape[3] % sw)
        return fd_fail("%s: grad_out %s vs scale (%lld, %lld)", op, FD_SHAPE_STR(dy), (long long)sh, (long long)sw);
    fd_tensor gs = {0};
    if (stage4(op, dy, &gs, dx, dy->shape[2] / sh, dy->shape[3] / sw)) return FD_ERR;
    const double *pg = fd_tensor_data(&gs);
    double *pd = fd_tensor_data(dx);
    int64_t P = dy->shape[0] * dy->shape[1], OH = dy->shape[2], OW = dy->shape[3], H = OH / sh, W = OW / sw;
    for (int64_t p = 0; p < P; p++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) pd[(p * H + oy / sh) * W + ox / sw] += pg[(p * OH + oy) * OW + ox];
    fd_tensor_release(&gs);
    FD_NN_OUT(dx, dy->dtype);
    return FD_OK;
}

/* Nearest resize both ways from one gather/scatter loop over the outputs,
 * sources by torch's rule (fd_nearest_source). */
static void nearest(const double *src, double *dst, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW,
                    bool backward)
{
    for (int64_t p = 0; p < P; p++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                int64_t i = (p * H + fd_nearest_source(oy, H, OH)) * W + fd_nearest_source(ox, W, OW);
                int64_t o = (p * OH + oy) * OW + ox;
                if (backward)
                    dst[i] += src[o];
                else
                    dst[o] = src[i];
            }
}

int fd_ref_resize_nearest(fd_tensor *y, const fd_tensor *x, int64_t oh, int64_t ow)
{
    fd_tensor xs = {0};
    if (stage4("resize_nearest", x, &xs, y, oh, ow)) return FD_ERR;
    nearest(fd_tensor_data(&xs), fd_tensor_data(y), x->shape[0] * x->shape[1], x->shape[2], x->shape[3], oh, ow,
            false);
    fd_tensor_release(&xs);
    FD_NN_OUT(y, x->dtype);
    return FD_OK;
}

int fd_ref_resize_nearest_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw)
{
    fd_tensor gs = {0};
    if (stage4("resize_nearest_backward", dy, &gs, dx, ih, iw)) return FD_ERR;
    nearest(fd_tensor_data(&gs), fd_tensor_data(dx), dy->shape[0] * dy->shape[1], ih, iw, dy->shape[2], dy->shape[3],
            true);
    fd_tensor_release(&gs);
    FD_NN_OUT(dx, dy->dtype);
    return FD_OK;
}

static void taps(int64_t in, int64_t out, int64_t o, int64_t *i0, int64_t *i1, double *l1)
{
    double src = ((double)o + 0.5) * (double)in / (double)out - 0.5;
    if (src < 0) src = 0;
    *i0 = (int64_t)floor(src);
    if (*i0 > in - 1) *i0 = in - 1;
    *i1 = *i0 + 1 < in ? *i0 + 1 : in - 1;
    *l1 = src - (double)*i0;
}

/* One routine for both directions: forward gathers, backward scatters the same weights. */
static void bilinear(const double *src, double *dst, int64_t P, int64_t H, int64_t W, int64_t OH, int64_t OW,
                     bool backward)
{
    for (int64_t p = 0; p < P; p++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                int64_t y0, y1, x0, x1;
                double ly, lx;
                taps(H, OH, oy, &y0, &y1, &ly);
                taps(W, OW, ox, &x0, &x1, &lx);
                int64_t at[4] = {(p * H + y0) * W + x0, (p * H + y0) * W + x1, (p * H + y1) * W + x0,
                                 (p * H + y1) * W + x1};
                double wt[4] = {(1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx};
                int64_t o = (p * OH + oy) * OW + ox;
                for (int t = 0; t < 4; t++) {
                    if (backward)
                        dst[at[t]] += wt[t] * src[o];
                    else
                        dst[o] += wt[t] * src[at[t]];
                }
            }
}

int fd_ref_resize_bilinear(fd_tensor *y, const fd_tensor *x, int64_t oh, int64_t ow)
{
    fd_tensor xs = {0};
    if (stage4("resize_bilinear", x, &xs, y, oh, ow)) return FD_ERR;
    bilinear(fd_tensor_data(&xs), fd_tensor_data(y), x->shape[0] * x->shape[1], x->shape[2], x->shape[3], oh, ow,
             false);
    fd_tensor_release(&xs);
    FD_NN_OUT(y, x->dtype);
    return FD_OK;
}

int fd_ref_resize_bilinear_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw)
{
    fd_tensor gs = {0};
    if (stage4("resize_bilinear_backward", dy, &gs, dx, ih, iw)) return FD_ERR;
    bilinear(fd_tensor_data(&gs), fd_tensor_data(dx), dy->shape[0] * dy->shape[1], ih, iw, dy->shape[2], dy->shape[3],
             true);
    fd_tensor_release(&gs);
    FD_NN_OUT(dx, dy->dtype);
    return FD_OK;
}

/* Each output is the mean of its kh x kw window; windows cover rows and
 * columns up to OH * kh and OW * kw, the rest (H % kh, W % kw) is unused. */
int fd_ref_avg_pool2d(fd_tensor *y, const fd_tensor *x, int64_t kh, int64_t kw)
{
    const char *op = "avg_pool2d";
    if (fd_nn_check_ndim(op, "x", x, 4)) return FD_ERR;
    if (kh < 1 || kw < 1 || x->shape[2] < kh || x->shape[3] < kw)
        return fd_fail("%s: x %s vs kernel (%lld, %lld): the kernel must be >= 1 and fit", op, FD_SHAPE_STR(x),
                       (long long)kh, (long long)kw);
    fd_tensor xs = {0};
    if (stage4(op, x, &xs, y, x->shape[2] / kh, x->shape[3] / kw)) return FD_ERR;
    const double *px = fd_tensor_data(&xs);
    double *py = fd_tensor_data(y);
    int64_t P = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3], OH = H / kh, OW = W / kw;
    for (int64_t p = 0; p < P; p++)
        for (int64_t iy = 0; iy < OH * kh; iy++)
            for (int64_t ix = 0; ix < OW * kw; ix++)
                py[(p * OH + iy / kh) * OW + ix / kw] += px[(p * H + iy) * W + ix] / (double)(kh * kw);
    fd_tensor_release(&xs);
    FD_NN_OUT(y, x->dtype);
    return FD_OK;
}

int fd_ref_avg_pool2d_backward(fd_tensor *dx, const fd_tensor *dy, int64_t kh, int64_t kw, int64_t ih, int64_t iw)
{
    const char *op = "avg_pool2d_backward";
    if (fd_nn_check_ndim(op, "grad_out", dy, 4)) return FD_ERR;
    if (kh < 1 || kw < 1) return fd_fail("%s: kernel (%lld, %lld) must be >= 1", op, (long long)kh, (long long)kw);
    if (ih / kh != dy->shape[2] || iw / kw != dy->shape[3])
        return fd_fail("%s: grad_out %s does not pool from an input of %lldx%lld by kernel (%lld, %lld)", op,
                       FD_SHAPE_STR(dy), (long long)ih, (long long)iw, (long long)kh, (long long)kw);
    fd_tensor gs = {0};
    if (stage4(op, dy, &gs, dx, ih, iw)) return FD_ERR;
    const double *pg = fd_tensor_data(&gs);
    double *pd = fd_tensor_data(dx);
    int64_t P = dy->shape[0] * dy->shape[1], OH = dy->shape[2], OW = dy->shape[3];
    for (int64_t p = 0; p < P; p++)
        for (int64_t iy = 0; iy < OH * kh; iy++)
            for (int64_t ix = 0; ix < OW * kw; ix++)
                pd[(p * ih + iy) * iw + ix] = pg[(p * OH + iy / kh) * OW + ix / kw] / (double)(kh * kw);
    fd_tensor_release(&gs);
    FD_NN_OUT(dx, dy->dtype);
    return FD_OK;
}

/* ---- pixel shuffle ---------------------------------------------------------------------- */

int fd_ref_pixel_shuffle(fd_tensor *y, const fd_tensor *x, int64_t r, bool unshuffle)
{
    const char *op = unshuffle ? "pixel_unshuffle" : "pixel_shuffle";
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_ndim(op, "x", x, 4) || fd_nn_check_nonempty(op, "x", x)) return FD_ERR;
    const int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    if (r < 1 || (!unshuffle && C % (r * r)) || (unshuffle && (H % r || W % r)))
        return fd_fail("%s: x %s does not split by factor %lld", op, FD_SHAPE_STR(x), (long long)r);
    /* the big tensor is [N, c, H*r, W*r]; the small one [N, c*r*r, H, W] */
    int64_t c = unshuffle ? C : C / (r * r), Hs = unshuffle ? H / r : H, Ws = unshuffle ? W / r : W;
    int64_t shp[4] = {N, unshuffle ? C * r * r : c, unshuffle ? Hs : H * r, unshuffle ? Ws : W * r};
    fd_tensor xs = {0};
    const double *px = fd_nn_stage_f64(&xs, x);
    if (!px || fd_tensor_empty(y, FD_F64, 4, shp)) {
        fd_nn_release(&xs, y, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    double *py = fd_tensor_data(y);
    for (int64_t n = 0; n < N; n++)
        for (int64_t ch = 0; ch < c; ch++)
            for (int64_t i = 0; i < r; i++)
                for (int64_t j = 0; j < r; j++)
                    for (int64_t h = 0; h < Hs; h++)
                        for (int64_t w = 0; w < Ws; w++) {
                            int64_t small = ((n * c * r * r + ch * r * r + i * r + j) * Hs + h) * Ws + w;
                            int64_t big = ((n * c + ch) * Hs * r + h * r + i) * Ws * r + w * r + j;
                            if (unshuffle)
                                py[small] = px[big];
                            else
                                py[big] = px[small];
                        }
    fd_tensor_release(&xs);
    FD_NN_OUT(y, x->dtype);
    return FD_OK;
}
