/* Reference kernels for activations, losses, resampling, pad, pixel shuffle
 * and embedding: simple loops in double over contiguous f64 copies, outputs
 * in the input's dtype. Written from the definitions, independent of the fast
 * kernels' index tricks (pixel shuffle by explicit indices, bilinear by its
 * 4-tap formula in double, pad by per-dim index mapping). */
#include <math.h>
#include <string.h>

#include "nn_common.h"

#define OUT(t, dt)                                                                                                     \
    do {                                                                                                               \
        if (fd_nn_to_dtype_inplace((t), (dt))) return FD_ERR;                                                             \
    } while (0)

/* ---- activations ------------------------------------------------------------ */

static double act(fd_activation_kind k, double x, bool deriv)
{
    const double K = sqrt(2.0 / M_PI), A = 0.044715;
    double s = 1.0 / (1.0 + exp(-x));
    switch (k) {
    case FD_ACTIVATION_SILU: return deriv ? s * (1 + x * (1 - s)) : x * s;
    case FD_ACTIVATION_GELU: {
        double cdf = 0.5 * (1 + erf(x / sqrt(2.0)));
        return deriv ? cdf + x * exp(-0.5 * x * x) / sqrt(2 * M_PI) : x * cdf;
    }
    case FD_ACTIVATION_GELU_TANH: {
        double t = tanh(K * (x + A * x * x * x));
        return deriv ? 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * K * (1 + 3 * A * x * x) : 0.5 * x * (1 + t);
    }
    case FD_ACTIVATION_SIGMOID: return deriv ? s * (1 - s) : s;
    case FD_ACTIVATION_TANH: return deriv ? 1 - tanh(x) * tanh(x) : tanh(x);
    case FD_ACTIVATION_RELU: return deriv ? (x > 0 ? 1 : 0) : (x > 0 ? x : 0);
    default: return 0;
    }
}

int fd_ref_activation(fd_tensor *y, const fd_tensor *x, fd_activation_kind k)
{
    if (k < 0 || k >= FD_ACTIVATION_COUNT) return fd_fail("activation: unknown kind %d", (int)k);
    if (fd_nn_check_float(fd_activation_name(k), "x", x)) return FD_ERR;
    fd_tensor xs = {0};
    double *px = fd_nn_stage_f64(&xs, x);
    if (!px || fd_tensor_empty_as(y, x, FD_F64)) {
        fd_nn_release(&xs, y, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    double *py = fd_tensor_data(y);
    for (int64_t i = 0, n = fd_tensor_numel(x); i < n; i++) py[i] = act(k, px[i], false);
    fd_tensor_release(&xs);
    OUT(y, x->dtype);
    return FD_OK;
}

int fd_ref_activation_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x, fd_activation_kind k)
{
    const char *op = fd_activation_name(k);
    if (k < 0 || k >= FD_ACTIVATION_COUNT) return fd_fail("activation_backward: unknown kind %d", (int)k);
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_float(op, "grad_out", dy) ||
        fd_nn_check_same_shape(op, "grad_out", dy, "x", x))
        return FD_ERR;
    fd_tensor xs = {0}, gs = {0};
    double *px = fd_nn_stage_f64(&xs, x), *pg = fd_nn_stage_f64(&gs, dy);
    if (!px || !pg || fd_tensor_empty_as(dx, x, FD_F64)) {
        fd_nn_release(&xs, &gs, dx, NULL, NULL, NULL);
        return FD_ERR;
    }
    double *pd = fd_tensor_data(dx);
    for (int64_t i = 0, n = fd_tensor_numel(x); i < n; i++) pd[i] = pg[i] * act(k, px[i], true);
    fd_nn_release(&xs, &gs, NULL, NULL, NULL, NULL);
    OUT(dx, x->dtype);
    return FD_OK;
}

/* ---- losses -------------------------------------------------------------------- */

static int ref_loss_stage(const char *op, const fd_tensor *x, const fd_tensor *t, const fd_tensor *wm, fd_tensor *xs,
                          fd_tensor *ts, fd_tensor *ws)
{
    if (fd_nn_check_float(op, "x", x) || fd_nn_check_float(op, "target", t) || fd_nn_check_same_shape(op, "x", x, "target", t) ||
        (wm && fd_nn_check_float(op, "weight", wm)))
        return FD_ERR;
    if (!fd_nn_stage_f64(xs, x) || !fd_nn_stage_f64(ts, t) ||
        (wm && (fd_tensor_empty_as(ws, x, FD_F64) || fd_tensor_copy_(ws, wm)))) {
        fd_nn_release(xs, ts, ws, NULL, NULL, NULL);
        return FD_ERR;
    }
    return FD_OK;
}

