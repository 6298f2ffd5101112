/* The backward of the modulated GroupNorm (fd_group_norm_mod_backward):
 * y = act(u * (1 + s) + t) with u = norm(x) * w + b, s / t per sample and
 * channel. One pass over x and dy recomputes u (from mean and rstd) and z,
 * forms dz = dy * act'(z), sums dz and dz * u per (sample, channel) for the
 * shift's and the scale's gradients, and writes du = dz * (1 + s); the
 * norm's own backward (fd_group_norm_backward, no activation) turns du into
 * dx, dw, db. Training runs this instead of recording the norm, the product,
 * the sum and SiLU as four ops (each a pass writing a tensor, and a pass
 * back). */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/norm/fd_group_norm.h"
#include "ops/norm/fd_group_norm_layout.h"
#include "ops/norm/fd_group_norm_mod.h"

/* d silu(z) / dz = sigma(z) (1 + z (1 - sigma(z))) */
static inline float silu_grad(float z)
{
    float sg = 1.0f / (1.0f + expf(-z));
    return sg * (1.0f + z * (1.0f - sg));
}

/* One (sample, channel) plane of HW values: du, and the sums of dz and dz * u. */
static void plane_c(const float *x, const float *dy, float *du, int64_t HW, float a, float c0, float k, float t,
                    bool silu, double *sum_dz, double *sum_dzu)
{
    double s1 = 0, s2 = 0;
    for (int64_t i = 0; i < HW; i++) {
        float u = x[i] * a + c0, dz = silu ? dy[i] * silu_grad(u * k + t) : dy[i];
        s1 += dz;
        s2 += (double)dz * u;
        du[i] = dz * k;
    }
    *sum_dz = s1, *sum_dzu = s2;
}

FD_AVX2 static void plane_avx2(const float *x, const float *dy, float *du, int64_t HW, float a, float c0, float k,
                               float t, bool silu, double *sum_dz, double *sum_dzu)
{
    const __m256 va = _mm256_set1_ps(a), vc = _mm256_set1_ps(c0), vk = _mm256_set1_ps(k), vt = _mm256_set1_ps(t);
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 f1 = _mm256_setzero_ps(), f2 = f1;
    int64_t i = 0;
    for (; i + 8 <= HW; i += 8) {
        __m256 u = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), va, vc), dz = _mm256_loadu_ps(dy + i);
        if (silu) {
            __m256 z = _mm256_fmadd_ps(u, vk, vt), e, sg = nn_sigmoid256(z, &e);
            /* 1 - sigma as e sigma: no cancellation where sigma rounds to 1 */
            dz = _mm256_mul_ps(dz, _mm256_mul_ps(sg, _mm256_fmadd_ps(z, _mm256_mul_ps(e, sg), one)));
        }
        f1 = _mm256_add_ps(f1, dz); /* f32 partial sums over one plane (<= a few thousand values) */
        f2 = _mm256_fmadd_ps(dz, u, f2);
        _mm256_storeu_ps(du + i, _mm256_mul_ps(dz, vk));
    }
    double r1, r2;
    plane_c(x + i, dy + i, du + i, HW - i, a, c0, k, t, silu, &r1, &r2);
    *sum_dz = r1 + nn_hsum256(f1), *sum_dzu = r2 + nn_hsum256(f2);
}

/* The gradient of a scale / shift of shape like t ([N or 1, C] or [N or 1, C, 1, 1])
 * from per-(n, c) sums: summed over n when t has one row. */
static int mod_grad(fd_tensor *out, const fd_tensor *t, const double *sums, int64_t N, int64_t C)
{
    if (fd_tensor_zeros(out, FD_F32, t->ndim, t->shape)) return FD_ERR;
    float *p = fd_tensor_data(out);
    int64_t rows = t->shape[0];
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++) p[(rows == 1 ? 0 : n) * C + c] += (float)sums[n * C + c];
    return FD_OK;
}

