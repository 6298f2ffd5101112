/* libFuzzer: the audio loader's libsndfile path from memory (WAV, FLAC,
 * OGG, AIFF, ...), downmix and, for half the inputs, resampling. */
#include <stddef.h>
#include <stdint.h>

#include "runtime/io/fd_audio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fd_tensor out = {0};
    int rate = size && (data[size - 1] & 1) ? 16000 : 0;
    if (fd_audio_decode_memory(&out, "fuzz", data, size, rate, NULL) == FD_OK) fd_tensor_release(&out);
    return 0;
}
