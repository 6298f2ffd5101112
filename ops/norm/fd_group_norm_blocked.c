/* GroupNorm (optionally fused with SiLU) forward on the blocked layout
 * (fd_tensor.block: [N, C/8, HW, 8]), writing the same layout, so a chain
 * conv2d -> group_norm -> conv2d never leaves it.
 *
 * A group's channels are consecutive, so its blocks are one contiguous run:
 * a group of 8k channels (k <= 64) is k whole blocks, and a block holds 8/Cg whole
 * groups when Cg divides 8. An item is (sample, such a run); threads take
 * items, and each does its statistics pass and its normalise pass back to
 * back while the run is in cache. Per channel (lane), sums of x - x[first
 * pixel] in f32 over short stretches, flushed to double; channels merge into
 * their group with the pairwise-variance formula. Other group sizes are not
 * handled here (fd_group_norm converts and runs the NCHW kernel). */
#include <omp.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/norm/fd_group_norm_blocked.h"

#define STRETCH 1024 /* pixels summed in f32 before the flush to double */
#define L FD_CBLOCK
#define MAX_RUN 512 /* channels in one item (per-channel scratch on the stack) */

bool fd_group_norm_blocked_fits(const fd_tensor *x, int64_t G)
{
    int64_t cg = x->shape[1] / G;
    return x->block && x->dtype == FD_F32 && ((cg % L == 0 && cg <= MAX_RUN) || L % cg == 0);
}

/* Per lane of one block's hw pixels: s1 += sum(x - sh), s2 += sum((x - sh)^2). */
static void lane_sums_c(const float *p, int64_t hw, const float *sh, double *s1, double *s2)
{
    for (int64_t i0 = 0; i0 < hw; i0 += STRETCH) {
        int64_t i1 = i0 + STRETCH < hw ? i0 + STRETCH : hw;
        float f[L] = {0}, q[L] = {0};
        for (int64_t i = i0; i < i1; i++)
            for (int l = 0; l < L; l++) {
                float d = p[i * L + l] - sh[l];
                f[l] += d;
                q[l] += d * d;
            }
        for (int l = 0; l < L; l++) s1[l] += f[l], s2[l] += q[l];
    }
}

FD_AVX2 static void lane_sums_avx2(const float *p, int64_t hw, const float *sh, double *s1, double *s2)
{
    __m256 vs = _mm256_loadu_ps(sh);
    for (int64_t i0 = 0; i0 < hw; i0 += STRETCH) {
        int64_t i1 = i0 + STRETCH < hw ? i0 + STRETCH : hw, i = i0;
        __m256 f0 = _mm256_setzero_ps(), f1 = f0, q0 = f0, q1 = f0;
        for (; i + 2 <= i1; i += 2) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(p + i * L), vs);
            __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(p + i * L + L), vs);
            f0 = _mm256_add_ps(f0, d0);
            f1 = _mm256_add_ps(f1, d1);
            q0 = _mm256_fmadd_ps(d0, d0, q0);
            q1 = _mm256_fmadd_ps(d1, d1, q1);
        }
        for (; i < i1; i++) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(p + i * L), vs);
            f0 = _mm256_add_ps(f0, d);
            q0 = _mm256_fmadd_ps(d, d, q0);
        }
        float f[L], q[L];
        _mm256_storeu_ps(f, _mm256_add_ps(f0, f1));
        _mm256_storeu_ps(q, _mm256_add_ps(q0, q1));
        for (int l = 0; l < L; l++) s1[l] += f[l], s2[l] += q[l];
    }
}

/* y = act(x * a + b) per lane over one block's hw pixels. */
static void lane_affine_c(const float *x, float *y, int64_t hw, const float *a, const float *b, bool silu)
{
    for (int64_t i = 0; i < hw; i++)
        for (int l = 0; l < L; l++) {
            float z = x[i * L + l] * a[l] + b[l];
            y[i * L + l] = silu ? nn_silu(z) : z;
        }
}

