/* Counter-based random numbers (Philox4x32-10). A generator is a (seed,
 * offset) pair: element i of a draw uses counter offset + i/4, lane i%4, so
 * the numbers depend only on the seed and the position, never on how many
 * threads fill the tensor. Each draw advances the offset past what it used. */
#ifndef FD_RNG_H
#define FD_RNG_H

#include <stdint.h>

#include "runtime/core/fd_tensor.h"

typedef struct fd_generator {
    uint64_t seed;
    uint64_t offset; /* in Philox blocks of 4 numbers */
} fd_generator;

/* The Philox4x32-10 bijection on a 128-bit counter and 64-bit key (the
 * Random123 definition; its known-answer vectors test it). */
void fd_philox4x32_block(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
/* Four 32-bit random words for one 64-bit counter under one key. */
void fd_philox4x32(uint64_t counter, uint64_t key, uint32_t out[4]);

/* Fills t (any float dtype, any strides) in place. */
int fd_rand_uniform_(fd_tensor *t, fd_generator *g, double low, double high);
int fd_rand_normal_(fd_tensor *t, fd_generator *g, double mean, double std);
/* Integers uniform in [low, high). */
int fd_rand_int_(fd_tensor *t, fd_generator *g, int64_t low, int64_t high);

#endif