int fd_ref_loss(fd_tensor *out, const fd_tensor *x, const fd_tensor *target, const fd_tensor *wmap, fd_loss_kind k,
                bool mean)
{
    fd_tensor xs = {0}, ts = {0}, ws = {0};
    if (ref_loss_stage(k == FD_LOSS_MSE ? "mse_loss" : "l1_loss", x, target, wmap, &xs, &ts, &ws)) return FD_ERR;
    const double *px = fd_tensor_data(&xs), *pt = fd_tensor_data(&ts), *pw = wmap ? fd_tensor_data(&ws) : NULL;
    double s = 0;
    int64_t n = fd_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        double d = px[i] - pt[i];
        s += (pw ? pw[i] : 1.0) * (k == FD_LOSS_MSE ? d * d : fabs(d));
    }
    fd_nn_release(&xs, &ts, &ws, NULL, NULL, NULL);
    if (fd_tensor_empty(out, FD_F64, 0, (int64_t[1]){1})) return FD_ERR;
    *(double *)fd_tensor_data(out) = mean && n ? s / (double)n : s;
    OUT(out, x->dtype);
    return FD_OK;
}

int fd_ref_loss_backward(fd_tensor *dx, double grad, const fd_tensor *x, const fd_tensor *target,
                         const fd_tensor *wmap, fd_loss_kind k, bool mean)
{
    fd_tensor xs = {0}, ts = {0}, ws = {0};
    if (ref_loss_stage(k == FD_LOSS_MSE ? "mse_loss_backward" : "l1_loss_backward", x, target, wmap, &xs, &ts, &ws))
        return FD_ERR;
    if (fd_tensor_empty_as(dx, x, FD_F64)) {
        fd_nn_release(&xs, &ts, &ws, NULL, NULL, NULL);
        return FD_ERR;
    }
    const double *px = fd_tensor_data(&xs), *pt = fd_tensor_data(&ts), *pw = wmap ? fd_tensor_data(&ws) : NULL;
    double *pd = fd_tensor_data(dx);
    int64_t n = fd_tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        double d = px[i] - pt[i], e = k == FD_LOSS_MSE ? 2 * d : (d > 0) - (d < 0);
        pd[i] = grad * (pw ? pw[i] : 1.0) * e / (mean && n ? (double)n : 1.0);
    }
    fd_nn_release(&xs, &ts, &ws, NULL, NULL, NULL);
    OUT(dx, x->dtype);
    return FD_OK;
}

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
    OUT(y, x->dtype);
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
    OUT(dx, dy->dtype);
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
    OUT(y, x->dtype);
    return FD_OK;
}

int fd_ref_resize_bilinear_backward(fd_tensor *dx, const fd_tensor *dy, int64_t ih, int64_t iw)
{
    fd_tensor gs = {0};
    if (stage4("resize_bilinear_backward", dy, &gs, dx, ih, iw)) return FD_ERR;
    bilinear(fd_tensor_data(&gs), fd_tensor_data(dx), dy->shape[0] * dy->shape[1], ih, iw, dy->shape[2], dy->shape[3],
             true);
    fd_tensor_release(&gs);
    OUT(dx, dy->dtype);
    return FD_OK;
}

int fd_ref_avg_pool2d(fd_tensor *y, const fd_tensor *x, int64_t kh, int64_t kw)
{
    const char *op = "avg_pool2d";
    if (fd_nn_check_ndim(op, "x", x, 4)) return FD_ERR;
    if (kh < 1 || kw < 1 || x->shape[2] % kh || x->shape[3] % kw)
        return fd_fail("%s: x %s is not a multiple of the kernel (%lld, %lld)", op, FD_SHAPE_STR(x), (long long)kh,
                       (long long)kw);
    fd_tensor xs = {0};
    if (stage4(op, x, &xs, y, x->shape[2] / kh, x->shape[3] / kw)) return FD_ERR;
    const double *px = fd_tensor_data(&xs);
    double *py = fd_tensor_data(y);
    int64_t P = x->shape[0] * x->shape[1], H = x->shape[2], W = x->shape[3], OH = H / kh, OW = W / kw;
    for (int64_t p = 0; p < P; p++)
        for (int64_t iy = 0; iy < H; iy++)
            for (int64_t ix = 0; ix < W; ix++)
                py[(p * OH + iy / kh) * OW + ix / kw] += px[(p * H + iy) * W + ix] / (double)(kh * kw);
    fd_tensor_release(&xs);
    OUT(y, x->dtype);
    return FD_OK;
}

