/* The machine's measured f32 FMA ceiling: independent accumulator chains of
 * vector FMAs with no memory traffic, on every OpenMP thread at once. The
 * benchmark divides by this instead of a number from a data sheet. */
#include <immintrin.h>
#include <omp.h>

#include "ops/backend/fd_peak.h"
#include "runtime/core/fd_runtime.h"

/* 12 chains hide the FMA latency (4-5 cycles) on 2 pipes; returns flops. */
__attribute__((target("avx2,fma"))) static double fma_loop_avx2(int64_t iters)
{
    __m256 a[12], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    volatile float sink = _mm256_cvtss_f32(s);
    (void)sink;
    return (double)iters * 12 * 8 * 2;
}

__attribute__((target("avx512f"))) static double fma_loop_avx512(int64_t iters)
{
    __m512 a[12], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps((float)i);
    for (int64_t it = 0; it < iters; it++)
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return (double)iters * 12 * 16 * 2;
}

double fd_measure_peak_gflops(int threads, double seconds)
{
    const fd_cpu_features *cpu = fd_cpu();
    if (!cpu->fma || !cpu->avx2) return 0;
    if (threads < 1) threads = fd_get_num_threads();
    int use512 = cpu->avx512f;
    int64_t iters = 1 << 20;
    double best = 0;
    /* grow the loop until one run lasts long enough, then keep the best of 5 */
    for (int rep = 0; rep < 40; rep++) {
        double flops = 0, t0 = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : flops)
        flops += use512 ? fma_loop_avx512(iters) : fma_loop_avx2(iters);
        double dt = omp_get_wtime() - t0;
        if (dt < seconds / 5) {
            iters *= 2;
            continue;
        }
        double g = flops / dt * 1e-9;
        if (g > best) best = g;
        if (rep >= 5 && dt >= seconds / 5) break;
    }
    return best;
}
