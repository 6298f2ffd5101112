/* Measured peak f32 GFLOP/s of this machine (for the benchmark's % of peak). */
#ifndef FD_PEAK_H
#define FD_PEAK_H

#include <stdint.h>

/* Runs an FMA-only loop on `threads` threads (0: the current count) for about
 * `seconds` in total and returns the best rate seen; 0 without AVX2+FMA. */
double fd_measure_peak_gflops(int threads, double seconds);

#endif