int fd_ref_avg_pool2d_backward(fd_tensor *dx, const fd_tensor *dy, int64_t kh, int64_t kw)
{
    const char *op = "avg_pool2d_backward";
    if (fd_nn_check_ndim(op, "grad_out", dy, 4)) return FD_ERR;
    if (kh < 1 || kw < 1) return fd_fail("%s: kernel (%lld, %lld) must be >= 1", op, (long long)kh, (long long)kw);
    fd_tensor gs = {0};
    if (stage4(op, dy, &gs, dx, dy->shape[2] * kh, dy->shape[3] * kw)) return FD_ERR;
    const double *pg = fd_tensor_data(&gs);
    double *pd = fd_tensor_data(dx);
    int64_t P = dy->shape[0] * dy->shape[1], OH = dy->shape[2], OW = dy->shape[3], H = OH * kh, W = OW * kw;
    for (int64_t p = 0; p < P; p++)
        for (int64_t iy = 0; iy < H; iy++)
            for (int64_t ix = 0; ix < W; ix++)
                pd[(p * H + iy) * W + ix] = pg[(p * OH + iy / kh) * OW + ix / kw] / (double)(kh * kw);
    fd_tensor_release(&gs);
    OUT(dx, dy->dtype);
    return FD_OK;
}

/* ---- pad --------------------------------------------------------------------------- */

/* Flat index into x of the element that output multi-index o reads, or -1. */
static int64_t ref_pad_src(const fd_tensor *x, const int64_t *o, const int64_t *before, fd_pad_mode mode)
{
    int64_t flat = 0;
    for (int d = 0; d < x->ndim; d++) {
        int64_t n = x->shape[d], i = o[d] - before[d];
        if (mode == FD_PAD_REFLECT) {
            if (i < 0) i = -i;
            if (i > n - 1) i = 2 * (n - 1) - i;
        } else if (i < 0 || i >= n) {
            return -1;
        }
        flat = flat * n + i;
    }
    return flat;
}

static void ref_pad_walk(const fd_tensor *x, int ndim, const int64_t *ys, const int64_t *before, fd_pad_mode mode,
                         double *y, const double *px, double value, double *dx, const double *dy)
{
    int64_t o[FD_MAX_DIMS] = {0}, n = 1;
    for (int d = 0; d < ndim; d++) n *= ys[d];
    for (int64_t k = 0; k < n; k++) {
        int64_t s = ref_pad_src(x, o, before, mode);
        if (y) y[k] = s < 0 ? value : px[s];
        if (dx && s >= 0) dx[s] += dy[k];
        for (int d = ndim - 1; d >= 0; d--) { /* next multi-index */
            if (++o[d] < ys[d]) break;
            o[d] = 0;
        }
    }
}

