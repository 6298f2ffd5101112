/* layer_norm over the last dim, and softmax / log_softmax over any dim:
 * row kernels (AVX2 where the CPU has it), threads over rows. Inputs are made
 * contiguous first (a view when they already are). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/norm/fd_layer_norm_softmax.h"

/* ---- layer_norm rows ---------------------------------------------------- */

/* Shifted sums of one row -> mean, rstd. */
static void row_stats_c(const float *p, int64_t D, double eps, float *mean, float *rstd)
{
    double s = 0, q = 0, sh = p[0];
    for (int64_t j = 0; j < D; j++) {
        double d = p[j] - sh;
        s += d, q += d * d;
    }
    double mu = s / (double)D, var = q / (double)D - mu * mu;
    *mean = (float)(mu + sh);
    *rstd = (float)(1.0 / sqrt((var > 0 ? var : 0) + eps));
}

FD_AVX2 static void row_stats_avx2(const float *p, int64_t D, double eps, float *mean, float *rstd)
{
    __m256 vs = _mm256_set1_ps(p[0]), f = _mm256_setzero_ps(), q = f;
    int64_t j = 0;
    for (; j + 8 <= D; j += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(p + j), vs);
        f = _mm256_add_ps(f, d);
        q = _mm256_fmadd_ps(d, d, q);
    }
    double s = nn_hsum256(f), qq = nn_hsum256(q), sh = p[0];
    for (; j < D; j++) {
        double d = p[j] - sh;
        s += d, qq += d * d;
    }
    double mu = s / (double)D, var = qq / (double)D - mu * mu;
    *mean = (float)(mu + sh);
    *rstd = (float)(1.0 / sqrt((var > 0 ? var : 0) + eps));
}

static int ln_check(const char *op, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b)
{
    if (fd_nn_check_float(op, "x", x)) return FD_ERR;
    if (x->ndim < 1) return fd_fail("%s: x %s needs at least 1 dim", op, FD_SHAPE_STR(x));
    if (fd_nn_check_nonempty(op, "x", x)) return FD_ERR;
    int64_t D = x->shape[x->ndim - 1];
    return fd_nn_check_vec(op, "weight", w, D) || fd_nn_check_vec(op, "bias", b, D) ? FD_ERR : FD_OK;
}

int fd_layer_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, const fd_tensor *w,
                  const fd_tensor *b, double eps)
{
    if (ln_check("layer_norm", x, w, b)) return FD_ERR;
    if (x->dtype == FD_F64) return fd_ref_layer_norm(y, mean, rstd, x, w, b, eps);
    const int64_t D = x->shape[x->ndim - 1], R = fd_tensor_numel(x) / D;
    const bool simd = fd_nn_simd_enabled();
    fd_tensor xs = {0}, ws = {0}, bs = {0};
    float *px = fd_nn_stage_f32(&xs, x), *pw = w ? fd_nn_stage_f32(&ws, w) : NULL, *pb = b ? fd_nn_stage_f32(&bs, b) : NULL;
    if (!px || (w && !pw) || (b && !pb) || fd_tensor_empty_as(y, x, FD_F32) ||
        fd_tensor_empty(mean, FD_F32, x->ndim - 1, x->shape) || fd_tensor_empty(rstd, FD_F32, x->ndim - 1, x->shape)) {
        fd_nn_release(&xs, &ws, &bs, y, mean, rstd);
        return FD_ERR;
    }
    float *py = fd_tensor_data(y), *pm = fd_tensor_data(mean), *pr = fd_tensor_data(rstd);
#pragma omp parallel for schedule(static) if (R * D > 4096)
    for (int64_t i = 0; i < R; i++) {
        const float *p = px + i * D;
        float *q = py + i * D;
        (simd ? row_stats_avx2 : row_stats_c)(p, D, eps, pm + i, pr + i);
        float mu = pm[i], r = pr[i];
        for (int64_t j = 0; j < D; j++) q[j] = (p[j] - mu) * r * (pw ? pw[j] : 1.0f) + (pb ? pb[j] : 0.0f);
    }
    fd_nn_release(&xs, &ws, &bs, NULL, NULL, NULL);
    return FD_OK;
}

