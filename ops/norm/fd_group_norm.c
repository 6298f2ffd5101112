/* GroupNorm (optionally fused with SiLU), forward, for speed (the backward:
 * fd_group_norm_backward.c; the layouts and checks both use:
 * fd_group_norm_layout.c).
 *
 * Two layouts run without copying:
 *  - NCHW-contiguous: a group (n, g) is one contiguous run of Cg*HW floats, so
 *    threads take (n, g) items, and each item does its statistics pass and its
 *    normalise pass back to back while the run is still in L1/L2.
 *  - channels-last (strides [HWC, 1, WC, C]): a pixel's channels are
 *    contiguous, so threads split the pixels and vectorise across channels;
 *    per-thread per-channel sums are merged into group statistics.
 * Anything else is copied to NCHW first. Statistics are shifted sums
 * (x - first value) in f32 over short blocks, accumulated in double, which
 * keeps the variance accurate for inputs with a large mean. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/norm/fd_group_norm.h"
#include "ops/norm/fd_group_norm_blocked.h"
#include "ops/norm/fd_group_norm_layout.h"
#include "ops/norm/fd_group_norm_mod.h"

/* ---- NCHW: one contiguous run per group -------------------------------- */

static void run_stats_c(const float *p, int64_t m, float s, double *s1, double *s2)
{
    double a = 0, b = 0;
    for (int64_t i = 0; i < m; i++) {
        double d = (double)p[i] - s;
        a += d;
        b += d * d;
    }
    *s1 += a;
    *s2 += b;
}

FD_AVX2 static void run_stats_avx2(const float *p, int64_t m, float s, double *s1, double *s2)
{
    __m256 vs = _mm256_set1_ps(s);
    double a = 0, b = 0;
    int64_t i = 0;
    while (i + 16 <= m) {
        __m256 f0 = _mm256_setzero_ps(), f1 = f0, q0 = f0, q1 = f0;
        int64_t end = i + BLOCK < m ? i + BLOCK : m;
        for (; i + 16 <= end; i += 16) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(p + i), vs);
            __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(p + i + 8), vs);
            f0 = _mm256_add_ps(f0, d0);
            f1 = _mm256_add_ps(f1, d1);
            q0 = _mm256_fmadd_ps(d0, d0, q0);
            q1 = _mm256_fmadd_ps(d1, d1, q1);
        }
        a += nn_hsum256(_mm256_add_ps(f0, f1));
        b += nn_hsum256(_mm256_add_ps(q0, q1));
    }
    for (; i < m; i++) {
        double d = (double)p[i] - s;
        a += d;
        b += d * d;
    }
    *s1 += a;
    *s2 += b;
}

static void run_affine_c(const float *x, float *y, int64_t m, float a, float b, bool silu)
{
    for (int64_t i = 0; i < m; i++) {
        float z = x[i] * a + b;
        y[i] = silu ? nn_silu(z) : z;
    }
}

FD_AVX2 static void run_affine_avx2(const float *x, float *y, int64_t m, float a, float b, bool silu)
{
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    int64_t i = 0;
    if (silu)
        for (; i + 8 <= m; i += 8)
            _mm256_storeu_ps(y + i, nn_silu256(_mm256_fmadd_ps(_mm256_loadu_ps(x + i), va, vb)));
    else
        for (; i + 8 <= m; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_loadu_ps(x + i), va, vb));
    for (; i < m; i++) {
        float z = x[i] * a + b;
        y[i] = silu ? nn_silu(z) : z;
    }
}

/* ---- channels-last: vectorised across the channels of one pixel ---------- */

static void px_stats_c(const float *x, const float *s, float *f, float *q, int64_t C)
{
    for (int64_t c = 0; c < C; c++) {
        float d = x[c] - s[c];
        f[c] += d;
        q[c] += d * d;
    }
}

FD_AVX2 static void px_stats_avx2(const float *x, const float *s, float *f, float *q, int64_t C)
{
    int64_t c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(s + c));
        _mm256_storeu_ps(f + c, _mm256_add_ps(_mm256_loadu_ps(f + c), d));
        _mm256_storeu_ps(q + c, _mm256_fmadd_ps(d, d, _mm256_loadu_ps(q + c)));
    }
    px_stats_c(x + c, s + c, f + c, q + c, C - c);
}

static void px_affine_c(const float *x, float *y, const float *a, const float *b, int64_t C, bool silu)
{
    for (int64_t c = 0; c < C; c++) {
        float z = x[c] * a[c] + b[c];
        y[c] = silu ? nn_silu(z) : z;
    }
}

FD_AVX2 static void px_affine_avx2(const float *x, float *y, const float *a, const float *b, int64_t C, bool silu)
{
    int64_t c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 z = _mm256_fmadd_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c));
        _mm256_storeu_ps(y + c, silu ? nn_silu256(z) : z);
    }
    px_affine_c(x + c, y + c, a + c, b + c, C - c, silu);
}

/* ---- channels-last per-sample pieces ------------------------------------- */

