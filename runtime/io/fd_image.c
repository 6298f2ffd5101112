/* Image files in, tensors out (and back): format dispatch by content, pixel
 * depth and range conversions, channel conversions, and loading straight to
 * a crop window resized (decoded rows go through fd_resize_rows as they come). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/fd_image.h"
#include "runtime/io/fd_io.h"
#include "runtime/io/fd_video.h"

/* PNG files are read whole: the decoder's allocation bound needs the size. */
#define PNG_MAX_FILE ((size_t)1 << 30)

/* ---- pixels ------------------------------------------------------------- */

static float sample_at(const fd_image *img, size_t i)
{
    return img->bits == 16 ? ((const uint16_t *)img->data)[i] / 65535.0f : img->data[i] / 255.0f;
}

/* Channel k (of `channels` wanted) of pixel p, in [0, 1]. */
static float pixel_channel(const fd_image *img, size_t p, int k, int channels)
{
    int c = img->channels;
    size_t i = p * (size_t)c;
    int has_alpha = c == 2 || c == 4, color = c >= 3;
    if (channels == 1) {
        if (!color) return sample_at(img, i);
        return 0.299f * sample_at(img, i) + 0.587f * sample_at(img, i + 1) + 0.114f * sample_at(img, i + 2);
    }
    if (k == 3) return has_alpha ? sample_at(img, i + (size_t)c - 1) : 1.0f; /* opaque */
    if (channels == 2 && k == 1) return has_alpha ? sample_at(img, i + (size_t)c - 1) : 1.0f;
    return color ? sample_at(img, i + (size_t)k) : sample_at(img, i);
}

/* ---- loading: decoded rows -> the tensor asked for ------------------------ */

/* The sink every decoder feeds: converts the rows of the crop window to the
 * wanted channels, then either stores them (no resize) or pushes them through
 * fd_resize_rows into a float [C, h, w], so the output is the only picture
 * held in floats. */
typedef struct tensor_sink {
    fd_image_rows base;
    const char *path;
    const fd_image_load_opts *o;
    fd_image_load_info *info;
    int shift, file_w, file_h; /* rows come at 1/2^shift of the file's file_w x file_h (JPEG lowres) */
    fd_image format;           /* of the rows (data NULL) */
    int C, u8_out;
    int64_t top, left, ch, cw;
    fd_tensor acc;       /* f32 [C, ch, cw], or [C, h, w] when resizing; u8 [ch, cw, C] when stored as u8 */
    float *line;         /* [C, cw]: one converted row */
    fd_resize_rows *rs;  /* NULL: no resize */
} tensor_sink;

/* The window of a W x H picture that opts keep: all of it, or with fit
 * 'crop' the largest centred window of the output's aspect. */
static void crop_window(const fd_image_load_opts *o, int64_t W, int64_t H, int64_t *top, int64_t *left, int64_t *ch,
                        int64_t *cw)
{
    *top = 0, *left = 0, *ch = H, *cw = W;
    if (o->h <= 0 || !o->crop) return;
    if (H * o->w > W * o->h) *ch = W * o->h / o->w, *top = (H - *ch) / 2;
    else *cw = H * o->w / o->h, *left = (W - *cw) / 2;
    if (*ch < 1) *ch = 1;
    if (*cw < 1) *cw = 1;
}

static int sink_begin(fd_image_rows *self, const fd_image *f)
{
    tensor_sink *s = (tensor_sink *)self;
    const fd_image_load_opts *o = s->o;
    if (fd_io_check_pixels("image", s->path, f->width, f->height, o->max_pixels)) return FD_ERR;
    s->format = *f;
    s->C = o->channels ? o->channels : f->channels;
    crop_window(o, f->width, f->height, &s->top, &s->left, &s->ch, &s->cw);
    int resize = o->h > 0, k = s->shift;
    *s->info = (fd_image_load_info){.width = k ? s->file_w : f->width, .height = k ? s->file_h : f->height,
                                    .channels = f->channels, .bits = f->bits, .top = s->top << k,
                                    .left = s->left << k, .crop_h = s->ch << k, .crop_w = s->cw << k};
    s->u8_out = o->dtype == FD_U8;
    if (!resize && s->u8_out) return fd_tensor_empty(&s->acc, FD_U8, 3, (int64_t[]){s->ch, s->cw, s->C});
    int64_t oh = resize ? o->h : s->ch, ow = resize ? o->w : s->cw;
    if (resize ? fd_tensor_zeros(&s->acc, FD_F32, 3, (int64_t[]){s->C, oh, ow})
               : fd_tensor_empty(&s->acc, FD_F32, 3, (int64_t[]){s->C, oh, ow}))
        return FD_ERR;
    if (!resize) return FD_OK;
    s->line = malloc(sizeof *s->line * (size_t)(s->C * s->cw));
    if (!s->line) return fd_fail("image: out of memory");
    int area = o->area >= 0 ? o->area : s->ch > o->h || s->cw > o->w;
    return fd_resize_rows_new(&s->rs, s->C, s->ch, s->cw, o->h, o->w, area, fd_tensor_data(&s->acc));
}

