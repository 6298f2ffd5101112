/* Per-shape choice between two implementations, by timing them. The first
 * 5 calls of a key run variant 0, the next 5 variant 1; the first call of
 * each block warms up (JIT compilation, first touch, and the other thread
 * pool going idle: OpenMP workers that still spin after a oneDNN call slow
 * an OpenBLAS call that follows, so alternating call by call biased the
 * timing) and the other 4 are timed. The variant with the lower median is
 * kept for the key from then on. Median, not minimum: on a shared machine a 2-thread call is
 * sometimes fast and usually stalled, and the usual case is what counts. Results are the same
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
/* Always run `variant` (0 or 1) from now on; -1 goes back to timing. The
 * environment variable FADA_TUNE=0|1 sets the same at start-up. */
void fd_tune_force(int variant);
int fd_tune_forced(void); /* -1 when timing */
/* The decided variant for key, or -1 while undecided / unknown. */
int fd_tune_decided(uint64_t key);
/* FNV-1a over bytes, continuing from h (start with 0). */
uint64_t fd_tune_hash(uint64_t h, const void *p, size_t n);

#endif