/* Adds per-channel shifted sums over pixels [p0, p1) of one sample into d1, d2 (double). */
static void cl_stats_range(const float *xn, int64_t C, int64_t p0, int64_t p1, bool simd, double *d1, double *d2,
                           float *f)
{
    float *q = f + C;
    for (int64_t b0 = p0; b0 < p1; b0 += 64) {
        memset(f, 0, sizeof(float) * 2 * (size_t)C);
        int64_t b1 = b0 + 64 < p1 ? b0 + 64 : p1;
        for (int64_t p = b0; p < b1; p++) (simd ? px_stats_avx2 : px_stats_c)(xn + p * C, xn, f, q, C);
        for (int64_t c = 0; c < C; c++) d1[c] += f[c], d2[c] += q[c];
    }
}

/* Group statistics of one sample from its per-channel sums -> mean, rstd, and
 * the per-channel affine a*x + bb that normalises (and applies w, b). */
static void cl_coefs(const float *xn, const double *acc, int64_t HW, int64_t C, int64_t G, double eps,
                     const float *pw, const float *pb, float *pm, float *pr, float *a, float *bb)
{
    const int64_t Cg = C / G;
    for (int64_t g = 0; g < G; g++) {
        double msum = 0, m2 = 0;
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) msum += xn[c] + acc[c] / (double)HW;
        double mu = msum / (double)Cg;
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) {
            double mc = xn[c] + acc[c] / (double)HW, d = mc - mu;
            m2 += acc[C + c] - acc[c] * acc[c] / (double)HW + (double)HW * d * d;
        }
        double var = m2 / (double)(Cg * HW), r = 1.0 / sqrt((var > 0 ? var : 0) + eps);
        pm[g] = (float)mu;
        pr[g] = (float)r;
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) {
            double ac = r * (pw ? pw[c] : 1.0);
            a[c] = (float)ac;
            bb[c] = (float)((pb ? pb[c] : 0.0) - mu * ac);
        }
    }
}

/* ---- forward ------------------------------------------------------------ */

int fd_group_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                  const fd_tensor *w, const fd_tensor *b, double eps, bool silu)
{
    return fd_group_norm_mod(y, mean, rstd, x, G, w, b, NULL, NULL, eps, silu);
}

/* The NCHW and channels-last kernels; y = NULL: the statistics alone. */
static int group_norm_plain(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                            const fd_tensor *w, const fd_tensor *b, const fd_gn_mod *mod, double eps, bool silu);

int fd_group_norm_stats(fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G, double eps)
{
    memset(mean, 0, sizeof *mean);
    memset(rstd, 0, sizeof *rstd);
    if (fd_gn_check_args("group_norm", x, G, NULL, NULL)) return FD_ERR;
    if (x->dtype == FD_F64) return fd_fail("group_norm: statistics only take an f32 x, got f64");
    /* the kernels below with y = NULL: the statistics pass alone */
    if (fd_group_norm_blocked_fits(x, G))
        return fd_group_norm_blocked(NULL, mean, rstd, x, G, NULL, NULL, NULL, eps, false);
    return group_norm_plain(NULL, mean, rstd, x, G, NULL, NULL, NULL, eps, false);
}

int fd_group_norm_mod(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                      const fd_tensor *w, const fd_tensor *b, const fd_tensor *scale, const fd_tensor *shift,
                      double eps, bool silu)
{
    const char *op = "group_norm";
    memset(y, 0, sizeof *y);
    memset(mean, 0, sizeof *mean);
    memset(rstd, 0, sizeof *rstd);
    if (fd_gn_check_args(op, x, G, w, b)) return FD_ERR;
    if (x->dtype == FD_F64) {
        if (scale || shift) return fd_fail("%s: scale / shift take an f32 x, got f64 (fada.F runs the pieces)", op);
        return fd_ref_group_norm(y, mean, rstd, x, G, w, b, eps, silu);
    }
    fd_tensor ss = {0}, ts = {0};
    fd_gn_mod m = {0};
    int rc = fd_gn_mod_stage(op, x, scale, "scale", &ss, &m.scale, &m.scale_stride);
    if (rc == FD_OK) rc = fd_gn_mod_stage(op, x, shift, "shift", &ts, &m.shift, &m.shift_stride);
    const fd_gn_mod *mp = scale || shift ? &m : NULL;
    /* blocked in, blocked out; other group sizes run on an NCHW copy (fd_nn_stage_f32 unblocks) */
    if (rc == FD_OK)
        rc = fd_group_norm_blocked_fits(x, G) ? fd_group_norm_blocked(y, mean, rstd, x, G, w, b, mp, eps, silu)
                                              : group_norm_plain(y, mean, rstd, x, G, w, b, mp, eps, silu);
    fd_nn_release(&ss, &ts, NULL, NULL, NULL, NULL);
    return rc;
}