static int sink_row(fd_image_rows *self, int64_t y, const uint8_t *pixels)
{
    tensor_sink *s = (tensor_sink *)self;
    if (y < s->top || y >= s->top + s->ch) return FD_OK;
    fd_image row = s->format;
    row.height = 1, row.data = (uint8_t *)pixels;
    const fd_image *f = &row;
    const int C = s->C;
    const int64_t cw = s->cw, r = y - s->top;
    const size_t x0 = (size_t)s->left;
    if (s->u8_out && !s->rs) { /* u8 [ch, cw, C], as fd_image_to_tensor makes it */
        uint8_t *dst = (uint8_t *)fd_tensor_data(&s->acc) + (size_t)(r * cw * C);
        if (C == f->channels && f->bits == 8) memcpy(dst, pixels + x0 * C, (size_t)(cw * C));
        else
            for (int64_t x = 0; x < cw; x++)
                for (int k = 0; k < C; k++)
                    dst[x * C + k] = (uint8_t)lrintf(pixel_channel(f, x0 + (size_t)x, k, C) * 255.0f);
        return FD_OK;
    }
    if (!s->rs) { /* float [C, ch, cw] in range */
        float *dst = fd_tensor_data(&s->acc);
        float scale = s->o->range == FD_RANGE_PM1 ? 2.0f : 1.0f, shift = s->o->range == FD_RANGE_PM1 ? -1.0f : 0.0f;
        for (int k = 0; k < C; k++) {
            float *d = dst + ((size_t)k * s->ch + (size_t)r) * (size_t)cw;
            for (int64_t x = 0; x < cw; x++) d[x] = pixel_channel(f, x0 + (size_t)x, k, C) * scale + shift;
        }
        return FD_OK;
    }
    /* resized: [0, 1] (u8 output: 0..255, the values a u8 load would give) */
    for (int k = 0; k < C; k++) {
        float *d = s->line + (size_t)k * (size_t)cw;
        for (int64_t x = 0; x < cw; x++) {
            float v = pixel_channel(f, x0 + (size_t)x, k, C);
            d[x] = s->u8_out ? (float)lrintf(v * 255.0f) : v;
        }
    }
    fd_resize_rows_push(s->rs, s->line, cw);
    return FD_OK;
}

/* The finished accumulator -> the tensor asked for. */
static int sink_finish(tensor_sink *s, fd_tensor *out)
{
    if (!s->rs) {
        if (s->u8_out || s->o->dtype == FD_F32) {
            *out = s->acc;
            s->acc = (fd_tensor){0};
            return FD_OK;
        }
        return fd_tensor_to_dtype(out, &s->acc, s->o->dtype);
    }
    float *p = fd_tensor_data(&s->acc);
    int64_t n = fd_tensor_numel(&s->acc);
    if (s->u8_out) { /* [C, h, w] -> [h, w, C], rounded as fd_image_resize rounds */
        for (int64_t i = 0; i < n; i++) p[i] = rintf(p[i]);
        fd_tensor hwc = {0};
        fd_tensor_view_of(&hwc, &s->acc);
        int rc = fd_view_permute(&hwc, (const int[]){1, 2, 0}) || fd_tensor_to_dtype(out, &hwc, FD_U8);
        fd_tensor_release(&hwc);
        return rc ? FD_ERR : FD_OK;
    }
    if (s->o->range == FD_RANGE_PM1)
        for (int64_t i = 0; i < n; i++) p[i] = p[i] * 2.0f - 1.0f;
    if (s->o->dtype == FD_F32) {
        *out = s->acc;
        s->acc = (fd_tensor){0};
        return FD_OK;
    }
    return fd_tensor_to_dtype(out, &s->acc, s->o->dtype);
}

static void sink_free(tensor_sink *s)
{
    fd_resize_rows_free(s->rs);
    free(s->line);
    fd_tensor_release(&s->acc);
}

/* The FFmpeg path: one decoded picture, converted to packed u8 by swscale
 * (held whole: FFmpeg's decoders return whole frames), then fed as rows.
 * With opts.draft, a decoder that can shrink as it decodes (JPEG's lowres:
 * the inverse DCT at 1/2, 1/4 or 1/8 size, each pixel about the mean of its
 * 2x2, 4x4 or 8x8 block) is asked to, as far as the window stays at least 4
 * times the output; the resize goes on from there. Far less memory and time,
 * but not the numbers of a full decode (area windows fall across blocks),
 * hence not the default. */
