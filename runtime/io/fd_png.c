/* PNG decode (from memory) and encode with libpng. libpng reports errors by
 * longjmp: everything allocated between setjmp and the end is reachable from
 * the volatile locals, so the error path frees it. */
#include <errno.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/fd_image.h"
#include "runtime/io/fd_io.h"

typedef struct png_src {
    const uint8_t *buf;
    size_t n, pos;
    char msg[200];
} png_src;

static void on_error(png_structp png, png_const_charp msg)
{
    png_src *src = png_get_error_ptr(png);
    snprintf(src->msg, sizeof src->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static void on_read(png_structp png, png_bytep dst, png_size_t len)
{
    png_src *src = png_get_io_ptr(png);
    if (len > src->n - src->pos) png_error(png, "file is truncated");
    memcpy(dst, src->buf + src->pos, len);
    src->pos += len;
}

void fd_image_free(fd_image *img)
{
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

int fd_png_decode_rows(const char *what, const uint8_t *buf, size_t n, int64_t max_pixels, fd_image_rows *sink)
{
    if (n < 8 || png_sig_cmp(buf, 0, 8)) return fd_fail("image: '%s': not a PNG file (bad signature)", what);
    png_src src = {.buf = buf, .n = n};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return fd_fail("image: out of memory");
    }
    uint8_t *volatile data = NULL; /* one row, or the whole picture when interlaced */
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(data);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return fd_fail("image: '%s': corrupt PNG: %s", what, src.msg);
    }
    png_set_user_limits(png, FD_IMAGE_MAX_SIDE, FD_IMAGE_MAX_SIDE);
    /* fada uses only IHDR, PLTE, tRNS and IDAT: discard every other chunk
     * unread, so text, ICC and EXIF chunks (compressed ones can inflate
     * ~1000:1) cost neither memory nor time. */
    static const png_byte unused[] = "tEXt\0zTXt\0iTXt\0iCCP\0sPLT\0eXIf\0hIST\0pCAL\0sCAL\0oFFs\0pHYs\0"
                                     "sBIT\0tIME\0bKGD\0gAMA\0cHRM\0sRGB";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, unused, (int)(sizeof unused / 5));
    png_set_chunk_malloc_max(png, (png_alloc_size_t)1 << 20);
    png_set_read_fn(png, &src, on_read);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(png, info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    /* Deflate expands at most ~1032:1, so a file cannot honestly hold more
     * filtered rows (as stored: before palette or bit-depth expansion) than
     * that; refuse what a forged IHDR asks for. */
    uint64_t stored = ((uint64_t)png_get_rowbytes(png, info) + 1) * h;
    if (stored > (uint64_t)n * 1040 + (1u << 20)) {
        png_destroy_read_struct(&png, &info, NULL);
        return fd_fail("image: '%s': PNG declares %ux%u pixels, more than its %zu bytes can hold (truncated or forged)",
                       what, (unsigned)w, (unsigned)h, n);
    }
    if (fd_io_check_pixels("image", what, w, h, max_pixels)) {
        png_destroy_read_struct(&png, &info, NULL);
        return FD_ERR;
    }
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    if (depth == 16) png_set_swap(png); /* PNG is big-endian; keep native uint16 */
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    fd_image format = {.width = (int)w, .height = (int)h, .channels = png_get_channels(png, info),
                       .bits = png_get_bit_depth(png, info)};
    int rc = sink->begin(sink, &format);
    if (rc == FD_OK) {
        data = malloc(passes > 1 ? rowbytes * h : rowbytes);
        if (!data) png_error(png, "out of memory");
        if (passes > 1) { /* Adam7: every pass adds pixels to every row */
            rows = malloc(sizeof *rows * h);
            if (!rows) png_error(png, "out of memory");
            for (png_uint_32 y = 0; y < h; y++) rows[y] = data + (size_t)y * rowbytes;
            png_read_image(png, rows);
            for (png_uint_32 y = 0; y < h && rc == FD_OK; y++) rc = sink->row(sink, y, data + (size_t)y * rowbytes);
        } else {
            for (png_uint_32 y = 0; y < h && rc == FD_OK; y++) {
                png_read_row(png, data, NULL);
                rc = sink->row(sink, y, data);
            }
        }
        if (rc == FD_OK) png_read_end(png, NULL);
    }
    free(data);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return rc;
}

/* fd_png_decode's sink: every row into one buffer. */
typedef struct collect {
    fd_image_rows base;
    fd_image img;
    size_t rowbytes;
} collect;

static int collect_begin(fd_image_rows *self, const fd_image *f)
{
    collect *c = (collect *)self;
    c->img = *f;
    c->rowbytes = (size_t)f->width * f->channels * (f->bits / 8);
    size_t total = c->rowbytes * (size_t)f->height;
    c->img.data = malloc(total ? total : 1);
    return c->img.data ? FD_OK : fd_fail("image: out of memory");
}

static int collect_row(fd_image_rows *self, int64_t y, const uint8_t *pixels)
{
    collect *c = (collect *)self;
    memcpy(c->img.data + (size_t)y * c->rowbytes, pixels, c->rowbytes);
    return FD_OK;
}

int fd_png_decode(const char *what, const uint8_t *buf, size_t n, fd_image *out)
{
    collect c = {.base = {collect_begin, collect_row}};
    memset(out, 0, sizeof *out);
    if (fd_png_decode_rows(what, buf, n, 0, &c.base)) {
        free(c.img.data);
        return FD_ERR;
    }
    *out = c.img;
    return FD_OK;
}

/* The palette of an 8-bit RGB/RGBA image; fails past 256 colours. index[]
 * gets each pixel's entry. Linear search: only small palettes succeed. */
static int build_palette(const fd_image *img, png_color *pal, png_byte *alpha, int *npal, uint8_t *index)
{
    int c = img->channels, n = 0;
    size_t npix = (size_t)img->width * img->height;
    uint32_t keys[256];
    int last = -1;
    uint32_t last_key = 0;
    for (size_t i = 0; i < npix; i++) {
        const uint8_t *p = img->data + i * c;
        uint32_t key = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (c == 4 ? p[3] : 255u);
        int k = -1;
        if (last >= 0 && key == last_key) k = last;
        for (int j = 0; k < 0 && j < n; j++)
            if (keys[j] == key) k = j;
        if (k < 0) {
            if (n == 256) return FD_ERR;
            keys[n] = key;
            pal[n] = (png_color){p[0], p[1], p[2]};
            alpha[n] = (png_byte)(key & 255);
            k = n++;
        }
        index[i] = (uint8_t)k;
        last = k;
        last_key = key;
    }
    *npal = n;
    return FD_OK;
}

int fd_png_save(const char *path, const fd_image *img, int palette)
{
    char tmp[4200];
    if (img->channels < 1 || img->channels > 4 || (img->bits != 8 && img->bits != 16))
        return fd_fail("image.save: '%s': %d channels of %d bits cannot be written as PNG", path, img->channels, img->bits);
    if (palette && (img->bits != 8 || img->channels < 3))
        return fd_fail("image.save: '%s': a palette PNG needs 8-bit RGB or RGBA, got %d channels of %d bits", path,
                       img->channels, img->bits);
    if (fd_io_temp_name("image.save", path, tmp, sizeof tmp)) return FD_ERR;
    size_t npix = (size_t)img->width * img->height;
    uint8_t *volatile index = NULL;
    png_color pal[256];
    png_byte alpha[256];
    int npal = 0;
    if (palette) {
        index = malloc(npix ? npix : 1);
        if (!index) return fd_fail("image.save: out of memory");
        if (build_palette(img, pal, alpha, &npal, index)) {
            free(index);
            return fd_fail("image.save: '%s': more than 256 colours, cannot write a palette PNG", path);
        }
    }
    FILE *volatile f = fopen(tmp, "wb");
    if (!f) {
        free(index);
        return fd_fail("image.save: '%s': %s", path, strerror(errno));
    }
    png_src err = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &err, on_error, on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!info) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(tmp);
        free(index);
        return fd_fail("image.save: out of memory");
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        remove(tmp);
        free(index);
        return fd_fail("image.save: '%s': %s", path, err.msg[0] ? err.msg : "out of memory");
    }
    png_init_io(png, f);
    static const int types[] = {0, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, img->bits,
                 palette ? PNG_COLOR_TYPE_PALETTE : types[img->channels], PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette) {
        png_set_PLTE(png, info, pal, npal);
        int opaque = 1;
        for (int i = 0; i < npal; i++) opaque &= alpha[i] == 255;
        if (!opaque) png_set_tRNS(png, info, alpha, npal, NULL);
    }
    png_write_info(png, info);
    if (img->bits == 16) png_set_swap(png);
    size_t rowbytes = palette ? (size_t)img->width : (size_t)img->width * img->channels * (img->bits / 8);
    const uint8_t *base = palette ? index : img->data;
    for (int y = 0; y < img->height; y++) png_write_row(png, base + (size_t)y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(index);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        remove(tmp);
        return fd_fail("image.save: '%s': write failed: %s", path, strerror(errno));
    }
    return fd_io_commit("image.save", tmp, path);
}