static int group_norm_plain(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                            const fd_tensor *w, const fd_tensor *b, const fd_gn_mod *mod, double eps, bool silu)
{
    const char *op = "group_norm";
    const int64_t N = x->shape[0], C = x->shape[1], Cg = C / G, HW = fd_tensor_numel(x) / (N * C);
    const bool cl = fd_gn_is_channels_last(x), simd = fd_nn_simd_enabled();
    fd_tensor xs = {0}, ws = {0}, bs = {0};
    float *px = fd_gn_stage_layout(&xs, x, cl);
    float *pw = w ? fd_nn_stage_f32(&ws, w) : NULL, *pb = b ? fd_nn_stage_f32(&bs, b) : NULL;
    int64_t sh[2] = {N, G};
    int nthr = omp_get_max_threads();
    float *coef = calloc(2 * (size_t)(C * nthr), sizeof(float));
    double *acc = calloc(1, sizeof(double) * 2 * (size_t)(C * nthr) + sizeof(float) * 2 * (size_t)(C * nthr));
    if (!px || (w && !pw) || (b && !pb) || !coef || !acc || (y && fd_gn_alloc_like(y, x, cl)) ||
        fd_tensor_empty(mean, FD_F32, 2, sh) || fd_tensor_empty(rstd, FD_F32, 2, sh)) {
        free(coef), free(acc);
        fd_nn_release(&xs, &ws, &bs, y, mean, rstd);
        return coef && acc ? FD_ERR : fd_fail("%s: out of memory", op);
    }
    float *py = y ? fd_tensor_data(y) : NULL, *pm = fd_tensor_data(mean), *pr = fd_tensor_data(rstd);

    if (!cl) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t ng = 0; ng < N * G; ng++) {
            const int64_t g = ng % G, m = Cg * HW;
            const float *p = px + ng * m;
            double s1 = 0, s2 = 0;
            (simd ? run_stats_avx2 : run_stats_c)(p, m, p[0], &s1, &s2);
            double mu = s1 / (double)m, var = s2 / (double)m - mu * mu;
            double r = 1.0 / sqrt((var > 0 ? var : 0) + eps);
            mu += p[0];
            pm[ng] = (float)mu;
            pr[ng] = (float)r;
            for (int64_t c = 0; py && c < Cg; c++) {
                int64_t ch = g * Cg + c;
                double ad = r * (pw ? pw[ch] : 1.0);
                float a = (float)ad, bb = (float)((pb ? pb[ch] : 0.0) - mu * ad);
                fd_gn_mod_apply(mod, ng / G, ch, 1, &a, &bb);
                (simd ? run_affine_avx2 : run_affine_c)(p + c * HW, py + ng * m + c * HW, HW, a, bb, silu);
            }
        }
    } else if (N >= nthr) {
        /* a sample per thread: no barriers inside a sample */
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t n = 0; n < N; n++) {
            int t = omp_get_thread_num();
            double *d = acc + 2 * C * t;
            float *f = (float *)(acc + 2 * C * nthr) + 2 * C * t, *a = coef + 2 * C * t, *bb = a + C;
            const float *xn = px + n * HW * C;
            memset(d, 0, sizeof(double) * 2 * (size_t)C);
            cl_stats_range(xn, C, 0, HW, simd, d, d + C, f);
            cl_coefs(xn, d, HW, C, G, eps, pw, pb, pm + n * G, pr + n * G, a, bb);
            fd_gn_mod_apply(mod, n, 0, C, a, bb);
            for (int64_t p = 0; py && p < HW; p++)
                (simd ? px_affine_avx2 : px_affine_c)(xn + p * C, py + n * HW * C + p * C, a, bb, C, silu);
        }
    } else {
        /* few samples: threads split the pixels of each one */
        for (int64_t n = 0; n < N; n++) {
            const float *xn = px + n * HW * C;
            float *a = coef, *bb = coef + C;
            memset(acc, 0, sizeof(double) * 2 * (size_t)(C * nthr));
#pragma omp parallel
            {
                int t = omp_get_thread_num(), nt = omp_get_num_threads();
                int64_t p0 = HW * t / nt, p1 = HW * (t + 1) / nt;
                cl_stats_range(xn, C, p0, p1, simd, acc + 2 * C * t, acc + 2 * C * t + C,
                               (float *)(acc + 2 * C * nthr) + 2 * C * t);
            }
            for (int t = 1; t < nthr; t++)
                for (int64_t c = 0; c < 2 * C; c++) acc[c] += acc[2 * C * t + c];
            cl_coefs(xn, acc, HW, C, G, eps, pw, pb, pm + n * G, pr + n * G, a, bb);
            if (!py) continue;
            fd_gn_mod_apply(mod, n, 0, C, a, bb);
            float *yn = py + n * HW * C;
#pragma omp parallel for schedule(static)
            for (int64_t p = 0; p < HW; p++)
                (simd ? px_affine_avx2 : px_affine_c)(xn + p * C, yn + p * C, a, bb, C, silu);
        }
    }
    free(coef);
    free(acc);
    fd_nn_release(&xs, &ws, &bs, NULL, NULL, NULL);
    return FD_OK;
}
