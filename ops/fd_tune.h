/* Per-shape choice between two implementations, by timing them. The first
 * calls of a key alternate between variant 0 and 1 (calls 0 and 1 warm up:
 * JIT compilation, first-touch of buffers), calls 2..5 are timed, and the
 * faster variant is kept for the key from then on. Results are the same
 * either way; only speed differs. One table shared by all ops (keys are
 * hashes of the full signature), evicting round-robin. */
#ifndef FD_TUNE_H
#define FD_TUNE_H

#include <stddef.h>
#include <stdint.h>

/* The variant (0 or 1) to run now for key; *timed is set when the caller
 * should time the call and report it with fd_tune_record. */
int fd_tune_choose(uint64_t key, int *timed);
void fd_tune_record(uint64_t key, int variant, double seconds);
/* The decided variant for key, or -1 while undecided / unknown. */
int fd_tune_decided(uint64_t key);
/* FNV-1a over bytes, continuing from h (start with 0). */
uint64_t fd_tune_hash(uint64_t h, const void *p, size_t n);

#endif
