/* GroupNorm writing bf16 channels-last (fd_group_norm_bf16_nhwc): the
 * statistics come from the f32 kernels (fd_group_norm_stats), then one pass
 * applies the per-channel affine, the modulation and SiLU and writes each
 * pixel's channels as bf16, rounded to nearest even as fd_f32_to_bf16 does.
 *
 * The pass reads x as it lies:
 *  - channels-last and blocked (nChw8c): a pixel's channels (or 8 of them)
 *    are contiguous in x and in y, so it is a straight walk;
 *  - NCHW: tiles of 8 channels x 8 pixels, transposed in registers, so every
 *    read and write is 32 (16) contiguous bytes; edges go one element at a
 *    time.
 * With at least as many samples as threads, a thread takes a sample: its
 * statistics, then its output, while the sample is in that core's cache;
 * otherwise the statistics run on all threads and then threads split the
 * pixels. */
#include <omp.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/norm/fd_group_norm.h"
#include "ops/norm/fd_group_norm_layout.h"
#include "ops/norm/fd_group_norm_mod.h"

#define TILE_PX 64 /* pixels a thread takes at a time */

/* ---- rounding to bf16 ------------------------------------------------------ */

static inline uint16_t out1(float x, float a, float b, bool silu)
{
    float z = x * a + b;
    return fd_f32_to_bf16(silu ? nn_silu(z) : z);
}

/* 8 floats -> 8 bf16 (round to nearest even; NaN stays a quiet NaN). */
FD_AVX2 static inline void store8_bf16(uint16_t *dst, __m256 v)
{
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
    r = _mm256_blendv_epi8(r, q, nan);
    /* the 16-bit halves of 8 lanes: pack within 128-bit lanes, then join the lanes */
    __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128((__m128i *)dst, _mm256_castsi256_si128(p));
}

FD_AVX2 static inline __m256 act8(__m256 x, __m256 a, __m256 b, bool silu)
{
    __m256 z = _mm256_fmadd_ps(x, a, b);
    return silu ? nn_silu256(z) : z;
}

/* ---- channels-last and blocked input: contiguous channels ------------------- */

/* Pixels [p0, p1) of one sample, channels-last: xn [HW, C] -> yn [HW, C]. */
static void cl_range_c(const float *xn, uint16_t *yn, int64_t C, int64_t p0, int64_t p1, const float *a,
                       const float *b, bool silu)
{
    for (int64_t p = p0; p < p1; p++)
        for (int64_t c = 0; c < C; c++) yn[p * C + c] = out1(xn[p * C + c], a[c], b[c], silu);
}

FD_AVX2 static void cl_range_avx2(const float *xn, uint16_t *yn, int64_t C, int64_t p0, int64_t p1, const float *a,
                                  const float *b, bool silu)
{
    for (int64_t p = p0; p < p1; p++) {
        const float *x = xn + p * C;
        uint16_t *y = yn + p * C;
        int64_t c = 0;
        for (; c + 8 <= C; c += 8)
            store8_bf16(y + c, act8(_mm256_loadu_ps(x + c), _mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), silu));
        for (; c < C; c++) y[c] = out1(x[c], a[c], b[c], silu);
    }
}

/* Pixels [p0, p1) of one block of 8 channels: xb [HW, 8] -> y [HW, C] at those channels. */
static void block_range_c(const float *xb, uint16_t *y, int64_t C, int64_t p0, int64_t p1, const float *a,
                          const float *b, bool silu)
{
    for (int64_t p = p0; p < p1; p++)
        for (int l = 0; l < FD_CBLOCK; l++) y[p * C + l] = out1(xb[p * FD_CBLOCK + l], a[l], b[l], silu);
}

FD_AVX2 static void block_range_avx2(const float *xb, uint16_t *y, int64_t C, int64_t p0, int64_t p1,
                                     const float *a, const float *b, bool silu)
{
    __m256 va = _mm256_loadu_ps(a), vb = _mm256_loadu_ps(b);
    for (int64_t p = p0; p < p1; p++) store8_bf16(y + p * C, act8(_mm256_loadu_ps(xb + p * FD_CBLOCK), va, vb, silu));
}

/* ---- NCHW input: 8 x 8 tiles transposed in registers ---------------------- */

