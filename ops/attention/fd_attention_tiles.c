/* The pieces of flash attention that the forward (fd_attention.c) and the
 * backward (fd_attention_backward.c) share (declared in fd_attention_tiles.h):
 * the register-blocked micro-kernels and the tile product, the row
 * exponentials, packing keys, values and queries into zero-padded tiles,
 * masking a score tile, and the setup that checks and stages the inputs. */
#include <omp.h>
#include <string.h>

#include "ops/attention/fd_attention_check.h"
#include "ops/attention/fd_attention_tiles.h"

void fd_att_mk_c(int64_t K, const float *A, int64_t lda, int64_t aks, const float *B, int64_t ldb, float *C,
                 int64_t ldc, int acc)
{
    float c[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) c[r][j] = acc ? C[r * ldc + j] : 0.0f;
    for (int64_t k = 0; k < K; k++)
        for (int r = 0; r < MR; r++) {
            float a = A[r * lda + k * aks];
            for (int j = 0; j < NR; j++) c[r][j] += a * B[k * ldb + j];
        }
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) C[r * ldc + j] = c[r][j];
}

FD_AVX2 void fd_att_mk_avx2(int64_t K, const float *A, int64_t lda, int64_t aks, const float *B, int64_t ldb,
                            float *C, int64_t ldc, int acc)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (acc) {
        c00 = _mm256_loadu_ps(C), c01 = _mm256_loadu_ps(C + 8);
        c10 = _mm256_loadu_ps(C + ldc), c11 = _mm256_loadu_ps(C + ldc + 8);
        c20 = _mm256_loadu_ps(C + 2 * ldc), c21 = _mm256_loadu_ps(C + 2 * ldc + 8);
        c30 = _mm256_loadu_ps(C + 3 * ldc), c31 = _mm256_loadu_ps(C + 3 * ldc + 8);
        c40 = _mm256_loadu_ps(C + 4 * ldc), c41 = _mm256_loadu_ps(C + 4 * ldc + 8);
        c50 = _mm256_loadu_ps(C + 5 * ldc), c51 = _mm256_loadu_ps(C + 5 * ldc + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    const float *a0 = A, *a1 = A + lda, *a2 = A + 2 * lda, *a3 = A + 3 * lda, *a4 = A + 4 * lda, *a5 = A + 5 * lda;
    for (int64_t k = 0, ak = 0; k < K; k++, ak += aks) {
        __m256 b0 = _mm256_loadu_ps(B + k * ldb), b1 = _mm256_loadu_ps(B + k * ldb + 8), a;
        a = _mm256_broadcast_ss(a0 + ak), c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(a1 + ak), c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(a2 + ak), c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(a3 + ak), c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(a4 + ak), c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(a5 + ak), c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    _mm256_storeu_ps(C, c00), _mm256_storeu_ps(C + 8, c01);
    _mm256_storeu_ps(C + ldc, c10), _mm256_storeu_ps(C + ldc + 8, c11);
    _mm256_storeu_ps(C + 2 * ldc, c20), _mm256_storeu_ps(C + 2 * ldc + 8, c21);
    _mm256_storeu_ps(C + 3 * ldc, c30), _mm256_storeu_ps(C + 3 * ldc + 8, c31);
    _mm256_storeu_ps(C + 4 * ldc, c40), _mm256_storeu_ps(C + 4 * ldc + 8, c41);
    _mm256_storeu_ps(C + 5 * ldc, c50), _mm256_storeu_ps(C + 5 * ldc + 8, c51);
}

/* C[M x N] (+)= A[M x K] B[K x N], A(i, k) at A[i*lda + k*aks]; M a multiple of MR, N of NR. */
void fd_att_tile_gemm(microkernel mk, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int64_t aks,
                      const float *B, int64_t ldb, float *C, int64_t ldc, int acc)
{
    for (int64_t i = 0; i < M; i += MR)
        for (int64_t j = 0; j < N; j += NR) mk(K, A + i * lda, lda, aks, B + j, ldb, C + i * ldc + j, ldc, acc);
}

/* The AVX-512 tile: C[6 x 32] (+)= A[6 x K] B[K x 32], twelve 16-lane accumulators
 * (two FMA ports x four cycles of latency want eight or more in flight; the
 * AVX2 kernel's 6 x 16 holds twelve 8-lane ones). */
FD_AVX512 static void mk_avx512_6x32(int64_t K, const float *A, int64_t lda, int64_t aks, const float *B,
                                     int64_t ldb, float *C, int64_t ldc, int acc)
{
    __m512 c[MR][2];
    for (int r = 0; r < MR; r++)
        for (int h = 0; h < 2; h++) c[r][h] = acc ? _mm512_loadu_ps(C + r * ldc + 16 * h) : _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++, A += aks) {
        __m512 b0 = _mm512_loadu_ps(B + k * ldb), b1 = _mm512_loadu_ps(B + k * ldb + 16);
        for (int r = 0; r < MR; r++) {
            __m512 a = _mm512_set1_ps(A[r * lda]);
            c[r][0] = _mm512_fmadd_ps(a, b0, c[r][0]);
            c[r][1] = _mm512_fmadd_ps(a, b1, c[r][1]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int h = 0; h < 2; h++) _mm512_storeu_ps(C + r * ldc + 16 * h, c[r][h]);
}

/* The last 16 columns when N is an odd multiple of NR: C[6 x 16]. */
FD_AVX512 static void mk_avx512_6x16(int64_t K, const float *A, int64_t lda, int64_t aks, const float *B,
                                     int64_t ldb, float *C, int64_t ldc, int acc)
{
    __m512 c[MR];
    for (int r = 0; r < MR; r++) c[r] = acc ? _mm512_loadu_ps(C + r * ldc) : _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++, A += aks) {
        __m512 b0 = _mm512_loadu_ps(B + k * ldb);
        for (int r = 0; r < MR; r++) c[r] = _mm512_fmadd_ps(_mm512_set1_ps(A[r * lda]), b0, c[r]);
    }
    for (int r = 0; r < MR; r++) _mm512_storeu_ps(C + r * ldc, c[r]);
}

FD_AVX512 static void tile_gemm_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int64_t aks,
                                       const float *B, int64_t ldb, float *C, int64_t ldc, int acc)
{
    for (int64_t i = 0; i < M; i += MR) {
        int64_t j = 0;
        for (; j + 2 * NR <= N; j += 2 * NR)
            mk_avx512_6x32(K, A + i * lda, lda, aks, B + j, ldb, C + i * ldc + j, ldc, acc);
        if (j < N) mk_avx512_6x16(K, A + i * lda, lda, aks, B + j, ldb, C + i * ldc + j, ldc, acc);
    }
}

static void gemm_strided(const att *a, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int64_t aks,
                         const float *B, int64_t ldb, float *C, int64_t ldc, int acc)
{
    if (a->avx512) tile_gemm_avx512(M, N, K, A, lda, aks, B, ldb, C, ldc, acc);
    else fd_att_tile_gemm(a->simd ? fd_att_mk_avx2 : fd_att_mk_c, M, N, K, A, lda, aks, B, ldb, C, ldc, acc);
}

void fd_att_gemm(const att *a, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float *C, int64_t ldc, int acc)
{
    gemm_strided(a, M, N, K, A, lda, 1, B, ldb, C, ldc, acc);
}

void fd_att_gemm_at(const att *a, int64_t M, int64_t N, int64_t K, const float *At, int64_t lda, const float *B,
                    int64_t ldb, float *C, int64_t ldc, int acc)
{
    gemm_strided(a, M, N, K, At, 1, lda, B, ldb, C, ldc, acc);
}

/* s[j] = exp(s[j] - sub) for n (a multiple of 8) values; returns their sum. */
float fd_att_exp_row_c(float *s, int64_t n, float sub)
{
    float t = 0;
    for (int64_t j = 0; j < n; j++) t += (s[j] = expf(s[j] - sub));
    return t;
}

FD_AVX2 float fd_att_exp_row_avx2(float *s, int64_t n, float sub)
{
    __m256 vs = _mm256_set1_ps(sub), t = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; j += 8) {
        __m256 e = nn_exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs));
        _mm256_storeu_ps(s + j, e);
        t = _mm256_add_ps(t, e);
    }
    return nn_hsum256(t);
}

