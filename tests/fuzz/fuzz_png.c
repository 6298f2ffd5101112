/* libFuzzer: the PNG loader (libpng from memory, with fada's size bounds). */
#include <stddef.h>
#include <stdint.h>

#include "fd_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fd_image img;
    if (fd_png_decode("fuzz", data, size, &img) == FD_OK) {
        /* touch every byte: a short buffer shows up under ASan */
        size_t n = (size_t)img.width * img.height * img.channels * (img.bits / 8);
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < n; i++) sink ^= img.data[i];
        (void)sink;
        fd_image_free(&img);
    }
    return 0;
}
