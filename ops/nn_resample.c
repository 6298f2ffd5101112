/* Spatial resampling and data-movement ops with their backward passes:
 * nearest upsampling (integer scales), bilinear resize (torch's
 * align_corners=False), average pooling with kernel = stride, pad (constant or
 * reflect), pixel shuffle / unshuffle, embedding gather / scatter-add.
 * f32 kernels over contiguous [N, C, H, W], threads over planes or rows. */
#include <omp.h>
#include <string.h>

#include "nn_common.h"

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

/* ---- average pooling, kernel = stride ------------------------------------- */

int fd_avg_pool2d(fd_tensor *y, const fd_tensor *x, int64_t kh, int64_t kw)
{
    const char *op = "avg_pool2d";
    if (check_nchw(op, "x", x) || check_scale(op, "kernel", kh, kw)) return FD_ERR;
    if (x->shape[2] % kh || x->shape[3] % kw)
        return fd_fail("%s: x %s is not a multiple of the kernel (%lld, %lld)", op, FD_SHAPE_STR(x), (long long)kh,
                       (long long)kw);
    if (x->dtype == FD_F64) return fd_ref_avg_pool2d(y, x, kh, kw);
    const int64_t N = x->shape[0], C = x->shape[1], W = x->shape[3], OH = x->shape[2] / kh, OW = W / kw;
    int64_t shp[4] = {N, C, OH, OW};
    fd_tensor xs = {0};
    float *py;
    float *px = fd_nn_stage_and_alloc(&xs, x, y, 4, shp, false, &py);
    if (!px) return FD_ERR;
    const float inv = 1.0f / (float)(kh * kw);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * C * OH; r++)
        for (int64_t ox = 0; ox < OW; ox++) {
            float s = 0;
            for (int64_t a = 0; a < kh; a++)
                for (int64_t b = 0; b < kw; b++) s += px[(r * kh + a) * W + ox * kw + b];
            py[r * OW + ox] = s * inv;
        }
    fd_tensor_release(&xs);
    return FD_OK;
}

int fd_avg_pool2d_backward(fd_tensor *dx, const fd_tensor *dy, int64_t kh, int64_t kw)
{
    const char *op = "avg_pool2d_backward";
    if (check_nchw(op, "grad_out", dy) || check_scale(op, "kernel", kh, kw)) return FD_ERR;
    if (dy->dtype == FD_F64) return fd_ref_avg_pool2d_backward(dx, dy, kh, kw);
    const int64_t N = dy->shape[0], C = dy->shape[1], OH = dy->shape[2], OW = dy->shape[3], W = OW * kw;
    int64_t shp[4] = {N, C, OH * kh, W};
    fd_tensor gs = {0};
    float *pd;
    float *pg = fd_nn_stage_and_alloc(&gs, dy, dx, 4, shp, false, &pd);
    if (!pg) return FD_ERR;
    const float inv = 1.0f / (float)(kh * kw);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < N * C * OH; r++)
        for (int64_t a = 0; a < kh; a++)
            for (int64_t ox = 0; ox < OW; ox++)
                for (int64_t b = 0; b < kw; b++) pd[(r * kh + a) * W + ox * kw + b] = pg[r * OW + ox] * inv;
    fd_tensor_release(&gs);
    return FD_OK;
}

/* ---- pad ------------------------------------------------------------------ */