/* The online softmax step of a flash forward on 16 lanes (fd_attention.c has its
 * AVX2 and C forms): over the first nrp rows and ncp columns of the score tile S
 * (row stride BC), rows < nr real, S becomes P = exp(S - m_new), l and m are
 * updated and the O rows (stride a->dp) rescaled by exp(m_old - m_new); padded
 * rows are zeroed. ncp and dp are multiples of 16. */
FD_AVX512 void fd_att_online_update_avx512(const att *a, float *S, int64_t nr, int64_t nrp, int64_t ncp, float *m,
                                          float *l, float *O)
{
    for (int64_t r = 0; r < nrp; r++) {
        float *s = S + r * BC;
        if (r >= nr) {
            memset(s, 0, sizeof(float) * ncp);
            continue;
        }
        __m512 vm = _mm512_loadu_ps(s);
        for (int64_t j = 16; j < ncp; j += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(s + j));
        float mx = _mm512_reduce_max_ps(vm), mnew = mx > m[r] ? mx : m[r];
        if (mnew == -INFINITY) {
            memset(s, 0, sizeof(float) * ncp);
            continue;
        }
        __m512 vs = _mm512_set1_ps(mnew), sum = _mm512_setzero_ps();
        for (int64_t j = 0; j < ncp; j += 16) {
            __m512 e = nn_exp512_nonpos(_mm512_sub_ps(_mm512_loadu_ps(s + j), vs));
            _mm512_storeu_ps(s + j, e);
            sum = _mm512_add_ps(sum, e);
        }
        float alpha = expf(m[r] - mnew);
        l[r] = l[r] * alpha + _mm512_reduce_add_ps(sum);
        m[r] = mnew;
        if (alpha != 1.0f) {
            __m512 va = _mm512_set1_ps(alpha);
            float *o = O + r * a->dp;
            for (int64_t t = 0; t < a->dp; t += 16) _mm512_storeu_ps(o + t, _mm512_mul_ps(_mm512_loadu_ps(o + t), va));
        }
    }
}

