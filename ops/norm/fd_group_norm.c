/* GroupNorm (optionally fused with SiLU), forward and backward, for speed.
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
#include "ops/norm/fd_group_norm_mod.h"

#define BLOCK 1024 /* f32 partial sums are flushed to double every BLOCK elements */

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

/* dz = dy * d silu(z)/dz (or dy), z = x*a + b; writes dz and returns sums of dz and dz*x. */
static void run_bwd1_c(const float *x, const float *dy, float *dz, int64_t m, float a, float b, bool silu,
                       double *sdz, double *sdzx)
{
    double s = 0, sx = 0;
    for (int64_t i = 0; i < m; i++) {
        float g = dy[i];
        if (silu) {
            float z = x[i] * a + b, sg = 1.0f / (1.0f + expf(-z));
            g *= sg * (1.0f + z * (1.0f - sg));
        }
        dz[i] = g;
        s += g;
        sx += (double)g * x[i];
    }
    *sdz += s;
    *sdzx += sx;
}

FD_AVX2 static void run_bwd1_avx2(const float *x, const float *dy, float *dz, int64_t m, float a, float b,
                                  bool silu, double *sdz, double *sdzx)
{
    __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b), one = _mm256_set1_ps(1.0f);
    double s = 0, sx = 0;
    int64_t i = 0;
    while (i + 8 <= m) {
        __m256 f = _mm256_setzero_ps(), fx = f;
        int64_t end = i + BLOCK < m ? i + BLOCK : m;
        for (; i + 8 <= end; i += 8) {
            __m256 vx = _mm256_loadu_ps(x + i), g = _mm256_loadu_ps(dy + i);
            if (silu) {
                __m256 z = _mm256_fmadd_ps(vx, va, vb);
                __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, nn_exp256(_mm256_sub_ps(_mm256_setzero_ps(), z))));
                g = _mm256_mul_ps(g, _mm256_mul_ps(sg, _mm256_fmadd_ps(z, _mm256_sub_ps(one, sg), one)));
            }
            _mm256_storeu_ps(dz + i, g);
            f = _mm256_add_ps(f, g);
            fx = _mm256_fmadd_ps(g, vx, fx);
        }
        s += nn_hsum256(f);
        sx += nn_hsum256(fx);
    }
    *sdz += s;
    *sdzx += sx;
    if (i < m) run_bwd1_c(x + i, dy + i, dz + i, m - i, a, b, silu, sdz, sdzx);
}

/* dx = k1*dz + k2*x + k3, in place over dz. */
static void run_bwd2_c(const float *x, float *dx, int64_t m, float k1, float k2, float k3)
{
    for (int64_t i = 0; i < m; i++) dx[i] = k1 * dx[i] + k2 * x[i] + k3;
}

FD_AVX2 static void run_bwd2_avx2(const float *x, float *dx, int64_t m, float k1, float k2, float k3)
{
    __m256 v1 = _mm256_set1_ps(k1), v2 = _mm256_set1_ps(k2), v3 = _mm256_set1_ps(k3);
    int64_t i = 0;
    for (; i + 8 <= m; i += 8)
        _mm256_storeu_ps(dx + i, _mm256_fmadd_ps(v1, _mm256_loadu_ps(dx + i),
                                                 _mm256_fmadd_ps(v2, _mm256_loadu_ps(x + i), v3)));
    run_bwd2_c(x + i, dx + i, m - i, k1, k2, k3);
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

static void px_bwd1_c(const float *x, const float *dy, float *dz, const float *a, const float *b, int64_t C,
                      bool silu, float *sdz, float *sdzx)
{
    for (int64_t c = 0; c < C; c++) {
        float g = dy[c];
        if (silu) {
            float z = x[c] * a[c] + b[c], sg = 1.0f / (1.0f + expf(-z));
            g *= sg * (1.0f + z * (1.0f - sg));
        }
        dz[c] = g;
        sdz[c] += g;
        sdzx[c] += g * x[c];
    }
}

FD_AVX2 static void px_bwd1_avx2(const float *x, const float *dy, float *dz, const float *a, const float *b,
                                 int64_t C, bool silu, float *sdz, float *sdzx)
{
    __m256 one = _mm256_set1_ps(1.0f);
    int64_t c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 vx = _mm256_loadu_ps(x + c), g = _mm256_loadu_ps(dy + c);
        if (silu) {
            __m256 z = _mm256_fmadd_ps(vx, _mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c));
            __m256 sg = _mm256_div_ps(one, _mm256_add_ps(one, nn_exp256(_mm256_sub_ps(_mm256_setzero_ps(), z))));
            g = _mm256_mul_ps(g, _mm256_mul_ps(sg, _mm256_fmadd_ps(z, _mm256_sub_ps(one, sg), one)));
        }
        _mm256_storeu_ps(dz + c, g);
        _mm256_storeu_ps(sdz + c, _mm256_add_ps(_mm256_loadu_ps(sdz + c), g));
        _mm256_storeu_ps(sdzx + c, _mm256_fmadd_ps(g, vx, _mm256_loadu_ps(sdzx + c)));
    }
    px_bwd1_c(x + c, dy + c, dz + c, a + c, b + c, C - c, silu, sdz + c, sdzx + c);
}