int fd_group_norm_mod_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, fd_tensor *dscale, fd_tensor *dshift,
                               const fd_tensor *dy, const fd_tensor *x, const fd_tensor *mean, const fd_tensor *rstd,
                               int64_t G, const fd_tensor *w, const fd_tensor *b, const fd_tensor *scale,
                               const fd_tensor *shift, bool silu)
{
    const char *op = "group_norm_mod_backward";
    memset(dscale, 0, sizeof *dscale);
    memset(dshift, 0, sizeof *dshift);
    memset(dx, 0, sizeof *dx);
    if (fd_gn_check_args(op, x, G, w, b) || fd_nn_check_same_shape(op, "grad_out", dy, "x", x)) return FD_ERR;
    if (x->dtype != FD_F32 || x->ndim < 3)
        return fd_fail("%s: x must be f32 [N, C, ...], got %s %s", op, fd_dtype_name(x->dtype), FD_SHAPE_STR(x));
    const int64_t N = x->shape[0], C = x->shape[1], Cg = C / G, HW = fd_tensor_numel(x) / (N * C);
    const bool simd = fd_nn_simd_enabled();
    if (mean->ndim != 2 || mean->shape[0] != N || mean->shape[1] != G || rstd->ndim != 2 || rstd->shape[0] != N ||
        rstd->shape[1] != G)
        return fd_fail("%s: mean %s / rstd %s, expected [%lld, %lld]", op, FD_SHAPE_STR(mean), FD_SHAPE_STR(rstd),
                       (long long)N, (long long)G);
    fd_tensor xs = {0}, gs = {0}, ws = {0}, bs = {0}, ms = {0}, rs = {0}, ss = {0}, ts = {0}, du = {0}, sums = {0};
    fd_gn_mod m = {0};
    int64_t sshape[2] = {2 * N, C};
    const float *px = fd_nn_stage_f32(&xs, x), *pg = fd_nn_stage_f32(&gs, dy);
    const float *pw = w ? fd_nn_stage_f32(&ws, w) : NULL, *pb = b ? fd_nn_stage_f32(&bs, b) : NULL;
    const float *pm = fd_nn_stage_f32(&ms, mean), *pr = fd_nn_stage_f32(&rs, rstd);
    int rc = !px || !pg || (w && !pw) || (b && !pb) || !pm || !pr ? FD_ERR : FD_OK;
    if (rc == FD_OK) rc = fd_gn_mod_stage(op, x, scale, "scale", &ss, &m.scale, &m.scale_stride);
    if (rc == FD_OK) rc = fd_gn_mod_stage(op, x, shift, "shift", &ts, &m.shift, &m.shift_stride);
    if (rc == FD_OK) rc = fd_tensor_empty(&du, FD_F32, x->ndim, x->shape);
    if (rc == FD_OK) rc = fd_tensor_empty(&sums, FD_F64, 2, sshape);
    if (rc == FD_OK) {
        float *pdu = fd_tensor_data(&du);
        double *s1 = fd_tensor_data(&sums), *s2 = s1 + N * C;
#pragma omp parallel for schedule(static)
        for (int64_t nc = 0; nc < N * C; nc++) {
            const int64_t n = nc / C, c = nc % C, g = c / Cg;
            double a = (double)pr[n * G + g] * (pw ? pw[c] : 1.0);
            float k = m.scale ? 1.0f + m.scale[n * m.scale_stride + c] : 1.0f;
            float t = m.shift ? m.shift[n * m.shift_stride + c] : 0.0f;
            (simd ? plane_avx2 : plane_c)(px + nc * HW, pg + nc * HW, pdu + nc * HW, HW, (float)a,
                                          (float)((pb ? pb[c] : 0.0) - pm[n * G + g] * a), k, t, silu, &s1[nc],
                                          &s2[nc]);
        }
        rc = fd_group_norm_backward(dx, dw, db, &du, x, mean, rstd, G, w, b, false);
        if (rc == FD_OK && scale) rc = mod_grad(dscale, scale, s2, N, C);
        if (rc == FD_OK && shift) rc = mod_grad(dshift, shift, s1, N, C);
    }
    fd_nn_release(&xs, &gs, &ws, &bs, &ms, &rs);
    fd_nn_release(&ss, &ts, &du, &sums, NULL, NULL);
    if (rc) fd_nn_release(dx, dw, db, dscale, dshift, NULL);
    return rc;
}