/* out[r][t] = mul * src[b, i0 + r, h*d + t] for r < n, zero padded to BR x dp. */
void fd_att_pack_rows(const att *a, const att_rows *src, int64_t b, int64_t h, int64_t i0, int64_t n, float mul,
                      float *out)
{
    memset(out, 0, sizeof(float) * BR * a->dp);
    for (int64_t r = 0; r < n; r++) {
        const float *p = att_row(src, b, i0 + r) + h * a->d;
        for (int64_t t = 0; t < a->d; t++) out[r * a->dp + t] = mul * p[t];
    }
}

/* A 16 x 16 block in registers: r[i] row i in, r[c] column c out. */
FD_AVX512 static inline void transpose16(__m512 r[16])
{
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]), t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    /* u[4q + e], lane L: element 4L + e of rows 4q .. 4q+3 */
    for (int q = 0; q < 4; q++) {
        __m512d a = _mm512_castps_pd(t[4 * q]), b = _mm512_castps_pd(t[4 * q + 1]);
        __m512d c = _mm512_castps_pd(t[4 * q + 2]), d = _mm512_castps_pd(t[4 * q + 3]);
        u[4 * q] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c)), u[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d)), u[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int e = 0; e < 4; e++) {
        /* lanes of rows 0-7 and of rows 8-15: elements e, 8 + e (0x88) and 4 + e, 12 + e (0xdd) */
        __m512 lo0 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0x88), lo1 = _mm512_shuffle_f32x4(u[e], u[4 + e], 0xdd);
        __m512 hi0 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0x88), hi1 = _mm512_shuffle_f32x4(u[8 + e], u[12 + e], 0xdd);
        r[e] = _mm512_shuffle_f32x4(lo0, hi0, 0x88), r[8 + e] = _mm512_shuffle_f32x4(lo0, hi0, 0xdd);
        r[4 + e] = _mm512_shuffle_f32x4(lo1, hi1, 0x88), r[12 + e] = _mm512_shuffle_f32x4(lo1, hi1, 0xdd);
    }
}

