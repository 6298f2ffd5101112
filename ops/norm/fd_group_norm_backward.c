/* GroupNorm backward, for speed (the forward: fd_group_norm.c; the layouts
 * and checks both use: fd_group_norm_layout.c).
 * dz = dy (through the SiLU when fused) and its per-channel sums first, then
 * dx = k1*dz + k2*x + k3 per channel, in the layout of the forward: one
 * contiguous run per group for NCHW, vectorised across the channels of a
 * pixel for channels-last. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/norm/fd_group_norm.h"
#include "ops/norm/fd_group_norm_layout.h"

/* ---- NCHW: one contiguous run per group -------------------------------- */

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

/* ---- channels-last per-sample pieces ------------------------------------- */

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

/* ---- backward ----------------------------------------------------------- */

int fd_group_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                           const fd_tensor *mean, const fd_tensor *rstd, int64_t G, const fd_tensor *w,
                           const fd_tensor *b, bool silu)
{
    const char *op = "group_norm_backward";
    if (fd_gn_check_args(op, x, G, w, b) || fd_nn_check_same_shape(op, "grad_out", dy, "x", x)) return FD_ERR;
    const int64_t N = x->shape[0], C = x->shape[1], Cg = C / G, HW = fd_tensor_numel(x) / (N * C);
    if (mean->ndim != 2 || mean->shape[0] != N || mean->shape[1] != G || rstd->ndim != 2 || rstd->shape[0] != N ||
        rstd->shape[1] != G)
        return fd_fail("%s: mean %s / rstd %s, expected [%lld, %lld]", op, FD_SHAPE_STR(mean), FD_SHAPE_STR(rstd),
                       (long long)N, (long long)G);
    if (fd_nn_check_float(op, "grad_out", dy)) return FD_ERR;
    if (x->dtype == FD_F64) return fd_ref_group_norm_backward(dx, dw, db, dy, x, mean, rstd, G, w, b, silu);
    const bool cl = fd_gn_is_channels_last(x), simd = fd_nn_simd_enabled();
    fd_tensor xs = {0}, gs = {0}, ws = {0}, bs = {0}, ms = {0}, rs = {0};
    float *px = fd_gn_stage_layout(&xs, x, cl), *pg = fd_gn_stage_layout(&gs, dy, cl);
    float *pw = w ? fd_nn_stage_f32(&ws, w) : NULL, *pb = b ? fd_nn_stage_f32(&bs, b) : NULL;
    float *pm = fd_nn_stage_f32(&ms, mean), *pr = fd_nn_stage_f32(&rs, rstd);
    int nthr = omp_get_max_threads();
    double *sums = calloc(2 * (size_t)(N * C), sizeof(double)); /* per (n, c): sum dz, sum dz*x */
    double *acc = calloc(1, sizeof(double) * 2 * (size_t)(C * nthr) + sizeof(float) * 2 * (size_t)(C * nthr));
    float *coef = calloc(5 * (size_t)(C * nthr), sizeof(float));
    int64_t shc[1] = {C};
    int bad = !px || !pg || (w && !pw) || (b && !pb) || !pm || !pr;
    if (bad || !sums || !acc || !coef || fd_gn_alloc_like(dx, x, cl) || (w && fd_tensor_empty(dw, FD_F32, 1, shc)) ||
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
