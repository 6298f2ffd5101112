/* Image resize: separable bilinear and area filters over f32 planes.
 * Both filters are separable (a rectangle average is a product of 1-D
 * averages), so each is a horizontal then a vertical pass of 1-D taps, done
 * a source row at a time (fd_resize_rows), so a decoder can feed rows as it
 * makes them and the whole picture never has to exist in floats. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/fd_image.h"

/* 1-D taps: output i reads src[first[i] + j] * weight[i * max_taps + j]. */
typedef struct taps {
    int64_t *first;
    int *count;
    float *weight;
    int max_taps;
} taps;

static void taps_free(taps *t)
{
    free(t->first);
    free(t->count);
    free(t->weight);
}

static int taps_make(taps *t, int64_t in, int64_t out, int area)
{
    double scale = (double)in / (double)out;
    t->max_taps = area ? (int)ceil(scale) + 1 : 2;
    t->first = malloc(sizeof *t->first * (size_t)out);
    t->count = malloc(sizeof *t->count * (size_t)out);
    t->weight = calloc((size_t)out * (size_t)t->max_taps, sizeof *t->weight);
    if (!t->first || !t->count || !t->weight) {
        taps_free(t);
        return fd_fail("image.resize: out of memory");
    }
    for (int64_t i = 0; i < out; i++) {
        float *w = t->weight + i * t->max_taps;
        if (area) { /* torch adaptive_avg_pool: [floor(i*in/out), ceil((i+1)*in/out)) */
            int64_t s = (i * in) / out, e = ((i + 1) * in + out - 1) / out;
            t->first[i] = s;
            t->count[i] = (int)(e - s);
            for (int64_t j = 0; j < e - s; j++) w[j] = 1.0f / (float)(e - s);
        } else { /* half-pixel centres, negative positions clamped to 0 */
            double src = scale * ((double)i + 0.5) - 0.5;
            if (src < 0) src = 0;
            int64_t i0 = (int64_t)src;
            if (i0 > in - 1) i0 = in - 1;
            float l1 = (float)(src - (double)i0);
            t->first[i] = i0;
            t->count[i] = i0 + 1 < in ? 2 : 1;
            w[0] = t->count[i] == 2 ? 1.0f - l1 : 1.0f;
            if (t->count[i] == 2) w[1] = l1;
        }
    }
    return FD_OK;
}

/* Streaming: each input row is resized horizontally into mid (one row per
 * plane), then added, with its vertical weight, into every output row whose
 * taps include it. Output row i accumulates its taps in increasing source
 * order from 0, as a vertical pass over the whole picture would. */
struct fd_resize_rows {
    taps tx, ty;
    int64_t planes, H, W, h, w, y, lo; /* y: the next input row; lo: the first output row still open */
    float *mid;                        /* [planes, w] */
    float *dst;                        /* [planes, h, w] */
};

void fd_resize_rows_free(fd_resize_rows *rs)
{
    if (!rs) return;
    taps_free(&rs->tx);
    taps_free(&rs->ty);
    free(rs->mid);
    free(rs);
}

int fd_resize_rows_new(fd_resize_rows **out, int64_t planes, int64_t H, int64_t W, int64_t h, int64_t w, int area,
                       float *dst)
{
    *out = NULL;
    fd_resize_rows *rs = calloc(1, sizeof *rs);
    if (!rs) return fd_fail("image.resize: out of memory");
    *rs = (fd_resize_rows){.planes = planes, .H = H, .W = W, .h = h, .w = w, .dst = dst};
    if (taps_make(&rs->tx, W, w, area) || taps_make(&rs->ty, H, h, area) ||
        !(rs->mid = malloc(sizeof *rs->mid * (size_t)(planes * w)))) {
        fd_resize_rows_free(rs);
        return fd_fail("image.resize: out of memory");
    }
    *out = rs;
    return FD_OK;
}