static void px_bwd2_c(const float *x, float *dx, const float *k1, const float *k2, const float *k3, int64_t C)
{
    for (int64_t c = 0; c < C; c++) dx[c] = k1[c] * dx[c] + k2[c] * x[c] + k3[c];
}

FD_AVX2 static void px_bwd2_avx2(const float *x, float *dx, const float *k1, const float *k2, const float *k3,
                                 int64_t C)
{
    int64_t c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 t = _mm256_fmadd_ps(_mm256_loadu_ps(k2 + c), _mm256_loadu_ps(x + c), _mm256_loadu_ps(k3 + c));
        _mm256_storeu_ps(dx + c, _mm256_fmadd_ps(_mm256_loadu_ps(k1 + c), _mm256_loadu_ps(dx + c), t));
    }
    px_bwd2_c(x + c, dx + c, k1 + c, k2 + c, k3 + c, C - c);
}

/* ---- layout helpers ---------------------------------------------------- */

/* Strides of [N, C, *spatial] stored as [N, *spatial, C]. */
static void channels_last_strides(const fd_tensor *t, int64_t *st)
{
    int nd = t->ndim;
    st[1] = 1;
    int64_t s = t->shape[1];
    for (int k = nd - 1; k >= 2; k--) {
        st[k] = s;
        s *= t->shape[k];
    }
    st[0] = s;
}

static bool is_channels_last(const fd_tensor *t)
{
    if (t->ndim < 3 || t->block) return false;
    int64_t st[FD_MAX_DIMS];
    channels_last_strides(t, st);
    for (int k = 0; k < t->ndim; k++)
        if (t->shape[k] != 1 && t->stride[k] != st[k]) return false;
    return !fd_tensor_is_contiguous(t); /* both: the NCHW kernel is as good */
}

/* An f32 copy (or view) of t in the layout the kernel runs in. */
static float *stage_layout(fd_tensor *tmp, const fd_tensor *t, bool cl)
{
    if (!cl) return fd_nn_stage_f32(tmp, t);
    if (t->dtype == FD_F32 && is_channels_last(t)) {
        fd_tensor_view_of(tmp, t);
        return fd_tensor_data(tmp);
    }
    if (fd_tensor_empty_as(tmp, t, FD_F32)) return NULL;
    channels_last_strides(t, tmp->stride);
    if (fd_tensor_copy_(tmp, t)) {
        fd_tensor_release(tmp);
        return NULL;
    }
    return fd_tensor_data(tmp);
}

static int alloc_like(fd_tensor *out, const fd_tensor *x, bool cl)
{
    if (fd_tensor_empty_as(out, x, FD_F32)) return FD_ERR;
    if (cl) channels_last_strides(x, out->stride);
    return FD_OK;
}