int fd_layer_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                           const fd_tensor *mean, const fd_tensor *rstd, const fd_tensor *w, const fd_tensor *b)
{
    const char *op = "layer_norm_backward";
    if (ln_check(op, x, w, b) || fd_nn_check_float(op, "grad_out", dy) || fd_nn_check_same_shape(op, "grad_out", dy, "x", x))
        return FD_ERR;
    const int64_t D = x->shape[x->ndim - 1], R = fd_tensor_numel(x) / D;
    if (fd_tensor_numel(mean) != R || fd_tensor_numel(rstd) != R)
        return fd_fail("%s: mean %s / rstd %s, expected %lld elements", op, FD_SHAPE_STR(mean), FD_SHAPE_STR(rstd),
                       (long long)R);
    if (x->dtype == FD_F64) return fd_ref_layer_norm_backward(dx, dw, db, dy, x, mean, rstd, w, b);
    fd_tensor xs = {0}, gs = {0}, ws = {0}, ms = {0}, rs = {0};
    float *px = fd_nn_stage_f32(&xs, x), *pg = fd_nn_stage_f32(&gs, dy), *pm = fd_nn_stage_f32(&ms, mean),
          *pr = fd_nn_stage_f32(&rs, rstd), *pw = w ? fd_nn_stage_f32(&ws, w) : NULL;
    int nthr = omp_get_max_threads();
    double *acc = calloc((size_t)(2 * D * nthr), sizeof(double)); /* per thread: dw, db partials */
    int64_t shd[1] = {D};
    if (!px || !pg || !pm || !pr || (w && !pw) || !acc || fd_tensor_empty_as(dx, x, FD_F32) ||
        (w && fd_tensor_empty(dw, FD_F32, 1, shd)) || (b && fd_tensor_empty(db, FD_F32, 1, shd))) {
        free(acc);
        fd_nn_release(&xs, &gs, &ws, &ms, &rs, NULL);
        fd_nn_release(dx, dw, db, NULL, NULL, NULL);
        return acc ? FD_ERR : fd_fail("%s: out of memory", op);
    }
    float *pd = fd_tensor_data(dx);
#pragma omp parallel if (R * D > 4096)
    {
        double *aw = acc + 2 * D * omp_get_thread_num(), *ab = aw + D;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < R; i++) {
            const float *p = px + i * D, *g = pg + i * D;
            float mu = pm[i], r = pr[i], sd = 0, sdx = 0;
            for (int64_t j = 0; j < D; j++) {
                float xh = (p[j] - mu) * r, dxh = g[j] * (pw ? pw[j] : 1.0f);
                aw[j] += g[j] * xh;
                ab[j] += g[j];
                sd += dxh, sdx += dxh * xh;
            }
            sd /= (float)D, sdx /= (float)D;
            for (int64_t j = 0; j < D; j++) {
                float xh = (p[j] - mu) * r;
                pd[i * D + j] = r * (g[j] * (pw ? pw[j] : 1.0f) - sd - xh * sdx);
            }
        }
    }
    for (int64_t j = 0; j < D; j++) {
        double sw = 0, sb = 0;
        for (int t = 0; t < nthr; t++) sw += acc[2 * D * t + j], sb += acc[2 * D * t + D + j];
        if (w) ((float *)fd_tensor_data(dw))[j] = (float)sw;
        if (b) ((float *)fd_tensor_data(db))[j] = (float)sb;
    }
    free(acc);
    fd_nn_release(&xs, &gs, &ws, &ms, &rs, NULL);
    return FD_OK;
}

/* ---- softmax ------------------------------------------------------------ */

static void split_dims(const fd_tensor *x, int dim, int64_t *outer, int64_t *D, int64_t *inner)
{
    *outer = 1, *inner = 1;
    for (int i = 0; i < dim; i++) *outer *= x->shape[i];
    for (int i = dim + 1; i < x->ndim; i++) *inner *= x->shape[i];
    *D = x->shape[dim];
}

/* One contiguous row. */
static void softmax_row_c(const float *x, float *y, int64_t D, bool lg)
{
    float m = -INFINITY;
    for (int64_t j = 0; j < D; j++) m = x[j] > m ? x[j] : m;
    double s = 0;
    for (int64_t j = 0; j < D; j++) s += (y[j] = expf(x[j] - m));
    if (lg) {
        float l = m + (float)log(s);
        for (int64_t j = 0; j < D; j++) y[j] = x[j] - l;
    } else {
        float inv = (float)(1.0 / s);
        for (int64_t j = 0; j < D; j++) y[j] *= inv;
    }
}

