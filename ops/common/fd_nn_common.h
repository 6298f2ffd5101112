/* What the nn op files share: argument checks, f32/f64 staging of inputs,
 * the SIMD switch, and the AVX2+FMA building blocks (fast exp, horizontal
 * sums). Kernels marked FD_AVX2 are compiled for AVX2+FMA whatever the global
 * flags, and only called when fd_nn_simd_enabled() says the CPU has them; those
 * marked FD_AVX512 (and nn_exp512_nonpos) only when fd_nn_avx512_enabled() does.
 *
 * The nn ops (ops/norm, ops/attention, ops/elementwise/fd_activation*,
 * ops/resample, ops/index/fd_embedding*, ops/reduce/fd_loss*) each have a
 * forward and a backward, a fast kernel (f32, OpenMP, AVX2+FMA picked at run
 * time) and a plain-C reference kernel (fd_ref_*, double accumulation) that
 * the tests compare against. Conventions (as the rest of the core): outputs
 * are `out` headers released on entry and left released on failure; FD_OK /
 * FD_ERR with a message naming the op and both values. Inputs may be any
 * strided view. The fast kernels compute in f32; an f64 input is routed to
 * the reference kernel (exact, slow); bf16 and f16 inputs are converted to f32
 * (this machine has no bf16 arithmetic) and the Lua bindings return the
 * outputs in the input's dtype; integer dtypes are refused with a message.
 * Outputs are contiguous, except that group_norm keeps a channels-last input
 * channels-last, and writes bf16 channels-last when asked (bf16_nhwc: the
 * operand of a bf16 convolution, fd_group_norm_bf16.c).
 *
 * The list of ops (names, reference kernels, gradient checks) is ops/fd_oplist.h. */
#ifndef FD_NN_COMMON_H
#define FD_NN_COMMON_H

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

#define FD_AVX2 __attribute__((target("avx2,fma")))
#define FD_AVX512 __attribute__((target("avx512f,avx2,fma")))
/* AMX tiles with bf16 products, and the AVX-512 (BF16) code around them. */
#define FD_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))

/* ---- SIMD selection --------------------------------------------------- */
/* True when the AVX2+FMA kernels run (CPU has them and they are not disabled). */
bool fd_nn_simd_enabled(void);
/* Turns the AVX2 kernels off (false) or back on where the CPU allows; for tests. */
void fd_nn_set_simd(bool on);
/* True when the AVX-512 kernels run (the SIMD kernels are on, the CPU has AVX-512F, and
 * they are not disabled); the kernels that have none use their AVX2 form. */
bool fd_nn_avx512_enabled(void);
/* Turns the AVX-512 kernels off (the AVX2 ones run instead) or back on; for tests. */
void fd_nn_set_avx512(bool on);
/* True when the AMX kernels may run: the AVX-512 kernels are on, the CPU has AMX-BF16 and
 * AVX512-BF16, the kernel granted this process the tile state, and they are not disabled. */
bool fd_nn_amx_enabled(void);
/* Turns the AMX kernels off (the AVX-512 f32 ones run instead) or back on; for tests. */
void fd_nn_set_amx(bool on);

/* t must be a float dtype: f32 and f64 compute as such, bf16/f16 compute in f32. */
int fd_nn_check_float(const char *op, const char *arg, const fd_tensor *t);
/* t must have ndim dims. */
int fd_nn_check_ndim(const char *op, const char *arg, const fd_tensor *t, int ndim);
/* a and b must have the same shape. */
int fd_nn_check_same_shape(const char *op, const char *an, const fd_tensor *a, const char *bn, const fd_tensor *b);
/* t must be 1-D of length n (or NULL). */
int fd_nn_check_vec(const char *op, const char *arg, const fd_tensor *t, int64_t n);
/* No zero-size dims. */
int fd_nn_check_nonempty(const char *op, const char *arg, const fd_tensor *t);

/* A contiguous f64 copy of t in *tmp (released by the caller); its data. */
double *fd_nn_stage_f64(fd_tensor *tmp, const fd_tensor *t);
/* A contiguous f32 view or copy of t in *tmp; its data. NULL on failure. */
float *fd_nn_stage_f32(fd_tensor *tmp, const fd_tensor *t);
/* The prologue of a one-input op: `in` staged as f32 into *tmp (as
 * fd_nn_stage_f32) and `out` made as f32 [ndim, shape], zero-filled when
 * `zero` (scatter-style backward passes). On failure both are released and
 * NULL returned; else the staged data, with *out_data set. */