/* Kt[t][j] = key j's element t for the keys j < n in whole groups of 16 and t < d
 * in whole groups of 16 (scalar copies would do one element per store);
 * returns how many keys it wrote, the rest left to the caller. */
FD_AVX512 static int64_t transpose_keys_avx512(const att *a, const att_rows *main, const att_rows *extra, int64_t b,
                                               int64_t h, int64_t j0, int64_t n, float *Kt)
{
    if (a->d % 16) return 0;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
        const float *row[16];
        for (int i = 0; i < 16; i++) row[i] = tok(a, main, extra, b, j0 + j + i, h);
        for (int64_t t = 0; t < a->d; t += 16) {
            __m512 r[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(row[i] + t);
            transpose16(r);
            for (int c = 0; c < 16; c++) _mm512_storeu_ps(Kt + (t + c) * BC + j, r[c]);
        }
    }
    return j;
}

/* Keys (or values) j0 .. j0+n-1 as Kt[dp][BC] (transposed) and/or Kp[BC][dp]. */
static void pack_keys(const att *a, const att_rows *main, const att_rows *extra, int64_t b, int64_t h, int64_t j0, int64_t n,
                      float *Kt, float *Kp)
{
    /* a whole block of unpadded keys overwrites every element: no zeroing */
    const bool padded = n < BC || a->d < a->dp;
    if (Kt && padded) memset(Kt, 0, sizeof(float) * BC * a->dp);
    if (Kp && padded) memset(Kp, 0, sizeof(float) * BC * a->dp);
    int64_t done = 0; /* keys whose Kt columns are written */
    if (Kt && a->avx512) done = transpose_keys_avx512(a, main, extra, b, h, j0, n, Kt);
    for (int64_t j = 0; j < n; j++) {
        const float *p = tok(a, main, extra, b, j0 + j, h);
        if (Kp) memcpy(Kp + j * a->dp, p, sizeof(float) * (size_t)a->d);
        if (Kt && j >= done)
            for (int64_t t = 0; t < a->d; t++) Kt[t * BC + j] = p[t];
    }
}

/* Adds the mask to the score tile and sends padded keys nc..ncp-1 to -inf. */
void fd_att_mask_scores(const att *a, float *S, int64_t b, int64_t h, int64_t i0, int64_t nr, int64_t j0, int64_t nc,
                        int64_t ncp)
{
    for (int64_t r = 0; r < nr; r++) {
        float *s = S + r * BC;
        if (a->mask) {
            const float *m = a->mask + b * a->ms[0] + h * a->ms[1] + (i0 + r) * a->ms[2] + j0 * a->ms[3];
            for (int64_t j = 0; j < nc; j++) s[j] += m[j * a->ms[3]];
        }
        for (int64_t j = nc; j < ncp; j++) s[j] = -INFINITY;
    }
}

/* Fills the packs that are not NULL (threads over (b, h, block)). */
void fd_att_pack_all(const att *a, packs *p, const float *dO)
{
    const int64_t BH = a->B * a->H;
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < BH * p->nkb; it++) {
        int64_t bh = it / p->nkb, kb = it % p->nkb, j0 = kb * BC, nc = a->Nkt - j0 < BC ? a->Nkt - j0 : BC;
        size_t at = key_pack_at(a, p, bh, kb);
        if (p->kt || p->kp) pack_keys(a, &a->k, &a->ek, bh / a->H, bh % a->H, j0, nc, p->kt ? p->kt + at : NULL,
                                      p->kp ? p->kp + at : NULL);
        if (p->vt || p->vp) pack_keys(a, &a->v, &a->ev, bh / a->H, bh % a->H, j0, nc, p->vt ? p->vt + at : NULL,
                                      p->vp ? p->vp + at : NULL);
    }
    if (!p->qp) return;
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < BH * p->nqt; it++) {
        int64_t bh = it / p->nqt, i0 = (it % p->nqt) * BR, nr = a->Nq - i0 < BR ? a->Nq - i0 : BR;
        size_t at = query_pack_at(a, p, bh, it % p->nqt);
        const att_rows g = {dO, a->Nq * a->C, a->C};
        fd_att_pack_rows(a, &a->q, bh / a->H, bh % a->H, i0, nr, a->scale, p->qp + at);
        fd_att_pack_rows(a, &g, bh / a->H, bh % a->H, i0, nr, 1.0f, p->gp + at);
    }
}