int fd_ref_pad(fd_tensor *y, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode, double value)
{
    int64_t ys[FD_MAX_DIMS], before[FD_MAX_DIMS] = {0};
    if (fd_nn_check_float("pad", "x", x) || fd_nn_check_nonempty("pad", "x", x) ||
        fd_nn_pad_shape("pad", x, npads, pads, mode, ys))
        return FD_ERR;
    for (int p = 0; p < npads / 2; p++) before[x->ndim - 1 - p] = pads[2 * p];
    fd_tensor xs = {0};
    if (!fd_nn_stage_f64(&xs, x) || fd_tensor_empty(y, FD_F64, x->ndim, ys)) {
        fd_nn_release(&xs, y, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    ref_pad_walk(x, x->ndim, ys, before, mode, fd_tensor_data(y), fd_tensor_data(&xs), value, NULL, NULL);
    fd_tensor_release(&xs);
    OUT(y, x->dtype);
    return FD_OK;
}

int fd_ref_pad_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x_like, int npads, const int64_t *pads,
                        fd_pad_mode mode)
{
    int64_t ys[FD_MAX_DIMS], before[FD_MAX_DIMS] = {0};
    if (fd_nn_check_float("pad_backward", "grad_out", dy) || fd_nn_pad_shape("pad_backward", x_like, npads, pads, mode, ys))
        return FD_ERR;
    bool same = dy->ndim == x_like->ndim;
    for (int d = 0; same && d < dy->ndim; d++) same = dy->shape[d] == ys[d];
    if (!same)
        return fd_fail("pad_backward: grad_out %s, expected the padded shape of x %s", FD_SHAPE_STR(dy),
                       FD_SHAPE_STR(x_like));
    for (int p = 0; p < npads / 2; p++) before[x_like->ndim - 1 - p] = pads[2 * p];
    fd_tensor gs = {0};
    if (!fd_nn_stage_f64(&gs, dy) || fd_tensor_zeros(dx, FD_F64, x_like->ndim, x_like->shape)) {
        fd_nn_release(&gs, dx, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    ref_pad_walk(x_like, x_like->ndim, ys, before, mode, NULL, NULL, 0, fd_tensor_data(dx), fd_tensor_data(&gs));
    fd_tensor_release(&gs);
    OUT(dx, dy->dtype);
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
    OUT(y, x->dtype);
    return FD_OK;
}

/* ---- embedding -------------------------------------------------------------------------- */

int fd_ref_embedding(fd_tensor *y, const fd_tensor *weight, const fd_tensor *idx)
{
    const char *op = "embedding";
    if (fd_nn_check_float(op, "weight", weight) || fd_nn_check_ndim(op, "weight", weight, 2) ||
        fd_nn_check_nonempty(op, "weight", weight))
        return FD_ERR;
    const int64_t V = weight->shape[0], D = weight->shape[1];
    fd_tensor is = {0}, ws = {0};
    if (fd_nn_embedding_check(op, idx, V, &is)) return FD_ERR;
    int64_t shp[FD_MAX_DIMS];
    memcpy(shp, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    shp[idx->ndim] = D;
    const double *pw = fd_nn_stage_f64(&ws, weight);
    if (!pw || fd_tensor_empty(y, FD_F64, idx->ndim + 1, shp)) {
        fd_nn_release(&is, &ws, y, NULL, NULL, NULL);
        return FD_ERR;
    }
    const int64_t *pi = fd_tensor_data(&is);
    double *py = fd_tensor_data(y);
    for (int64_t i = 0, n = fd_tensor_numel(&is); i < n; i++)
        for (int64_t c = 0; c < D; c++) py[i * D + c] = pw[pi[i] * D + c];
    fd_nn_release(&is, &ws, NULL, NULL, NULL, NULL);
    OUT(y, weight->dtype);
    return FD_OK;
}

int fd_ref_embedding_backward(fd_tensor *dw, const fd_tensor *dy, const fd_tensor *idx, int64_t V)
{
    const char *op = "embedding_backward";
    if (fd_nn_check_float(op, "grad_out", dy)) return FD_ERR;
    bool ok = dy->ndim == idx->ndim + 1 && V > 0;
    for (int d = 0; ok && d < idx->ndim; d++) ok = dy->shape[d] == idx->shape[d];
    if (!ok) return fd_fail("%s: grad_out %s vs indices %s (num_embeddings %lld)", op, FD_SHAPE_STR(dy),
                            FD_SHAPE_STR(idx), (long long)V);
    const int64_t D = dy->shape[dy->ndim - 1];
    fd_tensor is = {0}, gs = {0};
    if (fd_nn_embedding_check(op, idx, V, &is)) return FD_ERR;
    int64_t shp[2] = {V, D};
    const double *pg = fd_nn_stage_f64(&gs, dy);
    if (!pg || fd_tensor_zeros(dw, FD_F64, 2, shp)) {
        fd_nn_release(&is, &gs, dw, NULL, NULL, NULL);
        return FD_ERR;
    }
    const int64_t *pi = fd_tensor_data(&is);
    double *pd = fd_tensor_data(dw);
    for (int64_t i = 0, n = fd_tensor_numel(&is); i < n; i++)
        for (int64_t c = 0; c < D; c++) pd[pi[i] * D + c] += pg[i * D + c];
    fd_nn_release(&is, &gs, NULL, NULL, NULL, NULL);
    OUT(dw, dy->dtype);
    return FD_OK;
}
