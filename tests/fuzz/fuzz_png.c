/* libFuzzer: the PNG loader (libpng from memory, with fada's size bounds),
 * through the row interface every image load uses: rows are checked and
 * dropped, so a legal picture up to the pixel limit costs one row of memory
 * (a whole one is held only for Adam7). */
#include <stddef.h>
#include <stdint.h>

#include "runtime/io/fd_image.h"

typedef struct touch {
    fd_image_rows base;
    size_t rowbytes;
    int64_t rows;
    volatile uint8_t sum;
} touch;

static int touch_begin(fd_image_rows *self, const fd_image *f)
{
    touch *t = (touch *)self;
    t->rowbytes = (size_t)f->width * f->channels * (f->bits / 8);
    return FD_OK;
}

/* reads every byte of the row: a short buffer shows up under ASan */
static int touch_row(fd_image_rows *self, int64_t y, const uint8_t *pixels)
{
    touch *t = (touch *)self;
    for (size_t i = 0; i < t->rowbytes; i++) t->sum ^= pixels[i];
    t->rows = y + 1;
    return FD_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    touch t = {.base = {touch_begin, touch_row}};
    fd_png_decode_rows("fuzz", data, size, 0, &t.base);
    /* the whole-picture path on small inputs (its buffer is pixels x bytes) */
    if (size < 4096) {
        fd_image img;
        if (fd_png_decode("fuzz", data, size, &img) == FD_OK) fd_image_free(&img);
    }
    return 0;
}