/* The 8 x 8 transpose of r[0..7] (rows in, columns out). */
FD_AVX2 static inline void transpose8(__m256 r[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Pixels [p0, p1) of one sample: xn [C, HW] -> yn [HW, C]. */
static void nchw_range_c(const float *xn, uint16_t *yn, int64_t C, int64_t HW, int64_t p0, int64_t p1,
                         const float *a, const float *b, bool silu)
{
    for (int64_t p = p0; p < p1; p++)
        for (int64_t c = 0; c < C; c++) yn[p * C + c] = out1(xn[c * HW + p], a[c], b[c], silu);
}

FD_AVX2 static void nchw_range_avx2(const float *xn, uint16_t *yn, int64_t C, int64_t HW, int64_t p0, int64_t p1,
                                    const float *a, const float *b, bool silu)
{
    int64_t p = p0;
    for (; p + 8 <= p1; p += 8) {
        int64_t c = 0;
        for (; c + 8 <= C; c += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++)
                r[i] = act8(_mm256_loadu_ps(xn + (c + i) * HW + p), _mm256_set1_ps(a[c + i]),
                            _mm256_set1_ps(b[c + i]), silu);
            transpose8(r);
            for (int j = 0; j < 8; j++) store8_bf16(yn + (p + j) * C + c, r[j]);
        }
        for (int64_t j = p; j < p + 8; j++)
            for (int64_t k = c; k < C; k++) yn[j * C + k] = out1(xn[k * HW + j], a[k], b[k], silu);
    }
    nchw_range_c(xn, yn, C, HW, p, p1, a, b, silu);
}

/* ---- the op ---------------------------------------------------------------- */

enum { IN_NCHW, IN_CL, IN_BLOCKED };

/* y = act(x * A + B) for pixels [p0, p1) of sample n (A, B: that sample's C coefficients). */
static void apply_range(int in, const float *px, uint16_t *py, int64_t n, int64_t C, int64_t HW, int64_t p0,
                        int64_t p1, const float *a, const float *bb, bool silu, bool simd)
{
    uint16_t *yn = py + n * HW * C;
    if (in == IN_NCHW) {
        (simd ? nchw_range_avx2 : nchw_range_c)(px + n * C * HW, yn, C, HW, p0, p1, a, bb, silu);
    } else if (in == IN_CL) {
        (simd ? cl_range_avx2 : cl_range_c)(px + n * HW * C, yn, C, p0, p1, a, bb, silu);
    } else { /* blocked: [N, C/8, HW, 8]; 16 pixels' output rows stay in L1 while every block adds to them */
        for (int64_t q0 = p0; q0 < p1; q0 += 16) {
            int64_t q1 = q0 + 16 < p1 ? q0 + 16 : p1;
            for (int64_t cb = 0; cb < C / FD_CBLOCK; cb++)
                (simd ? block_range_avx2 : block_range_c)(px + (n * (C / FD_CBLOCK) + cb) * HW * FD_CBLOCK,
                                                          yn + cb * FD_CBLOCK, C, q0, q1, a + cb * FD_CBLOCK,
                                                          bb + cb * FD_CBLOCK, silu);
        }
    }
}

/* Sample n's coefficients: A = rstd * w, B = b - mean * A, then the modulation. */
static void coefs(int64_t n, int64_t C, int64_t G, const float *pm, const float *pr, const float *pw,
                  const float *pb, const fd_gn_mod *mod, float *A, float *B)
{
    const int64_t Cg = C / G;
    for (int64_t c = 0; c < C; c++) {
        double ac = (double)pr[n * G + c / Cg] * (pw ? pw[c] : 1.0);
        A[c] = (float)ac;
        B[c] = (float)((pb ? pb[c] : 0.0) - pm[n * G + c / Cg] * ac);
    }
    fd_gn_mod_apply(mod, n, 0, C, A, B);
}

/* Sample n alone as a tensor header borrowing xt's storage (not to be released). */
static fd_tensor sample_of(const fd_tensor *xt, int64_t n)
{
    fd_tensor v = *xt;
    v.shape[0] = 1;
    v.offset += n * xt->shape[1] * xt->shape[2] * xt->shape[3]; /* NCHW, channels-last and blocked alike */
    return v;
}

int fd_group_norm_bf16_nhwc(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                            const fd_tensor *w, const fd_tensor *b, const fd_tensor *scale, const fd_tensor *shift,
                            double eps, bool silu)
{
    const char *op = "group_norm";
    memset(y, 0, sizeof *y);
    memset(mean, 0, sizeof *mean);
    memset(rstd, 0, sizeof *rstd);
    if (fd_gn_check_args(op, x, G, w, b)) return FD_ERR;
    if (x->dtype != FD_F32 || x->ndim != 4)
        return fd_fail("%s: a bf16 channels-last output takes a 4-d f32 x, got %s %s", op, fd_dtype_name(x->dtype),
                       FD_SHAPE_STR(x));
    const int64_t N = x->shape[0], C = x->shape[1], HW = x->shape[2] * x->shape[3];
    const int in = x->block ? IN_BLOCKED : fd_gn_is_channels_last(x) ? IN_CL : IN_NCHW;
    const bool simd = fd_nn_simd_enabled();
    fd_tensor xs = {0}, ws = {0}, bs = {0}, ss = {0}, ts = {0}, coef = {0};
    fd_gn_mod m = {0};
    int64_t cshape[2] = {2 * N, C}, gshape[2] = {N, G};
    /* any other view is copied to NCHW */
    const float *px = in == IN_NCHW ? fd_nn_stage_f32(&xs, x) : (fd_tensor_view_of(&xs, x), fd_tensor_data(&xs));
    const float *pw = w ? fd_nn_stage_f32(&ws, w) : NULL, *pb = b ? fd_nn_stage_f32(&bs, b) : NULL;
    int rc = !px || (w && !pw) || (b && !pb) ? FD_ERR : FD_OK;
    if (rc == FD_OK) rc = fd_gn_mod_stage(op, x, scale, "scale", &ss, &m.scale, &m.scale_stride);
    if (rc == FD_OK) rc = fd_gn_mod_stage(op, x, shift, "shift", &ts, &m.shift, &m.shift_stride);
    if (rc == FD_OK) rc = fd_tensor_empty(&coef, FD_F32, 2, cshape);
    if (rc == FD_OK) rc = fd_tensor_empty(mean, FD_F32, 2, gshape);
    if (rc == FD_OK) rc = fd_tensor_empty(rstd, FD_F32, 2, gshape);
    if (rc == FD_OK && (rc = fd_tensor_empty(y, FD_BF16, 4, x->shape)) == FD_OK) {
        /* channels-last strides: [HWC, 1, WC, C] */
        y->stride[0] = HW * C, y->stride[1] = 1, y->stride[2] = x->shape[3] * C, y->stride[3] = C;
    }
    const fd_gn_mod *mp = scale || shift ? &m : NULL;
    float *A = rc ? NULL : fd_tensor_data(&coef), *B = A ? A + N * C : NULL;
    float *pm = rc ? NULL : fd_tensor_data(mean), *pr = rc ? NULL : fd_tensor_data(rstd);
    uint16_t *py = rc ? NULL : fd_tensor_data(y);
    if (rc == FD_OK && N >= omp_get_max_threads()) {
        /* a sample per thread: its statistics, then its output while x is still in this core's cache */
        int failed = 0;
#pragma omp parallel for schedule(static) reduction(| : failed)
        for (int64_t n = 0; n < N; n++) {
            fd_tensor xn = sample_of(&xs, n), m1, r1; /* the kernels' own threads: 1 here (no nesting) */
            if (fd_group_norm_stats(&m1, &r1, &xn, G, eps)) {
                failed = 1;
                continue;
            }
            memcpy(pm + n * G, fd_tensor_data(&m1), sizeof(float) * (size_t)G);
            memcpy(pr + n * G, fd_tensor_data(&r1), sizeof(float) * (size_t)G);
            fd_nn_release(&m1, &r1, NULL, NULL, NULL, NULL);
            coefs(n, C, G, pm, pr, pw, pb, mp, A + n * C, B + n * C);
            apply_range(in, px, py, n, C, HW, 0, HW, A + n * C, B + n * C, silu, simd);
        }
        rc = failed ? FD_ERR : FD_OK;
    } else if (rc == FD_OK) {
        /* few samples: the statistics over all threads, then threads split the pixels */
        fd_tensor m1, r1;
        rc = fd_group_norm_stats(&m1, &r1, &xs, G, eps);
        if (rc == FD_OK) {
            memcpy(pm, fd_tensor_data(&m1), sizeof(float) * (size_t)(N * G));
            memcpy(pr, fd_tensor_data(&r1), sizeof(float) * (size_t)(N * G));
            fd_nn_release(&m1, &r1, NULL, NULL, NULL, NULL);
            for (int64_t n = 0; n < N; n++) coefs(n, C, G, pm, pr, pw, pb, mp, A + n * C, B + n * C);
            const int64_t tiles = (HW + TILE_PX - 1) / TILE_PX;
#pragma omp parallel for schedule(static)
            for (int64_t it = 0; it < N * tiles; it++) {
                const int64_t n = it / tiles, p0 = (it % tiles) * TILE_PX, p1 = p0 + TILE_PX < HW ? p0 + TILE_PX : HW;
                apply_range(in, px, py, n, C, HW, p0, p1, A + n * C, B + n * C, silu, simd);
            }
        }
    }
    fd_nn_release(&xs, &ws, &bs, &ss, &ts, &coef);
    if (rc) fd_nn_release(y, mean, rstd, NULL, NULL, NULL);
    return rc;
}
