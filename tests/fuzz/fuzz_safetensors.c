/* libFuzzer: the safetensors header parser on arbitrary bytes (the input is
 * the whole file: 8-byte length, JSON header, data). */
#include <stddef.h>
#include <stdint.h>

#include "runtime/io/fd_safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fd_st_header h;
    if (fd_st_parse_header("fuzz", data, size, size, &h) == FD_OK) {
        /* a header that passes must describe bytes inside the input */
        for (int i = 0; i < h.count; i++)
            if (h.entries[i].end > h.data_len || h.data_start + h.data_len != size) __builtin_trap();
        fd_st_header_free(&h);
    }
    return 0;
}