int fd_nn_pad_shape(const char *op, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode,
                 int64_t *out_shape)
{
    if (npads < 0 || npads % 2 || npads > 2 * x->ndim)
        return fd_fail("%s: %d pad values for x %s: need an even count <= %d", op, npads, FD_SHAPE_STR(x),
                       2 * x->ndim);
    memcpy(out_shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    for (int p = 0; p < npads / 2; p++) {
        int d = x->ndim - 1 - p;
        int64_t before = pads[2 * p], after = pads[2 * p + 1];
        out_shape[d] = x->shape[d] + before + after;
        if (out_shape[d] <= 0)
            return fd_fail("%s: pads (%lld, %lld) leave dim %d of x %s empty", op, (long long)before, (long long)after,
                           d, FD_SHAPE_STR(x));
        if (mode == FD_PAD_REFLECT && (before >= x->shape[d] || after >= x->shape[d] || before < 0 || after < 0))
            return fd_fail("%s: reflect pads (%lld, %lld) must be in [0, %lld) for dim %d of x %s", op,
                           (long long)before, (long long)after, (long long)x->shape[d], d, FD_SHAPE_STR(x));
    }
    return FD_OK;
}

/* Source index of output index o along a dim: -1 when it falls in constant padding. */
static inline int64_t pad_src(int64_t o, int64_t before, int64_t n, fd_pad_mode mode)
{
    int64_t i = o - before;
    if (mode == FD_PAD_REFLECT) {
        if (i < 0) i = -i;
        if (i >= n) i = 2 * (n - 1) - i;
        return i;
    }
    return i >= 0 && i < n ? i : -1;
}

/* Walks every output element; calls back with its source flat index (or -1). */
static void pad_map(int ndim, const int64_t *xs, const int64_t *ys, const int64_t *before, fd_pad_mode mode,
                    float *y, const float *x, float value, float *dx, const float *dy)
{
    int64_t inner = ys[ndim - 1], rows = 1;
    for (int d = 0; d < ndim - 1; d++) rows *= ys[d];
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, src = 0, mul = 1;
        bool out = false;
        for (int d = ndim - 2; d >= 0; d--) {
            int64_t o = rem % ys[d], i = pad_src(o, before[d], xs[d], mode);
            rem /= ys[d];
            if (i < 0) out = true;
            src += i * mul * xs[ndim - 1];
            mul *= xs[d];
        }
        for (int64_t c = 0; c < inner; c++) {
            int64_t i = pad_src(c, before[ndim - 1], xs[ndim - 1], mode);
            bool o = out || i < 0;
            if (y) y[r * inner + c] = o ? value : x[src + i];
            if (dx && !o) {
#pragma omp atomic
                dx[src + i] += dy[r * inner + c];
            }
        }
    }
}

static void pad_before(const fd_tensor *x, int npads, const int64_t *pads, int64_t *before)
{
    for (int d = 0; d < x->ndim; d++) before[d] = 0;
    for (int p = 0; p < npads / 2; p++) before[x->ndim - 1 - p] = pads[2 * p];
}

int fd_pad(fd_tensor *y, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode, double value)
{
    const char *op = "pad";
    int64_t ys[FD_MAX_DIMS], before[FD_MAX_DIMS];
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_nonempty(op, "x", x) || fd_nn_pad_shape(op, x, npads, pads, mode, ys))
        return FD_ERR;
    if (x->ndim == 0) return fd_tensor_clone(y, x);
    if (x->dtype == FD_F64) return fd_ref_pad(y, x, npads, pads, mode, value);
    fd_tensor xs = {0};
    float *py;
    float *px = fd_nn_stage_and_alloc(&xs, x, y, x->ndim, ys, false, &py);
    if (!px) return FD_ERR;
    pad_before(x, npads, pads, before);
    pad_map(x->ndim, x->shape, ys, before, mode, py, px, (float)value, NULL, NULL);
    fd_tensor_release(&xs);
    return FD_OK;
}

