/* Audio in and out. Loading gives mono f32 samples at a requested rate:
 * libsndfile for what it reads (WAV, FLAC, OGG/Vorbis, AIFF, ...), FFmpeg
 * for everything else (MP3, M4A/AAC, Opus, the audio track of a video).
 * Channels are averaged (a plain mean, so a stereo file of one signal on both
 * sides loads as that signal), then libswresample converts the rate. */
#ifndef FD_AUDIO_H
#define FD_AUDIO_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

#define FD_AUDIO_MAX_CHANNELS 64
#define FD_AUDIO_MAX_RATE 768000

/* out = mono f32 [N]; sample_rate 0 keeps the file's. *file_rate (may be
 * NULL) gets the file's rate, *used gets the decoder ("libsndfile"/"ffmpeg"). */
int fd_audio_load(fd_tensor *out, const char *path, int sample_rate, int *file_rate, const char **used);
/* The libsndfile path on a buffer in memory (what the fuzzer drives). */
int fd_audio_decode_memory(fd_tensor *out, const char *what, const uint8_t *buf, size_t n, int sample_rate,
                           int *file_rate);
/* Writes float samples [N] (mono) or [C, N] as WAV: bits 16 or 24 (PCM,
 * clipped to [-1, 1]) or 32 (float). Through a temporary file. */
int fd_audio_save_wav(const char *path, const fd_tensor *samples, int sample_rate, int bits);

#endif
