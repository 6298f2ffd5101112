/* Images: decoding and encoding files, converting to and from tensors,
 * resizing. Tensor layouts: u8 images are HWC ([H, W, C], as files store
 * them); float images are CHW ([C, H, W], as models take them), with values
 * in [0, 1] or [-1, 1]. */
#ifndef FD_IMAGE_H
#define FD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "fd_tensor.h"

/* Decoders refuse images beyond these before allocating anything. */
#define FD_IMAGE_MAX_SIDE 32768
#define FD_IMAGE_MAX_PIXELS ((int64_t)1 << 28)

/* Interleaved rows (HWC), 8-bit (uint8_t) or 16-bit (native uint16_t). */
typedef struct fd_image {
    int width, height, channels, bits; /* channels 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    uint8_t *data;                     /* malloc'd */
} fd_image;

void fd_image_free(fd_image *img);

/* PNG (libpng): any colour type and depth, decoded to 8 or 16 bits with
 * palettes and tRNS expanded (palette -> RGB or RGBA, low-bit gray -> 8). */
int fd_png_decode(const char *what, const uint8_t *buf, size_t n, fd_image *out);
/* Writes img as PNG through a temporary file. palette: write an indexed
 * PNG (8-bit RGB/RGBA with at most 256 distinct colours, else an error). */
int fd_png_save(const char *path, const fd_image *img, int palette);

/* Any image file: PNG by its signature through libpng, everything else
 * (JPEG, WebP, BMP, TIFF, ...) through FFmpeg's decoders, whatever the
 * extension says. */
int fd_image_load(const char *path, fd_image *out);

/* Range of float pixels. */
enum { FD_RANGE_01 = 0, FD_RANGE_PM1 = 1 };

/* img -> u8 [H, W, C] (16-bit rounded to 8) or float [C, H, W] in range.
 * channels 0 keeps the image's; 1, 3 or 4 converts (gray <-> RGB by BT.601
 * luma, alpha dropped or set opaque). */
int fd_image_to_tensor(fd_tensor *out, const fd_image *img, fd_dtype dt, int range, int channels);
/* u8 [H, W] / [H, W, C] or float [C, H, W] / [1, C, H, W] (clamped to
 * range) -> an image of `bits` 8 or 16. */
int fd_image_from_tensor(fd_image *out, const fd_tensor *t, int range, int bits);

/* Resizes the last two dims of a float tensor [..., H, W], or the first two
 * of a u8 [H, W, C] image, to (h, w). mode "bilinear" (half-pixel centres,
 * edges clamped: torch's interpolate(align_corners=False)) or "area"
 * (average over each output cell's source span: torch's mode='area'). */
int fd_image_resize(fd_tensor *out, const fd_tensor *src, int64_t h, int64_t w, const char *mode);

#endif