static int check_args(const char *op, const fd_tensor *x, int64_t G, const fd_tensor *w, const fd_tensor *b)
{
    if (fd_nn_check_float(op, "x", x)) return FD_ERR;
    if (x->ndim < 2) return fd_fail("%s: x %s needs at least 2 dims [N, C, ...]", op, FD_SHAPE_STR(x));
    if (fd_nn_check_nonempty(op, "x", x)) return FD_ERR;
    if (G <= 0 || x->shape[1] % G != 0)
        return fd_fail("%s: groups %lld do not divide the %lld channels of x %s", op, (long long)G,
                       (long long)x->shape[1], FD_SHAPE_STR(x));
    if (fd_nn_check_vec(op, "weight", w, x->shape[1]) || fd_nn_check_vec(op, "bias", b, x->shape[1])) return FD_ERR;
    return FD_OK;
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

/* Backward pass 1 over pixels [p0, p1): dz into dx, per-channel sums of dz and dz*x. */
static void cl_bwd1_range(const float *xn, const float *gn, float *dn, int64_t C, int64_t p0, int64_t p1,
                          const float *a, const float *bb, bool silu, bool simd, double *d1, double *d2, float *f)
{
    float *q = f + C;
    for (int64_t b0 = p0; b0 < p1; b0 += 64) {
        memset(f, 0, sizeof(float) * 2 * (size_t)C);
        int64_t b1 = b0 + 64 < p1 ? b0 + 64 : p1;
        for (int64_t p = b0; p < b1; p++)
            (simd ? px_bwd1_avx2 : px_bwd1_c)(xn + p * C, gn + p * C, dn + p * C, a, bb, C, silu, f, q);
        for (int64_t c = 0; c < C; c++) d1[c] += f[c], d2[c] += q[c];
    }
}

/* Backward coefficients of one sample: dx = k1*dz + k2*x + k3 per channel; keeps the sums for dw, db. */
static void cl_bwd_coefs(const double *acc, int64_t C, int64_t G, int64_t HW, const float *pm, const float *pr,
                         const float *pw, double *sums, float *k1, float *k2, float *k3)
{
    const int64_t Cg = C / G;
    const double M = (double)(Cg * HW);
    for (int64_t g = 0; g < G; g++) {
        double mu = pm[g], r = pr[g], A = 0, B = 0;
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) {
            double wc = pw ? pw[c] : 1.0;
            sums[2 * c] = acc[c];
            sums[2 * c + 1] = acc[C + c];
            A += wc * acc[c];
            B += wc * r * (acc[C + c] - mu * acc[c]);
        }
        for (int64_t c = g * Cg; c < (g + 1) * Cg; c++) {
            k1[c] = (float)(r * (pw ? pw[c] : 1.0));
            k2[c] = (float)(-r * r * B / M);
            k3[c] = (float)(mu * r * r * B / M - r * A / M);
        }
    }
}

/* ---- forward ------------------------------------------------------------ */

/* scale / shift [N or 1, C] (or [N or 1, C, 1, 1]) staged as f32 rows. */
static int stage_mod(const char *op, const fd_tensor *x, const fd_tensor *t, const char *what, fd_tensor *tmp,
                     const float **p, int64_t *stride)
{
    if (!t) return FD_OK;
    int64_t N = x->shape[0], C = x->shape[1], n = t->ndim >= 1 ? t->shape[0] : 0;
    bool ok = (t->ndim == 2 || (t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1)) && (n == N || n == 1) &&
              t->shape[1] == C;
    if (!ok)
        return fd_fail("%s: %s %s must be [N or 1, C] or [N or 1, C, 1, 1] for x %s", op, what, FD_SHAPE_STR(t),
                       FD_SHAPE_STR(x));
    if (fd_nn_check_float(op, what, t) || !(*p = fd_nn_stage_f32(tmp, t))) return FD_ERR;
    *stride = n == 1 ? 0 : C;
    return FD_OK;
}

int fd_group_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                  const fd_tensor *w, const fd_tensor *b, double eps, bool silu)
{
    return fd_group_norm_mod(y, mean, rstd, x, G, w, b, NULL, NULL, eps, silu);
}

static int group_norm_plain(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                            const fd_tensor *w, const fd_tensor *b, const fd_gn_mod *mod, double eps, bool silu);

