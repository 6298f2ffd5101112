/* Image files in, tensors out (and back): format dispatch by content, pixel
 * depth and range conversions, channel conversions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fd_image.h"
#include "fd_io.h"
#include "fd_video.h"

/* PNG files are read whole: the decoder's allocation bound needs the size. */
#define PNG_MAX_FILE ((size_t)1 << 30)

/* The video reader words its errors "video: ..."; a picture's loader says "image: ...". */
static int as_image_error(void)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", fd_error_message());
    return fd_fail("image: %s", strncmp(msg, "video: ", 7) ? msg : msg + 7);
}

static int load_with_ffmpeg(const char *path, fd_image *out)
{
    fd_vreader *r;
    fd_tensor frame = {0};
    double pts;
    if (fd_vreader_open(&r, path, &(fd_vreader_opts){0})) return as_image_error();
    int got = fd_vreader_next(r, &frame, &pts);
    fd_vreader_close(r);
    if (got == 0) return fd_fail("image: '%s': the file holds no picture", path);
    if (got < 0) return as_image_error();
    size_t n = (size_t)fd_tensor_numel(&frame);
    out->data = malloc(n);
    if (!out->data) {
        fd_tensor_release(&frame);
        return fd_fail("image: out of memory");
    }
    memcpy(out->data, fd_tensor_data(&frame), n);
    out->height = (int)frame.shape[0];
    out->width = (int)frame.shape[1];
    out->channels = (int)frame.shape[2];
    out->bits = 8;
    fd_tensor_release(&frame);
    return FD_OK;
}

int fd_image_load(const char *path, fd_image *out)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    uint8_t head[8] = {0};
    size_t size;
    memset(out, 0, sizeof *out);
    if (fd_io_check_input("image", path, &size)) return FD_ERR;
    FILE *f = fopen(path, "rb");
    if (!f) return fd_fail("image: '%s': cannot open", path);
    size_t got = fread(head, 1, 8, f);
    fclose(f);
    if (got == 8 && !memcmp(head, sig, 8)) {
        uint8_t *buf;
        size_t n;
        if (fd_io_read_file("image", path, PNG_MAX_FILE, &buf, &n)) return FD_ERR;
        int r = fd_png_decode(path, buf, n, out);
        free(buf);
        return r;
    }
    return load_with_ffmpeg(path, out);
}

/* ---- pixels <-> tensors ------------------------------------------------ */

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
