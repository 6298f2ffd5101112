/* Images: decoding and encoding files, converting to and from tensors,
 * resizing. Tensor layouts: u8 images are HWC ([H, W, C], as files store
 * them); float images are CHW ([C, H, W], as models take them), with values
 * in [0, 1] or [-1, 1]. */
#ifndef FD_IMAGE_H
#define FD_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

/* Every decoder refuses a picture of more than `max_pixels` pixels (by
 * default FD_IMAGE_DEFAULT_MAX_PIXELS = 8192 x 8192, 67.1 megapixels; a
 * caller may raise it up to FD_IMAGE_MAX_PIXELS, where FFmpeg's own limit
 * lies) or of a side above FD_IMAGE_MAX_SIDE, from its header, before
 * allocating its pixels: fd_io_check_pixels words the refusal. */
#define FD_IMAGE_MAX_SIDE 32768
#define FD_IMAGE_DEFAULT_MAX_PIXELS ((int64_t)8192 * 8192)
#define FD_IMAGE_MAX_PIXELS ((int64_t)1 << 28)

/* Interleaved rows (HWC), 8-bit (uint8_t) or 16-bit (native uint16_t). */
typedef struct fd_image {
    int width, height, channels, bits; /* channels 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA */
    uint8_t *data;                     /* malloc'd */
} fd_image;

void fd_image_free(fd_image *img);

/* A consumer of decoded rows: begin() once with the picture's size and
 * format (width, height, channels, bits; data NULL), then row() for each row
 * y = 0, 1, ... of interleaved pixels (HWC, 8-bit or native 16-bit). Either
 * may fail (fd_fail) to stop the decode; the decoder then returns FD_ERR. */
typedef struct fd_image_rows fd_image_rows;
struct fd_image_rows {
    int (*begin)(fd_image_rows *self, const fd_image *format);
    int (*row)(fd_image_rows *self, int64_t y, const uint8_t *pixels);
};

/* PNG (libpng): any colour type and depth, decoded to 8 or 16 bits with
 * palettes and tRNS expanded (palette -> RGB or RGBA, low-bit gray -> 8).
 * Rows go to `rows` as libpng inflates them, so a non-interlaced picture is
 * never held whole (an interlaced one is: Adam7 fills every row in 7 passes).
 * max_pixels 0: FD_IMAGE_DEFAULT_MAX_PIXELS. */
int fd_png_decode_rows(const char *what, const uint8_t *buf, size_t n, int64_t max_pixels, fd_image_rows *rows);
/* The whole picture into out (the default pixel limit). */
int fd_png_decode(const char *what, const uint8_t *buf, size_t n, fd_image *out);
/* Writes img as PNG through a temporary file. palette: write an indexed
 * PNG (8-bit RGB/RGBA with at most 256 distinct colours, else an error). */
int fd_png_save(const char *path, const fd_image *img, int palette);

/* Range of float pixels. */
enum { FD_RANGE_01 = 0, FD_RANGE_PM1 = 1 };

/* How fd_image_load makes its tensor. */
typedef struct fd_image_load_opts {
    fd_dtype dtype;     /* FD_U8: [H, W, C]; a float dtype: [C, H, W] in range */
    int range;          /* FD_RANGE_01 or FD_RANGE_PM1 */
    int channels;       /* 0: the file's; 1, 3 or 4 converts (see fd_image_to_tensor) */
    int64_t max_pixels; /* 0: FD_IMAGE_DEFAULT_MAX_PIXELS; at most FD_IMAGE_MAX_PIXELS */
    int64_t h, w;       /* 0, 0: the picture's size; else resize to h x w ... */
    int crop;           /* ... after cutting the centred window of h:w's aspect (else stretch) */
    int area;           /* the resize filter: 1 area, 0 bilinear, -1 area when shrinking */
    int draft;          /* JPEG: decode at 1/2, 1/4 or 1/8 scale where the output stays smaller (as PIL's draft) */
} fd_image_load_opts;
/* What fd_image_load found: the picture's own format, the window it used. */
typedef struct fd_image_load_info {
    int width, height, channels, bits;
    int64_t top, left, crop_h, crop_w; /* 0-based */
} fd_image_load_info;

/* Any image file: PNG by its signature through libpng, everything else
 * (JPEG, WebP, BMP, TIFF, ...) through FFmpeg's decoders, whatever the
 * extension says. Rows are converted (and cropped and resized, as opts say)
 * as they come, so no float copy of the whole picture is made when resizing,
 * and a non-interlaced PNG is not held whole at all (docs/io.md: memory). */
int fd_image_load(fd_tensor *out, const char *path, const fd_image_load_opts *opts, fd_image_load_info *info);

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

/* The same resize fed a row at a time: rows y = 0 .. H-1 of `planes` planes
 * [H, W] go in top to bottom, and dst [planes, h, w] (zeroed by the caller)
 * is the resized image, bit for bit what fd_image_resize makes, once the last
 * row is in. Memory: the taps and one resized row per plane. */
typedef struct fd_resize_rows fd_resize_rows;
int fd_resize_rows_new(fd_resize_rows **out, int64_t planes, int64_t H, int64_t W, int64_t h, int64_t w, int area,
                       float *dst);
/* row y of plane p is at src + p * plane_stride */
void fd_resize_rows_push(fd_resize_rows *rs, const float *src, int64_t plane_stride);
void fd_resize_rows_free(fd_resize_rows *rs);

#endif