int fd_group_norm_mod(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                      const fd_tensor *w, const fd_tensor *b, const fd_tensor *scale, const fd_tensor *shift,
                      double eps, bool silu)
{
    const char *op = "group_norm";
    memset(y, 0, sizeof *y);
    memset(mean, 0, sizeof *mean);
    memset(rstd, 0, sizeof *rstd);
    if (check_args(op, x, G, w, b)) return FD_ERR;
    if (x->dtype == FD_F64) {
        if (scale || shift) return fd_fail("%s: scale / shift take an f32 x, got f64 (fada.F runs the pieces)", op);
        return fd_ref_group_norm(y, mean, rstd, x, G, w, b, eps, silu);
    }
    fd_tensor ss = {0}, ts = {0};
    fd_gn_mod m = {0};
    int rc = stage_mod(op, x, scale, "scale", &ss, &m.scale, &m.scale_stride);
    if (rc == FD_OK) rc = stage_mod(op, x, shift, "shift", &ts, &m.shift, &m.shift_stride);
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
    const bool cl = is_channels_last(x), simd = fd_nn_simd_enabled();
    fd_tensor xs = {0}, ws = {0}, bs = {0};
    float *px = stage_layout(&xs, x, cl);
    float *pw = w ? fd_nn_stage_f32(&ws, w) : NULL, *pb = b ? fd_nn_stage_f32(&bs, b) : NULL;
    int64_t sh[2] = {N, G};
    int nthr = omp_get_max_threads();
    float *coef = calloc(2 * (size_t)(C * nthr), sizeof(float));
    double *acc = calloc(1, sizeof(double) * 2 * (size_t)(C * nthr) + sizeof(float) * 2 * (size_t)(C * nthr));
    if (!px || (w && !pw) || (b && !pb) || !coef || !acc || alloc_like(y, x, cl) ||
        fd_tensor_empty(mean, FD_F32, 2, sh) || fd_tensor_empty(rstd, FD_F32, 2, sh)) {
        free(coef), free(acc);
        fd_nn_release(&xs, &ws, &bs, y, mean, rstd);
        return coef && acc ? FD_ERR : fd_fail("%s: out of memory", op);
    }
    float *py = fd_tensor_data(y), *pm = fd_tensor_data(mean), *pr = fd_tensor_data(rstd);

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
            for (int64_t c = 0; c < Cg; c++) {
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
            for (int64_t p = 0; p < HW; p++)
                (simd ? px_affine_avx2 : px_affine_c)(xn + p * C, py + n * HW * C + p * C, a, bb, C, silu);
        }
    } else {
        /* few samples: threads split the pixels of each one */
        for (int64_t n = 0; n < N; n++) {
            const float *xn = px + n * HW * C;
            float *yn = py + n * HW * C, *a = coef, *bb = coef + C;
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
            fd_gn_mod_apply(mod, n, 0, C, a, bb);
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

/* ---- backward ----------------------------------------------------------- */

int fd_group_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                           const fd_tensor *mean, const fd_tensor *rstd, int64_t G, const fd_tensor *w,
                           const fd_tensor *b, bool silu)
{
    const char *op = "group_norm_backward";
    if (check_args(op, x, G, w, b) || fd_nn_check_same_shape(op, "grad_out", dy, "x", x)) return FD_ERR;
    const int64_t N = x->shape[0], C = x->shape[1], Cg = C / G, HW = fd_tensor_numel(x) / (N * C);
    if (mean->ndim != 2 || mean->shape[0] != N || mean->shape[1] != G || rstd->ndim != 2 || rstd->shape[0] != N ||
        rstd->shape[1] != G)
        return fd_fail("%s: mean %s / rstd %s, expected [%lld, %lld]", op, FD_SHAPE_STR(mean), FD_SHAPE_STR(rstd),
                       (long long)N, (long long)G);
    if (fd_nn_check_float(op, "grad_out", dy)) return FD_ERR;
    if (x->dtype == FD_F64) return fd_ref_group_norm_backward(dx, dw, db, dy, x, mean, rstd, G, w, b, silu);
    const bool cl = is_channels_last(x), simd = fd_nn_simd_enabled();
    fd_tensor xs = {0}, gs = {0}, ws = {0}, bs = {0}, ms = {0}, rs = {0};
    float *px = stage_layout(&xs, x, cl), *pg = stage_layout(&gs, dy, cl);
    float *pw = w ? fd_nn_stage_f32(&ws, w) : NULL, *pb = b ? fd_nn_stage_f32(&bs, b) : NULL;
    float *pm = fd_nn_stage_f32(&ms, mean), *pr = fd_nn_stage_f32(&rs, rstd);
    int nthr = omp_get_max_threads();
    double *sums = calloc(2 * (size_t)(N * C), sizeof(double)); /* per (n, c): sum dz, sum dz*x */
    double *acc = calloc(1, sizeof(double) * 2 * (size_t)(C * nthr) + sizeof(float) * 2 * (size_t)(C * nthr));
    float *coef = calloc(5 * (size_t)(C * nthr), sizeof(float));
    int64_t shc[1] = {C};
    int bad = !px || !pg || (w && !pw) || (b && !pb) || !pm || !pr;
    if (bad || !sums || !acc || !coef || alloc_like(dx, x, cl) || (w && fd_tensor_empty(dw, FD_F32, 1, shc)) ||
        (b && fd_tensor_empty(db, FD_F32, 1, shc))) {
        free(sums), free(acc), free(coef);
        fd_nn_release(&xs, &gs, &ws, &bs, &ms, &rs);
        fd_nn_release(dx, dw, db, NULL, NULL, NULL);
        return bad || (sums && acc && coef) ? FD_ERR : fd_fail("%s: out of memory", op);
    }
    float *pdx = fd_tensor_data(dx);
    const double M = (double)(Cg * HW);

    if (!cl) {
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t ng = 0; ng < N * G; ng++) {
            const int64_t n = ng / G, g = ng % G, m = Cg * HW;
            const double mu = pm[ng], r = pr[ng];
            double A = 0, B = 0;
            for (int64_t c = 0; c < Cg; c++) {
                int64_t ch = g * Cg + c, off = ng * m + c * HW;
                double wc = pw ? pw[ch] : 1.0, a = r * wc, bb = (pb ? pb[ch] : 0.0) - mu * a;
                double s = 0, sx = 0;
                (simd ? run_bwd1_avx2 : run_bwd1_c)(px + off, pg + off, pdx + off, HW, (float)a, (float)bb, silu, &s,
                                                    &sx);
                sums[2 * (n * C + ch)] = s;
                sums[2 * (n * C + ch) + 1] = sx;
                A += wc * s;
                B += wc * r * (sx - mu * s);
            }
            double k2 = -r * r * B / M, k3 = mu * r * r * B / M - r * A / M;
            for (int64_t c = 0; c < Cg; c++) {
                int64_t ch = g * Cg + c, off = ng * m + c * HW;
                double k1 = r * (pw ? pw[ch] : 1.0);
                (simd ? run_bwd2_avx2 : run_bwd2_c)(px + off, pdx + off, HW, (float)k1, (float)k2, (float)k3);
            }
        }
    } else {
        const bool per_sample = N >= nthr;
        /* a sample per thread when there are enough, else threads split each sample's pixels */
#pragma omp parallel for schedule(dynamic, 1) if (per_sample)
        for (int64_t n = 0; n < N; n++) {
            int t = per_sample ? omp_get_thread_num() : 0;
            float *a = coef + 5 * C * t, *bb = a + C, *k1 = a + 2 * C, *k2 = a + 3 * C, *k3 = a + 4 * C;
            double *d = acc + 2 * C * t;
            float *fs = (float *)(acc + 2 * C * nthr);
            const float *xn = px + n * HW * C, *gn = pg + n * HW * C;
            float *dn = pdx + n * HW * C;
            for (int64_t c = 0; c < C; c++) {
                double r = pr[n * G + c / Cg], ac = r * (pw ? pw[c] : 1.0);
                a[c] = (float)ac;
                bb[c] = (float)((pb ? pb[c] : 0.0) - pm[n * G + c / Cg] * ac);
            }
            if (per_sample) {
                memset(d, 0, sizeof(double) * 2 * (size_t)C);
                cl_bwd1_range(xn, gn, dn, C, 0, HW, a, bb, silu, simd, d, d + C, fs + 2 * C * t);
                cl_bwd_coefs(d, C, G, HW, pm + n * G, pr + n * G, pw, sums + 2 * n * C, k1, k2, k3);
                for (int64_t p = 0; p < HW; p++)
                    (simd ? px_bwd2_avx2 : px_bwd2_c)(xn + p * C, dn + p * C, k1, k2, k3, C);
                continue;
            }
            memset(acc, 0, sizeof(double) * 2 * (size_t)(C * nthr));
#pragma omp parallel
            {
                int u = omp_get_thread_num(), nt = omp_get_num_threads();
                int64_t p0 = HW * u / nt, p1 = HW * (u + 1) / nt;
                cl_bwd1_range(xn, gn, dn, C, p0, p1, a, bb, silu, simd, acc + 2 * C * u, acc + 2 * C * u + C,
                              fs + 2 * C * u);
            }
            for (int u = 1; u < nthr; u++)
                for (int64_t c = 0; c < 2 * C; c++) acc[c] += acc[2 * C * u + c];
            cl_bwd_coefs(acc, C, G, HW, pm + n * G, pr + n * G, pw, sums + 2 * n * C, k1, k2, k3);
#pragma omp parallel for schedule(static)
            for (int64_t p = 0; p < HW; p++) (simd ? px_bwd2_avx2 : px_bwd2_c)(xn + p * C, dn + p * C, k1, k2, k3, C);
        }
    }
    /* dw[c] = sum_n rstd * (sum dz*x - mean * sum dz); db[c] = sum_n sum dz */
    for (int64_t c = 0; c < C; c++) {
        double sw = 0, sb = 0;
        for (int64_t n = 0; n < N; n++) {
            double s = sums[2 * (n * C + c)], sx = sums[2 * (n * C + c) + 1];
            sw += pr[n * G + c / Cg] * (sx - pm[n * G + c / Cg] * s);
            sb += s;
        }
        if (w) ((float *)fd_tensor_data(dw))[c] = (float)sw;
        if (b) ((float *)fd_tensor_data(db))[c] = (float)sb;
    }
    free(sums), free(acc), free(coef);
    fd_nn_release(&xs, &gs, &ws, &bs, &ms, &rs);
    return FD_OK;
}