static int decode_with_ffmpeg(const char *path, const fd_image_load_opts *o, tensor_sink *s)
{
    fd_vreader *r;
    fd_tensor frame = {0};
    double pts;
    fd_vreader_opts vo = {.max_pixels = o->max_pixels, .op = "image"};
    if (fd_vreader_open(&r, path, &vo)) return FD_ERR;
    fd_vreader_info vi;
    fd_vreader_get_info(r, &vi);
    int64_t top, left, ch, cw;
    crop_window(o, vi.src_width, vi.src_height, &top, &left, &ch, &cw);
    int k = 0;
    while (o->draft && o->h > 0 && k < vi.max_lowres && (ch >> (k + 1)) >= 4 * o->h && (cw >> (k + 1)) >= 4 * o->w)
        k++;
    if (k > 0) { /* open again: lowres is fixed when the decoder opens */
        fd_vreader_close(r);
        vo.lowres = k;
        if (fd_vreader_open(&r, path, &vo)) return FD_ERR;
        s->shift = k, s->file_w = vi.src_width, s->file_h = vi.src_height;
    }
    fd_image_rows *sink = &s->base;
    int got = fd_vreader_next(r, &frame, &pts);
    fd_vreader_close(r);
    if (got == 0) return fd_fail("image: '%s': the file holds no picture", path);
    if (got < 0) return FD_ERR;
    fd_image f = {.height = (int)frame.shape[0], .width = (int)frame.shape[1], .channels = (int)frame.shape[2],
                  .bits = 8};
    int rc = sink->begin(sink, &f);
    const uint8_t *px = fd_tensor_data(&frame);
    size_t rowbytes = (size_t)f.width * (size_t)f.channels;
    for (int64_t y = 0; y < f.height && rc == FD_OK; y++) rc = sink->row(sink, y, px + (size_t)y * rowbytes);
    fd_tensor_release(&frame);
    return rc;
}

int fd_image_load(fd_tensor *out, const char *path, const fd_image_load_opts *o, fd_image_load_info *info)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    fd_image_load_info scratch;
    fd_tensor_release(out);
    if (!info) info = &scratch;
    memset(info, 0, sizeof *info);
    int c = o->channels;
    if (c != 0 && c != 1 && c != 3 && c != 4) return fd_fail("image: cannot make %d channels (1, 3 or 4)", c);
    if (o->dtype != FD_U8 && !fd_dtype_is_float(o->dtype))
        return fd_fail("image: images load as u8 or a float dtype, not %s", fd_dtype_name(o->dtype));
    if (o->max_pixels < 0 || o->max_pixels > FD_IMAGE_MAX_PIXELS)
        return fd_fail("image: '%s': max_pixels %lld out of range (0 = the default %lld, else 1..%lld)", path,
                       (long long)o->max_pixels, (long long)FD_IMAGE_DEFAULT_MAX_PIXELS,
                       (long long)FD_IMAGE_MAX_PIXELS);
    if ((o->h > 0) != (o->w > 0) || o->h < 0 || o->w < 0 || o->h > FD_IMAGE_MAX_SIDE || o->w > FD_IMAGE_MAX_SIDE)
        return fd_fail("image: '%s': size %lldx%lld (height x width): give both (1..%d) or neither", path,
                       (long long)o->h, (long long)o->w, FD_IMAGE_MAX_SIDE);
    uint8_t head[8] = {0};
    if (fd_io_check_input("image", path, NULL)) return FD_ERR;
    FILE *f = fopen(path, "rb");
    if (!f) return fd_fail("image: '%s': cannot open", path);
    size_t got = fread(head, 1, 8, f);
    fclose(f);
    tensor_sink s = {.base = {sink_begin, sink_row}, .path = path, .o = o, .info = info};
    int rc;
    if (got == 8 && !memcmp(head, sig, 8)) {
        uint8_t *buf;
        size_t n;
        if (fd_io_read_file("image", path, PNG_MAX_FILE, &buf, &n)) return FD_ERR;
        rc = fd_png_decode_rows(path, buf, n, o->max_pixels, &s.base);
        free(buf);
    } else {
        rc = decode_with_ffmpeg(path, o, &s);
    }
    if (rc == FD_OK) rc = sink_finish(&s, out);
    sink_free(&s);
    return rc;
}

/* ---- pictures in memory <-> tensors -------------------------------------- */