float *fd_nn_stage_and_alloc(fd_tensor *tmp, const fd_tensor *in, fd_tensor *out, int ndim, const int64_t *shape,
                             bool zero, float **out_data);
/* Replaces *t (f64, contiguous) by a copy in dtype dt, when dt is not f64. */
int fd_nn_to_dtype_inplace(fd_tensor *t, fd_dtype dt);
/* The last step of a reference kernel: its f64 result *t in dtype dt, or return FD_ERR. */
#define FD_NN_OUT(t, dt)                                                                                               \
    do {                                                                                                               \
        if (fd_nn_to_dtype_inplace((t), (dt))) return FD_ERR;                                                          \
    } while (0)
/* Releases up to 6 headers (NULL-tolerant). */
void fd_nn_release(fd_tensor *a, fd_tensor *b, fd_tensor *c, fd_tensor *d, fd_tensor *e, fd_tensor *f);

/* ---- probes for the benchmark ---------------------------------------- */
double fd_nn_now(void);                                   /* monotonic seconds */
double fd_nn_measure_copy_gbs(int64_t nbytes, int reps);  /* median read+write GB/s of a scale-copy */

/* ---- AVX2 helpers ----------------------------------------------------- */
/* exp for arguments known to lie in [-86, 88] (no range handling). */
FD_AVX2 static inline __m256 nn_exp256_inrange(__m256 x)
{
    const __m256 shifter = _mm256_set1_ps(12582912.0f);
    __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), shifter);
    __m256 n = _mm256_sub_ps(t, shifter);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500E-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(shifter)), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
}

/* exp(x) for 8 floats, max rel error about 2e-7 (Cephes polynomial). The
 * rounding to n = round(x / ln 2) and the scaling by 2^n are done with
 * integer tricks (a 1.5 * 2^23 shifter; n added to the exponent bits), which
 * saves four instructions over round/convert/multiply. Results are exactly 0
 * below -86 (so -inf scores vanish; true values there are < 5e-38) and inf
 * above 88.7. */
FD_AVX2 static inline __m256 nn_exp256(__m256 x)
{
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-86.0f);
    __m256 keep = _mm256_cmp_ps(x, lo, _CMP_GE_OQ);
    __m256 over = _mm256_cmp_ps(x, hi, _CMP_GT_OQ);
    __m256 y = _mm256_and_ps(nn_exp256_inrange(_mm256_max_ps(_mm256_min_ps(x, hi), lo)), keep);
    return _mm256_blendv_ps(y, _mm256_set1_ps(INFINITY), over);
}

/* sigmoid(z) = 1 / (1 + e) for 8 floats, e = exp(-z) (also returned: silu's
 * gradient wants it): the division as a reciprocal estimate plus one Newton
 * step (about 2e-7 relative), which is several times cheaper than vdivps.
 * exp's argument is capped so 1 + e stays finite. */
FD_AVX2 static inline __m256 nn_sigmoid256(__m256 z, __m256 *e)
{
    __m256 nz = _mm256_sub_ps(_mm256_setzero_ps(), z);
    *e = nn_exp256_inrange(_mm256_max_ps(_mm256_min_ps(nz, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-86.0f)));
    __m256 d = _mm256_add_ps(_mm256_set1_ps(1.0f), *e), r = _mm256_rcp_ps(d);
    return _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.0f)));
}

/* silu(z) = z sigmoid(z) for 8 floats. */
FD_AVX2 static inline __m256 nn_silu256(__m256 z)
{
    __m256 e;
    return _mm256_mul_ps(z, nn_sigmoid256(z, &e));
}

/* exp for 16 values x <= 0 (or -inf), as nn_exp256: the same polynomial and
 * integer scaling on 16 lanes, exactly 0 below -86 (scores minus their row max). */
FD_AVX512 static inline __m512 nn_exp512_nonpos(__m512 x)
{
    const __m512 shifter = _mm512_set1_ps(12582912.0f), lo = _mm512_set1_ps(-86.0f);
    __mmask16 keep = _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ);
    x = _mm512_max_ps(x, lo);
    __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shifter);
    __m512 n = _mm512_sub_ps(t, shifter);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500E-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i e = _mm512_slli_epi32(_mm512_sub_epi32(_mm512_castps_si512(t), _mm512_castps_si512(shifter)), 23);
    return _mm512_maskz_mov_ps(keep, _mm512_castsi512_ps(_mm512_add_epi32(_mm512_castps_si512(p), e)));
}

FD_AVX2 static inline float nn_hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

FD_AVX2 static inline float nn_hmax256(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float nn_silu(float z) { return z / (1.0f + expf(-z)); }

#endif