FD_AVX2 static void softmax_row_avx2(const float *x, float *y, int64_t D, bool lg)
{
    if (D < 8) {
        softmax_row_c(x, y, D, lg);
        return;
    }
    __m256 vm = _mm256_set1_ps(-INFINITY);
    int64_t j = 0;
    for (; j + 8 <= D; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + j));
    float m = nn_hmax256(vm);
    for (; j < D; j++) m = x[j] > m ? x[j] : m;
    if (m == -INFINITY) m = 0; /* all -inf: sum 0, result NaN/-inf as torch */
    __m256 mm = _mm256_set1_ps(m), vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= D; j += 8) {
        __m256 e = nn_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + j), mm));
        if (!lg) _mm256_storeu_ps(y + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    double s = nn_hsum256(vs);
    for (; j < D; j++) {
        float e = expf(x[j] - m);
        if (!lg) y[j] = e;
        s += e;
    }
    if (lg) {
        __m256 l = _mm256_set1_ps(m + (float)log(s));
        for (j = 0; j + 8 <= D; j += 8) _mm256_storeu_ps(y + j, _mm256_sub_ps(_mm256_loadu_ps(x + j), l));
        for (; j < D; j++) y[j] = x[j] - (m + (float)log(s));
    } else {
        __m256 inv = _mm256_set1_ps((float)(1.0 / s));
        for (j = 0; j + 8 <= D; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), inv));
        for (; j < D; j++) y[j] *= (float)(1.0 / s);
    }
}

int fd_softmax(fd_tensor *y, const fd_tensor *x, int dim, bool lg)
{
    const char *op = lg ? "log_softmax" : "softmax";
    if (fd_nn_check_float(op, "x", x) || fd_dim_index(op, dim, x->ndim, 0, &dim) || fd_nn_check_nonempty(op, "x", x))
        return FD_ERR;
    if (x->dtype == FD_F64) return fd_ref_softmax(y, x, dim, lg);
    int64_t O, D, I;
    split_dims(x, dim, &O, &D, &I);
    const bool simd = fd_nn_simd_enabled();
    fd_tensor xs = {0};
    float *px = fd_nn_stage_f32(&xs, x);
    if (!px || fd_tensor_empty_as(y, x, FD_F32)) {
        fd_nn_release(&xs, y, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    float *py = fd_tensor_data(y);
    if (I == 1) {
#pragma omp parallel for schedule(static) if (O * D > 8192)
        for (int64_t o = 0; o < O; o++) (simd ? softmax_row_avx2 : softmax_row_c)(px + o * D, py + o * D, D, lg);
    } else {
        /* Reduce along a strided dim: vectorise across the inner positions. */
#pragma omp parallel for schedule(static) if (O * D * I > 8192)
        for (int64_t o = 0; o < O; o++) {
            const float *p = px + o * D * I;
            float *q = py + o * D * I;
            for (int64_t i = 0; i < I; i++) {
                float m = -INFINITY;
                double s = 0;
                for (int64_t j = 0; j < D; j++) m = p[j * I + i] > m ? p[j * I + i] : m;
                for (int64_t j = 0; j < D; j++) s += expf(p[j * I + i] - m);
                float l = m + (float)log(s), inv = (float)(1.0 / s);
                for (int64_t j = 0; j < D; j++)
                    q[j * I + i] = lg ? p[j * I + i] - l : expf(p[j * I + i] - m) * inv;
            }
        }
    }
    fd_tensor_release(&xs);
    return FD_OK;
}

int fd_softmax_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *y, int dim, bool lg)
{
    const char *op = lg ? "log_softmax_backward" : "softmax_backward";
    if (fd_nn_check_float(op, "y", y) || fd_nn_check_float(op, "grad_out", dy) ||
        fd_nn_check_same_shape(op, "grad_out", dy, "y", y) || fd_dim_index(op, dim, y->ndim, 0, &dim) ||
        fd_nn_check_nonempty(op, "y", y))
        return FD_ERR;
    if (y->dtype == FD_F64) return fd_ref_softmax_backward(dx, dy, y, dim, lg);
    int64_t O, D, I;
    split_dims(y, dim, &O, &D, &I);
    fd_tensor ys = {0}, gs = {0};
    float *py = fd_nn_stage_f32(&ys, y), *pg = fd_nn_stage_f32(&gs, dy);
    if (!py || !pg || fd_tensor_empty_as(dx, y, FD_F32)) {
        fd_nn_release(&ys, &gs, dx, NULL, NULL, NULL);
        return FD_ERR;
    }
    float *pd = fd_tensor_data(dx);
#pragma omp parallel for schedule(static) if (O * D * I > 8192)
    for (int64_t o = 0; o < O; o++)
        for (int64_t i = 0; i < I; i++) {
            int64_t base = o * D * I + i;
            float s = 0;
            if (lg)
                for (int64_t j = 0; j < D; j++) s += pg[base + j * I];
            else
                for (int64_t j = 0; j < D; j++) s += pg[base + j * I] * py[base + j * I];
            if (lg)
                for (int64_t j = 0; j < D; j++) pd[base + j * I] = pg[base + j * I] - expf(py[base + j * I]) * s;
            else
                for (int64_t j = 0; j < D; j++) pd[base + j * I] = py[base + j * I] * (pg[base + j * I] - s);
        }
    fd_nn_release(&ys, &gs, NULL, NULL, NULL, NULL);
    return FD_OK;
}