int fd_image_to_tensor(fd_tensor *out, const fd_image *img, fd_dtype dt, int range, int channels)
{
    fd_tensor_release(out);
    int c = channels ? channels : img->channels;
    if (c < 1 || c > 4) return fd_fail("image: cannot make %d channels (1, 3 or 4)", channels);
    int64_t h = img->height, w = img->width;
    size_t npix = (size_t)(h * w);
    if (dt == FD_U8) {
        if (fd_tensor_empty(out, FD_U8, 3, (int64_t[]){h, w, c})) return FD_ERR;
        uint8_t *dst = fd_tensor_data(out);
        if (c == img->channels && img->bits == 8) {
            memcpy(dst, img->data, npix * (size_t)c);
            return FD_OK;
        }
        for (size_t p = 0; p < npix; p++)
            for (int k = 0; k < c; k++) dst[p * c + k] = (uint8_t)lrintf(pixel_channel(img, p, k, c) * 255.0f);
        return FD_OK;
    }
    if (!fd_dtype_is_float(dt)) return fd_fail("image: images load as u8 or a float dtype, not %s", fd_dtype_name(dt));
    fd_tensor tmp = {0};
    if (fd_tensor_empty(&tmp, FD_F32, 3, (int64_t[]){c, h, w})) return FD_ERR;
    float *dst = fd_tensor_data(&tmp);
    float scale = range == FD_RANGE_PM1 ? 2.0f : 1.0f, shift = range == FD_RANGE_PM1 ? -1.0f : 0.0f;
    for (int k = 0; k < c; k++)
        for (size_t p = 0; p < npix; p++) dst[(size_t)k * npix + p] = pixel_channel(img, p, k, c) * scale + shift;
    if (dt == FD_F32) {
        *out = tmp;
        return FD_OK;
    }
    int r = fd_tensor_to_dtype(out, &tmp, dt);
    fd_tensor_release(&tmp);
    return r;
}

int fd_image_from_tensor(fd_image *out, const fd_tensor *t, int range, int bits)
{
    memset(out, 0, sizeof *out);
    if (bits != 8 && bits != 16) return fd_fail("image: bits must be 8 or 16, got %d", bits);
    int64_t h, w, c;
    int hwc = t->dtype == FD_U8;
    if (hwc) {
        if (t->ndim != 2 && t->ndim != 3)
            return fd_fail("image: a u8 image is [H, W] or [H, W, C], got %s", FD_SHAPE_STR(t));
        h = t->shape[0], w = t->shape[1], c = t->ndim == 3 ? t->shape[2] : 1;
    } else {
        if (!fd_dtype_is_float(t->dtype)) return fd_fail("image: pixels must be u8 or float, got %s", fd_dtype_name(t->dtype));
        int b = t->ndim == 4;
        if ((t->ndim != 3 && t->ndim != 4) || (b && t->shape[0] != 1))
            return fd_fail("image: a float image is [C, H, W] or [1, C, H, W], got %s", FD_SHAPE_STR(t));
        c = t->shape[b], h = t->shape[b + 1], w = t->shape[b + 2];
    }
    if (c < 1 || c > 4) return fd_fail("image: %lld channels in %s (1 to 4)", (long long)c, FD_SHAPE_STR(t));
    if (h < 1 || w < 1 || h > FD_IMAGE_MAX_SIDE || w > FD_IMAGE_MAX_SIDE)
        return fd_fail("image: size %lldx%lld is empty or too large", (long long)w, (long long)h);
    fd_tensor flat = {0};
    if (fd_tensor_contiguous(&flat, t)) return FD_ERR;
    size_t npix = (size_t)(h * w), n = npix * (size_t)c;
    uint8_t *data = malloc(n * (size_t)(bits / 8));
    if (!data) {
        fd_tensor_release(&flat);
        return fd_fail("image: out of memory");
    }
    if (hwc) {
        const uint8_t *src = fd_tensor_data(&flat);
        if (bits == 8) memcpy(data, src, n);
        else for (size_t i = 0; i < n; i++) ((uint16_t *)data)[i] = (uint16_t)(src[i] * 257);
    } else {
        float *row = malloc(npix * sizeof *row);
        if (!row) {
            free(data);
            fd_tensor_release(&flat);
            return fd_fail("image: out of memory");
        }
        float maxv = bits == 8 ? 255.0f : 65535.0f;
        for (int64_t k = 0; k < c; k++) {
            fd_convert_to_f32(row, (const char *)fd_tensor_data(&flat) + (size_t)k * npix * fd_dtype_size(flat.dtype),
                              flat.dtype, (int64_t)npix);
            for (size_t p = 0; p < npix; p++) {
                float v = range == FD_RANGE_PM1 ? (row[p] + 1.0f) * 0.5f : row[p];
                v = v != v ? 0.0f : v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v; /* NaN -> 0 */
                long q = lrintf(v * maxv);
                if (bits == 8) data[p * c + k] = (uint8_t)q;
                else ((uint16_t *)data)[p * c + k] = (uint16_t)q;
            }
        }
        free(row);
    }
    fd_tensor_release(&flat);
    *out = (fd_image){.width = (int)w, .height = (int)h, .channels = (int)c, .bits = bits, .data = data};
    return FD_OK;
}