FD_AVX2 static void lane_affine_avx2(const float *x, float *y, int64_t hw, const float *a, const float *b, bool silu)
{
    __m256 va = _mm256_loadu_ps(a), vb = _mm256_loadu_ps(b);
    if (silu)
        for (int64_t i = 0; i < hw; i++)
            _mm256_storeu_ps(y + i * L, nn_silu256(_mm256_fmadd_ps(_mm256_loadu_ps(x + i * L), va, vb)));
    else
        for (int64_t i = 0; i < hw; i++)
            _mm256_storeu_ps(y + i * L, _mm256_fmadd_ps(_mm256_loadu_ps(x + i * L), va, vb));
}

int fd_group_norm_blocked(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                          const fd_tensor *w, const fd_tensor *b, const fd_gn_mod *mod, double eps, bool silu)
{
    const int64_t N = x->shape[0], C = x->shape[1], Cg = C / G, HW = x->shape[2] * x->shape[3];
    const int64_t K = Cg >= L ? Cg / L : 1, CB = C / L, runs = CB / K; /* blocks per item, items per sample */
    const bool simd = fd_nn_simd_enabled();
    fd_tensor ws = {0}, bs = {0};
    const float *pw = w ? fd_nn_stage_f32(&ws, w) : NULL, *pb = b ? fd_nn_stage_f32(&bs, b) : NULL;
    int64_t sh[2] = {N, G};
    if (y) memset(y, 0, sizeof *y);
    if ((w && !pw) || (b && !pb) || (y && fd_tensor_empty_blocked(y, x->shape)) ||
        fd_tensor_empty(mean, FD_F32, 2, sh) || fd_tensor_empty(rstd, FD_F32, 2, sh)) {
        fd_nn_release(&ws, &bs, y, mean, rstd, NULL);
        return FD_ERR;
    }
    const float *px = fd_tensor_data(x);
    float *py = y ? fd_tensor_data(y) : NULL, *pm = fd_tensor_data(mean), *pr = fd_tensor_data(rstd);
    const double n_group = (double)(HW * Cg);

#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t item = 0; item < N * runs; item++) {
        const int64_t n = item / runs, cb0 = (item % runs) * K, c0 = cb0 * L, nc = K * L;
        const float *p = px + (n * CB + cb0) * HW * L;
        double mu[MAX_RUN], m2[MAX_RUN]; /* per channel of the run: mean, sum of squared deviations */
        for (int64_t k = 0; k < K; k++) {
            const float *pk = p + k * HW * L;
            double s1[L] = {0}, s2[L] = {0};
            (simd ? lane_sums_avx2 : lane_sums_c)(pk, HW, pk, s1, s2);
            for (int l = 0; l < L; l++) {
                double m = s1[l] / (double)HW;
                mu[k * L + l] = pk[l] + m;
                m2[k * L + l] = s2[l] - s1[l] * m; /* sum of squared deviations from the channel mean */
            }
        }
        /* channels -> groups (equal counts): M2 = sum M2_c + HW sum (mu_c - mu_g)^2 */
        float a[MAX_RUN], bb[MAX_RUN];
        for (int64_t g0 = 0; g0 < nc; g0 += Cg) {
            double mg = 0, v = 0;
            for (int64_t c = g0; c < g0 + Cg; c++) mg += mu[c];
            mg /= (double)Cg;
            for (int64_t c = g0; c < g0 + Cg; c++) v += m2[c] + (double)HW * (mu[c] - mg) * (mu[c] - mg);
            v /= n_group;
            double r = 1.0 / sqrt((v > 0 ? v : 0) + eps);
            int64_t g = (c0 + g0) / Cg;
            pm[n * G + g] = (float)mg;
            pr[n * G + g] = (float)r;
            for (int64_t c = g0; c < g0 + Cg; c++) {
                double ac = r * (pw ? pw[c0 + c] : 1.0);
                a[c] = (float)ac;
                bb[c] = (float)((pb ? pb[c0 + c] : 0.0) - mg * ac);
            }
        }
        if (!py) continue; /* statistics only */
        fd_gn_mod_apply(mod, n, c0, nc, a, bb);
        for (int64_t k = 0; k < K; k++)
            (simd ? lane_affine_avx2 : lane_affine_c)(p + k * HW * L, py + (n * CB + cb0 + k) * HW * L, HW, a + k * L,
                                                      bb + k * L, silu);
    }
    fd_nn_release(&ws, &bs, NULL, NULL, NULL, NULL);
    return FD_OK;
}