void *fd_att_scratch(fd_tensor *t, size_t n)
{
    int64_t shape[1] = {(int64_t)(n ? n : 1)};
    return fd_tensor_empty(t, FD_F32, 1, shape) ? NULL : fd_tensor_data(t);
}

void fd_att_release_staged(staged *s)
{
    fd_nn_release(&s->q, &s->k, &s->v, &s->ek, &s->ev, &s->mask);
}

/* t [B, N, C] as rows: in place when it is f32 with unit stride along C, else a
 * contiguous f32 copy in *tmp. */
static int stage_rows(att_rows *r, fd_tensor *tmp, const fd_tensor *t)
{
    if (t->dtype == FD_F32 && t->block == 0 && (t->stride[2] == 1 || t->shape[2] == 1)) {
        *r = (att_rows){fd_tensor_data(t), t->shape[0] == 1 ? 0 : t->stride[0], t->stride[1]};
        return FD_OK;
    }
    const float *p = fd_nn_stage_f32(tmp, t);
    if (!p) return FD_ERR;
    *r = (att_rows){p, t->shape[0] == 1 ? 0 : t->shape[1] * t->shape[2], t->shape[2]};
    return FD_OK;
}

/* Checks the arguments, fills `a` and stages the inputs as f32 rows (att_rows). */
int fd_att_setup(const char *op, att *a, staged *st, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                 const fd_attention_args *args)
{
    memset(a, 0, sizeof *a);
    memset(st, 0, sizeof *st);
    nn_att_dims dm;
    if (fd_nn_attention_check(op, q, k, v, args, &dm)) return FD_ERR;
    a->B = dm.B, a->Nq = dm.Nq, a->Nk = dm.Nk, a->Ne = dm.Ne, a->Nkt = dm.Nkt, a->C = dm.C, a->H = dm.H, a->d = dm.d;
    a->Be = dm.Be, a->dp = (a->d + NR - 1) / NR * NR, a->scale = (float)dm.scale;
    a->simd = fd_nn_simd_enabled();
    a->avx512 = fd_nn_avx512_enabled();
    a->amx = args->bf16 && fd_nn_amx_enabled();
    if (stage_rows(&a->q, &st->q, q) || stage_rows(&a->k, &st->k, k) || stage_rows(&a->v, &st->v, v) ||
        (args->extra_k && (stage_rows(&a->ek, &st->ek, args->extra_k) || stage_rows(&a->ev, &st->ev, args->extra_v))))
        goto fail;
    if (args->mask) {
        const fd_tensor *mk = args->mask;
        int64_t full[4] = {a->B, a->H, a->Nq, a->Nkt};
        if (mk->dtype == FD_BOOL || mk->dtype == FD_U8) {
            /* true = attend: 0, false = -inf */
            if (fd_tensor_to_dtype(&st->mask, mk, FD_F32)) goto fail;
            float *p = fd_tensor_data(&st->mask);
            for (int64_t i = 0, n = fd_tensor_numel(&st->mask); i < n; i++) p[i] = p[i] != 0 ? 0.0f : -INFINITY;
        } else if (!fd_nn_stage_f32(&st->mask, mk)) {
            goto fail;
        }
        a->mask = fd_tensor_data(&st->mask);
        fd_broadcast_strides(&st->mask, 4, full, a->ms);
    }
    return FD_OK;
fail:
    fd_att_release_staged(st);
    return FD_ERR;
}