int fd_pad_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x_like, int npads, const int64_t *pads,
                    fd_pad_mode mode)
{
    const char *op = "pad_backward";
    int64_t ys[FD_MAX_DIMS], before[FD_MAX_DIMS];
    if (fd_nn_check_float(op, "grad_out", dy) || fd_nn_check_nonempty(op, "x", x_like) ||
        fd_nn_pad_shape(op, x_like, npads, pads, mode, ys))
        return FD_ERR;
    bool same = dy->ndim == x_like->ndim;
    for (int d = 0; same && d < dy->ndim; d++) same = dy->shape[d] == ys[d];
    if (!same) return fd_fail("%s: grad_out %s, expected the padded shape of x %s", op, FD_SHAPE_STR(dy),
                              FD_SHAPE_STR(x_like));
    if (dy->dtype == FD_F64) return fd_ref_pad_backward(dx, dy, x_like, npads, pads, mode);
    fd_tensor gs = {0};
    float *pd;
    float *pg = fd_nn_stage_and_alloc(&gs, dy, dx, x_like->ndim, x_like->shape, true, &pd);
    if (!pg) return FD_ERR;
    if (x_like->ndim > 0) {
        pad_before(x_like, npads, pads, before);
        pad_map(x_like->ndim, x_like->shape, ys, before, mode, NULL, NULL, 0, pd, pg);
    } else {
        *pd = *pg;
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

/* ---- embedding ------------------------------------------------------------- */

int fd_nn_embedding_check(const char *op, const fd_tensor *idx, int64_t V, fd_tensor *is)
{
    if (idx->dtype != FD_I64 && idx->dtype != FD_I32)
        return fd_fail("%s: indices %s have dtype %s, expected i64 or i32", op, FD_SHAPE_STR(idx),
                       fd_dtype_name(idx->dtype));
    if (idx->ndim + 1 > FD_MAX_DIMS) return fd_fail("%s: indices %s have too many dims", op, FD_SHAPE_STR(idx));
    if (fd_tensor_to_dtype(is, idx, FD_I64)) return FD_ERR;
    const int64_t *p = fd_tensor_data(is);
    for (int64_t i = 0, n = fd_tensor_numel(is); i < n; i++)
        if (p[i] < 0 || p[i] >= V) {
            long long bad = (long long)p[i];
            fd_tensor_release(is);
            return fd_fail("%s: index %lld out of range [0, %lld)", op, bad, (long long)V);
        }
    return FD_OK;
}

int fd_embedding(fd_tensor *y, const fd_tensor *weight, const fd_tensor *idx)
{
    const char *op = "embedding";
    if (fd_nn_check_float(op, "weight", weight) || fd_nn_check_ndim(op, "weight", weight, 2) ||
        fd_nn_check_nonempty(op, "weight", weight))
        return FD_ERR;
    if (weight->dtype == FD_F64) return fd_ref_embedding(y, weight, idx);
    const int64_t V = weight->shape[0], D = weight->shape[1];
    fd_tensor is = {0}, ws = {0};
    if (fd_nn_embedding_check(op, idx, V, &is)) return FD_ERR;
    int64_t shp[FD_MAX_DIMS];
    memcpy(shp, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    shp[idx->ndim] = D;
    float *pw = fd_nn_stage_f32(&ws, weight);
    if (!pw || fd_tensor_empty(y, FD_F32, idx->ndim + 1, shp)) {
        fd_nn_release(&is, &ws, y, NULL, NULL, NULL);
        return FD_ERR;
    }
    const int64_t *pi = fd_tensor_data(&is), n = fd_tensor_numel(&is);
    float *py = fd_tensor_data(y);
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t i = 0; i < n; i++) memcpy(py + i * D, pw + pi[i] * D, sizeof(float) * (size_t)D);
    fd_nn_release(&is, &ws, NULL, NULL, NULL, NULL);
    return FD_OK;
}

int fd_embedding_backward(fd_tensor *dw, const fd_tensor *dy, const fd_tensor *idx, int64_t V)
{
    const char *op = "embedding_backward";
    if (fd_nn_check_float(op, "grad_out", dy)) return FD_ERR;
    if (V <= 0) return fd_fail("%s: num_embeddings %lld must be positive", op, (long long)V);
    bool ok = dy->ndim == idx->ndim + 1;
    for (int d = 0; ok && d < idx->ndim; d++) ok = dy->shape[d] == idx->shape[d];
    if (!ok) return fd_fail("%s: grad_out %s vs indices %s: expected [*indices, D]", op, FD_SHAPE_STR(dy),
                            FD_SHAPE_STR(idx));
    if (dy->dtype == FD_F64) return fd_ref_embedding_backward(dw, dy, idx, V);
    const int64_t D = dy->shape[dy->ndim - 1];
    fd_tensor is = {0}, gs = {0};
    if (fd_nn_embedding_check(op, idx, V, &is)) return FD_ERR;
    int64_t shp[2] = {V, D};
    float *pg = fd_nn_stage_f32(&gs, dy);
    if (!pg || fd_tensor_zeros(dw, FD_F32, 2, shp)) {
        fd_nn_release(&is, &gs, dw, NULL, NULL, NULL);
        return FD_ERR;
    }
    const int64_t *pi = fd_tensor_data(&is), n = fd_tensor_numel(&is);
    float *pd = fd_tensor_data(dw);
    /* threads split the columns, so repeated indices never race */
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t c = 0; c < D; c++)
        for (int64_t i = 0; i < n; i++) pd[pi[i] * D + c] += pg[i * D + c];
    fd_nn_release(&is, &gs, NULL, NULL, NULL, NULL);
    return FD_OK;
}