void fd_resize_rows_push(fd_resize_rows *rs, const float *src, int64_t plane_stride)
{
    const int64_t y = rs->y++, w = rs->w, h = rs->h;
    const taps *tx = &rs->tx, *ty = &rs->ty;
    for (int64_t p = 0; p < rs->planes; p++) {
        const float *s = src + p * plane_stride;
        float *m = rs->mid + p * w;
        for (int64_t x = 0; x < w; x++) {
            const float *wt = tx->weight + x * tx->max_taps, *row = s + tx->first[x];
            float acc = 0;
            for (int j = 0; j < tx->count[x]; j++) acc += wt[j] * row[j];
            m[x] = acc;
        }
    }
    while (rs->lo < h && ty->first[rs->lo] + ty->count[rs->lo] <= y) rs->lo++;
    for (int64_t i = rs->lo; i < h && ty->first[i] <= y; i++) {
        if (y >= ty->first[i] + ty->count[i]) continue;
        const float wt = ty->weight[i * ty->max_taps + (y - ty->first[i])];
        for (int64_t p = 0; p < rs->planes; p++) {
            const float *m = rs->mid + p * w;
            float *d = rs->dst + (p * h + i) * w;
            for (int64_t x = 0; x < w; x++) d[x] += wt * m[x];
        }
    }
}

/* planes x [H, W] -> planes x [h, w] (dst zeroed), a plane at a time (the
 * rows of one plane stay in cache) */
static int resize_planes(float *dst, const float *src, int64_t planes, int64_t H, int64_t W, int64_t h, int64_t w,
                         int area)
{
    for (int64_t p = 0; p < planes; p++) {
        fd_resize_rows *rs;
        if (fd_resize_rows_new(&rs, 1, H, W, h, w, area, dst + p * h * w)) return FD_ERR;
        for (int64_t y = 0; y < H; y++) fd_resize_rows_push(rs, src + (p * H + y) * W, 0);
        fd_resize_rows_free(rs);
    }
    return FD_OK;
}

int fd_image_resize(fd_tensor *out, const fd_tensor *src, int64_t h, int64_t w, const char *mode)
{
    fd_tensor_release(out);
    int area;
    if (!strcmp(mode, "bilinear")) area = 0;
    else if (!strcmp(mode, "area")) area = 1;
    else return fd_fail("image.resize: mode '%s' (expected 'bilinear' or 'area')", mode);
    if (h < 1 || w < 1 || h > FD_IMAGE_MAX_SIDE || w > FD_IMAGE_MAX_SIDE)
        return fd_fail("image.resize: target size %lldx%lld (width x height) out of range", (long long)w, (long long)h);
    int hwc = src->dtype == FD_U8;
    if (hwc ? src->ndim != 3 : src->ndim < 2)
        return fd_fail("image.resize: expected u8 [H, W, C] or float [..., H, W], got %s %s", fd_dtype_name(src->dtype),
                       FD_SHAPE_STR(src));
    if (!hwc && !fd_dtype_is_float(src->dtype))
        return fd_fail("image.resize: pixels must be u8 or float, got %s", fd_dtype_name(src->dtype));
    fd_tensor view = {0}, in = {0}, res = {0};
    fd_tensor_view_of(&view, src);
    if (hwc && fd_view_permute(&view, (const int[]){2, 0, 1})) goto fail; /* [C, H, W] */
    if (fd_tensor_to_dtype(&in, &view, FD_F32)) goto fail;
    fd_tensor flat = {0};
    if (fd_tensor_contiguous(&flat, &in)) goto fail;
    fd_tensor_release(&in);
    in = flat;
    int nd = in.ndim;
    int64_t H = in.shape[nd - 2], W = in.shape[nd - 1];
    if (H < 1 || W < 1) {
        fd_fail("image.resize: cannot resize an empty image %s", FD_SHAPE_STR(src));
        goto fail;
    }
    int64_t shape[FD_MAX_DIMS];
    memcpy(shape, in.shape, sizeof shape);
    shape[nd - 2] = h, shape[nd - 1] = w;
    if (fd_tensor_zeros(&res, FD_F32, nd, shape)) goto fail;
    if (resize_planes(fd_tensor_data(&res), fd_tensor_data(&in), fd_tensor_numel(&in) / (H * W), H, W, h, w, area))
        goto fail;
    if (hwc) {
        if (fd_view_permute(&res, (const int[]){1, 2, 0})) goto fail; /* back to [h, w, C] */
        float *p = fd_tensor_data(&res);
        for (int64_t i = 0, n = fd_tensor_numel(&res); i < n; i++) p[i] = rintf(p[i]); /* u8 copy truncates */
    }
    if (fd_tensor_to_dtype(out, &res, src->dtype)) goto fail;
    fd_tensor_release(&view);
    fd_tensor_release(&in);
    fd_tensor_release(&res);
    return FD_OK;
fail:
    fd_tensor_release(&view);
    fd_tensor_release(&in);
    fd_tensor_release(&res);
    return FD_ERR;
}
