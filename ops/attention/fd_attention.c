/* Multi-head scaled dot-product attention, flash style on the CPU.
 *
 * Forward: threads take (batch, head, query tile) items. A tile of BR queries
 * walks the keys in blocks of BC with an online softmax (running max m and
 * sum l per row), so only a BR x BC score tile ever exists; the output keeps
 * O / l and the row logsumexp m + log l for the backward.
 * Backward recomputes the probabilities tile by tile from the logsumexp, in
 * two race-free passes: threads own key blocks for dK, dV, then query tiles
 * for dQ (one extra score recompute instead of atomics or per-thread dQ).
 *
 * Every tile product is C[6 x 16] += A[6 x K] B[K x 16] (a register-blocked
 * AVX2 micro-kernel, plain C when AVX2 is off) on packed, zero-padded tiles:
 * BR = 48 rows, BC = 96 keys, head dim padded to a multiple of 16. No BLAS in
 * the OpenMP regions. Extra (reference) tokens are simply keys Nk..Nk+Ne-1. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/attention/fd_attention_check.h"
#include "ops/common/fd_nn_common.h"

/* Query-tile rows: 48 keeps small Nq parallel; -DFD_ATT_BR=96 halves key re-reads for large Nq. */
#ifndef FD_ATT_BR
#define BR 48
#else
#define BR FD_ATT_BR
#endif
#define BC 96
#define MR 6
#define NR 16
_Static_assert(BC % (3 * NR) == 0 && (3 * NR) % MR == 0, "key tiles cut to 3 * NR must stay whole micro-tiles");

typedef struct att {
    int64_t B, Nq, Nk, Ne, Nkt, C, H, d, dp, Be;
    float scale;
    const float *q, *k, *v, *ek, *ev, *mask;
    int64_t ms[4]; /* mask strides over [B, H, Nq, Nkt] (0 = broadcast) */
    bool simd;
} att;

typedef void (*microkernel)(int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                            int64_t ldc, int acc);

static void mk_c(int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc, int acc)
{
    float c[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) c[r][j] = acc ? C[r * ldc + j] : 0.0f;
    for (int64_t k = 0; k < K; k++)
        for (int r = 0; r < MR; r++) {
            float a = A[r * lda + k];
            for (int j = 0; j < NR; j++) c[r][j] += a * B[k * ldb + j];
        }
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) C[r * ldc + j] = c[r][j];
}

FD_AVX2 static void mk_avx2(int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                            int64_t ldc, int acc)
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
    for (int64_t k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(B + k * ldb), b1 = _mm256_loadu_ps(B + k * ldb + 8), a;
        a = _mm256_broadcast_ss(a0 + k), c00 = _mm256_fmadd_ps(a, b0, c00), c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(a1 + k), c10 = _mm256_fmadd_ps(a, b0, c10), c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(a2 + k), c20 = _mm256_fmadd_ps(a, b0, c20), c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(a3 + k), c30 = _mm256_fmadd_ps(a, b0, c30), c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(a4 + k), c40 = _mm256_fmadd_ps(a, b0, c40), c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(a5 + k), c50 = _mm256_fmadd_ps(a, b0, c50), c51 = _mm256_fmadd_ps(a, b1, c51);
    }
    _mm256_storeu_ps(C, c00), _mm256_storeu_ps(C + 8, c01);
    _mm256_storeu_ps(C + ldc, c10), _mm256_storeu_ps(C + ldc + 8, c11);
    _mm256_storeu_ps(C + 2 * ldc, c20), _mm256_storeu_ps(C + 2 * ldc + 8, c21);
    _mm256_storeu_ps(C + 3 * ldc, c30), _mm256_storeu_ps(C + 3 * ldc + 8, c31);
    _mm256_storeu_ps(C + 4 * ldc, c40), _mm256_storeu_ps(C + 4 * ldc + 8, c41);
    _mm256_storeu_ps(C + 5 * ldc, c50), _mm256_storeu_ps(C + 5 * ldc + 8, c51);
}

static int64_t round_up(int64_t n, int64_t m)
{
    return (n + m - 1) / m * m;
}

/* C[M x N] (+)= A[M x K] B[K x N]; M a multiple of MR, N of NR. */
static void tile_gemm(microkernel mk, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                      int64_t ldb, float *C, int64_t ldc, int acc)
{
    for (int64_t i = 0; i < M; i += MR)
        for (int64_t j = 0; j < N; j += NR) mk(K, A + i * lda, lda, B + j, ldb, C + i * ldc + j, ldc, acc);
}

/* s[j] = exp(s[j] - sub) for n (a multiple of 8) values; returns their sum. */
static float exp_row_c(float *s, int64_t n, float sub)
{
    float t = 0;
    for (int64_t j = 0; j < n; j++) t += (s[j] = expf(s[j] - sub));
    return t;
}

FD_AVX2 static float exp_row_avx2(float *s, int64_t n, float sub)
{
    __m256 vs = _mm256_set1_ps(sub), t = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; j += 8) {
        __m256 e = nn_exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs));
        _mm256_storeu_ps(s + j, e);
        t = _mm256_add_ps(t, e);
    }
    return nn_hsum256(t);
}

static float row_max(const float *s, int64_t n)
{
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = s[j] > m ? s[j] : m;
    return m;
}

/* The C-vector of key j of batch b (a key or an extra token), at head h. */
static const float *tok(const att *a, const float *main, const float *extra, int64_t b, int64_t j, int64_t h)
{
    if (j < a->Nk) return main + (b * a->Nk + j) * a->C + h * a->d;
    int64_t be = a->Be == 1 ? 0 : b;
    return extra + (be * a->Ne + (j - a->Nk)) * a->C + h * a->d;
}

/* out[r][t] = mul * src[b, i0 + r, h*d + t] for r < n, zero padded to BR x dp. */
static void pack_rows(const att *a, const float *src, int64_t N, int64_t b, int64_t h, int64_t i0, int64_t n,
                      float mul, float *out)
{
    memset(out, 0, sizeof(float) * BR * a->dp);
    for (int64_t r = 0; r < n; r++) {
        const float *p = src + (b * N + i0 + r) * a->C + h * a->d;
        for (int64_t t = 0; t < a->d; t++) out[r * a->dp + t] = mul * p[t];
    }
}

/* Keys (or values) j0 .. j0+n-1 as Kt[dp][BC] (transposed) and/or Kp[BC][dp]. */
static void pack_keys(const att *a, const float *main, const float *extra, int64_t b, int64_t h, int64_t j0, int64_t n,
                      float *Kt, float *Kp)
{
    if (Kt) memset(Kt, 0, sizeof(float) * BC * a->dp);
    if (Kp) memset(Kp, 0, sizeof(float) * BC * a->dp);
    for (int64_t j = 0; j < n; j++) {
        const float *p = tok(a, main, extra, b, j0 + j, h);
        for (int64_t t = 0; t < a->d; t++) {
            if (Kt) Kt[t * BC + j] = p[t];
            if (Kp) Kp[j * a->dp + t] = p[t];
        }
    }
}

/* Adds the mask to the score tile and sends padded keys nc..ncp-1 to -inf. */
static void mask_scores(const att *a, float *S, int64_t b, int64_t h, int64_t i0, int64_t nr, int64_t j0, int64_t nc,
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

/* ---- forward ------------------------------------------------------------ */

/* Online softmax over the first nrp rows and ncp columns of a score tile,
 * rows < nr real: S becomes P = exp(S - m_new), l and m are updated and the O
 * rows rescaled by exp(m_old - m_new); padded rows are zeroed so the P V
 * product can run on all nrp rows. */
static void online_update_c(const att *a, float *S, int64_t nr, int64_t nrp, int64_t ncp, float *m, float *l, float *O)
{
    for (int64_t r = 0; r < nrp; r++) {
        float *s = S + r * BC, mx = r < nr ? row_max(s, ncp) : -INFINITY, mnew = mx > m[r] ? mx : m[r];
        if (r >= nr || mnew == -INFINITY) { /* padding, or nothing to attend yet */
            memset(s, 0, sizeof(float) * ncp);
            continue;
        }
        float alpha = expf(m[r] - mnew);
        l[r] = l[r] * alpha + exp_row_c(s, ncp, mnew);
        m[r] = mnew;
        if (alpha != 1.0f)
            for (int64_t t = 0; t < a->dp; t++) O[r * a->dp + t] *= alpha;
    }
}

FD_AVX2 static void online_update_avx2(const att *a, float *S, int64_t nr, int64_t nrp, int64_t ncp, float *m,
                                       float *l, float *O)
{
    for (int64_t r = 0; r < nrp; r++) {
        float *s = S + r * BC;
        if (r >= nr) {
            memset(s, 0, sizeof(float) * ncp);
            continue;
        }
        __m256 vm = _mm256_loadu_ps(s);
        for (int64_t j = 8; j < ncp; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(s + j));
        float mx = nn_hmax256(vm), mnew = mx > m[r] ? mx : m[r];
        if (mnew == -INFINITY) {
            memset(s, 0, sizeof(float) * ncp);
            continue;
        }
        float alpha = expf(m[r] - mnew);
        l[r] = l[r] * alpha + exp_row_avx2(s, ncp, mnew);
        m[r] = mnew;
        if (alpha != 1.0f) {
            __m256 va = _mm256_set1_ps(alpha);
            float *o = O + r * a->dp;
            for (int64_t t = 0; t < a->dp; t += 8) _mm256_storeu_ps(o + t, _mm256_mul_ps(_mm256_loadu_ps(o + t), va));
        }
    }
}

/* Keys and values packed once per call: for (b, h) and key block kb,
 * Kt[dp][BC], Kp[BC][dp] (keys), Vt[dp][BC], Vp[BC][dp] (values); and per
 * query tile the scaled queries Qp[BR][dp] and the output grads Gp[BR][dp]. */
typedef struct packs {
    float *kt, *kp, *vt, *vp, *qp, *gp;
    int64_t nkb, nqt;
} packs;

static size_t key_pack_at(const att *a, const packs *p, int64_t bh, int64_t kb)
{
    return (size_t)((bh * p->nkb + kb) * BC * a->dp);
}

static size_t query_pack_at(const att *a, const packs *p, int64_t bh, int64_t qt)
{
    return (size_t)((bh * p->nqt + qt) * BR * a->dp);
}

/* Fills the packs that are not NULL (threads over (b, h, block)). */
static void pack_all(const att *a, packs *p, const float *dO)
{
    const int64_t BH = a->B * a->H;
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < BH * p->nkb; it++) {
        int64_t bh = it / p->nkb, kb = it % p->nkb, j0 = kb * BC, nc = a->Nkt - j0 < BC ? a->Nkt - j0 : BC;
        size_t at = key_pack_at(a, p, bh, kb);
        if (p->kt || p->kp) pack_keys(a, a->k, a->ek, bh / a->H, bh % a->H, j0, nc, p->kt ? p->kt + at : NULL,
                                      p->kp ? p->kp + at : NULL);
        if (p->vt || p->vp) pack_keys(a, a->v, a->ev, bh / a->H, bh % a->H, j0, nc, p->vt ? p->vt + at : NULL,
                                      p->vp ? p->vp + at : NULL);
    }
    if (!p->qp) return;
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < BH * p->nqt; it++) {
        int64_t bh = it / p->nqt, i0 = (it % p->nqt) * BR, nr = a->Nq - i0 < BR ? a->Nq - i0 : BR;
        size_t at = query_pack_at(a, p, bh, it % p->nqt);
        pack_rows(a, a->q, a->Nq, bh / a->H, bh % a->H, i0, nr, a->scale, p->qp + at);
        pack_rows(a, dO, a->Nq, bh / a->H, bh % a->H, i0, nr, 1.0f, p->gp + at);
    }
}

static void forward_tile(const att *a, const packs *p, int64_t b, int64_t h, int64_t i0, float *ws, float *o,
                         float *lse)
{
    const int64_t dp = a->dp, nr = a->Nq - i0 < BR ? a->Nq - i0 : BR, nrp = round_up(nr, MR), bh = b * a->H + h;
    float *Q = ws, *S = Q + BR * dp, *O = S + BR * BC, *m = O + BR * dp, *l = m + BR;
    microkernel mk = a->simd ? mk_avx2 : mk_c;
    pack_rows(a, a->q, a->Nq, b, h, i0, nr, a->scale, Q);
    memset(O, 0, sizeof(float) * BR * dp);
    for (int64_t r = 0; r < BR; r++) m[r] = -INFINITY, l[r] = 0;
    for (int64_t kb = 0; kb < p->nkb; kb++) {
        /* the last tiles are cut to whole micro-tiles: no work on padding beyond them */
        int64_t j0 = kb * BC, nc = a->Nkt - j0 < BC ? a->Nkt - j0 : BC, ncp = round_up(nc, NR);
        size_t at = key_pack_at(a, p, bh, kb);
        tile_gemm(mk, nrp, ncp, dp, Q, dp, p->kt + at, BC, S, BC, 0);
        mask_scores(a, S, b, h, i0, nr, j0, nc, ncp);
        (a->simd ? online_update_avx2 : online_update_c)(a, S, nr, nrp, ncp, m, l, O);
        tile_gemm(mk, nrp, dp, ncp, S, BC, p->vp + at, dp, O, dp, 1);
    }
    for (int64_t r = 0; r < nr; r++) {
        float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        float *dst = o + (b * a->Nq + i0 + r) * a->C + h * a->d;
        for (int64_t t = 0; t < a->d; t++) dst[t] = O[r * dp + t] * inv;
        lse[bh * a->Nq + i0 + r] = l[r] > 0 ? m[r] + logf(l[r]) : -INFINITY;
    }
}

/* Few keys (temporal attention over the F frames of a clip: Nk + Ne <= SMALL):
 * the BR x BC tiles would be mostly padding, so one query row at a time with
 * plain loops over the keys is an order of magnitude faster. Same math and
 * the same logsumexp as forward_tile (backward_small is its backward). */
#define SMALL 32

static void forward_small(const att *a, int64_t b, int64_t h, float *o, float *lse)
{
    float s[SMALL];
    const int64_t d = a->d;
    for (int64_t i = 0; i < a->Nq; i++) {
        const float *qi = a->q + (b * a->Nq + i) * a->C + h * d;
        float mx = -INFINITY;
        for (int64_t j = 0; j < a->Nkt; j++) {
            const float *kj = tok(a, a->k, a->ek, b, j, h);
            float acc = 0;
#pragma omp simd reduction(+ : acc)
            for (int64_t t = 0; t < d; t++) acc += qi[t] * kj[t];
            acc *= a->scale;
            if (a->mask) acc += a->mask[b * a->ms[0] + h * a->ms[1] + i * a->ms[2] + j * a->ms[3]];
            s[j] = acc;
            mx = acc > mx ? acc : mx;
        }
        float *dst = o + (b * a->Nq + i) * a->C + h * d;
        for (int64_t t = 0; t < d; t++) dst[t] = 0;
        float *l = lse + (b * a->H + h) * a->Nq + i;
        if (mx == -INFINITY) { /* every key masked */
            *l = -INFINITY;
            continue;
        }
        float sum = 0;
        for (int64_t j = 0; j < a->Nkt; j++) sum += (s[j] = expf(s[j] - mx));
        float inv = 1.0f / sum;
        for (int64_t j = 0; j < a->Nkt; j++) {
            const float *vj = tok(a, a->v, a->ev, b, j, h), w = s[j] * inv;
#pragma omp simd
            for (int64_t t = 0; t < d; t++) dst[t] += w * vj[t];
        }
        *l = mx + logf(sum);
    }
}

/* ---- setup shared by forward and backward -------------------------------- */

typedef struct staged {
    fd_tensor q, k, v, ek, ev, mask;
} staged;

static void release_staged(staged *s)
{
    fd_nn_release(&s->q, &s->k, &s->v, &s->ek, &s->ev, &s->mask);
}

/* Checks the arguments, fills `a` and stages the inputs as contiguous f32. */
static int setup(const char *op, att *a, staged *st, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                 const fd_attention_args *args)
{
    memset(a, 0, sizeof *a);
    memset(st, 0, sizeof *st);
    nn_att_dims dm;
    if (fd_nn_attention_check(op, q, k, v, args, &dm)) return FD_ERR;
    a->B = dm.B, a->Nq = dm.Nq, a->Nk = dm.Nk, a->Ne = dm.Ne, a->Nkt = dm.Nkt, a->C = dm.C, a->H = dm.H, a->d = dm.d;
    a->Be = dm.Be, a->dp = (a->d + NR - 1) / NR * NR, a->scale = (float)dm.scale;
    a->simd = fd_nn_simd_enabled();
    if (!(a->q = fd_nn_stage_f32(&st->q, q)) || !(a->k = fd_nn_stage_f32(&st->k, k)) || !(a->v = fd_nn_stage_f32(&st->v, v)) ||
        (args->extra_k &&
         (!(a->ek = fd_nn_stage_f32(&st->ek, args->extra_k)) || !(a->ev = fd_nn_stage_f32(&st->ev, args->extra_v)))))
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
    release_staged(st);
    return FD_ERR;
}

int fd_attention(fd_tensor *o, fd_tensor *lse, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                 const fd_attention_args *args)
{
    if (q->dtype == FD_F64) return fd_ref_attention(o, lse, q, k, v, args);
    att a;
    staged st;
    if (setup("attention", &a, &st, q, k, v, args)) return FD_ERR;
    int64_t shl[3] = {a.B, a.H, a.Nq};
    if (a.Nkt <= SMALL) { /* few keys: no tiles, no packing */
        if (fd_tensor_empty_as(o, q, FD_F32) || fd_tensor_empty(lse, FD_F32, 3, shl)) {
            release_staged(&st);
            fd_nn_release(o, lse, NULL, NULL, NULL, NULL);
            return FD_ERR;
        }
        float *so = fd_tensor_data(o), *sl = fd_tensor_data(lse);
        const int64_t items = a.B * a.H;
#pragma omp parallel for schedule(static)
        for (int64_t it = 0; it < items; it++) forward_small(&a, it / a.H, it % a.H, so, sl);
        release_staged(&st);
        return FD_OK;
    }
    int nthr = omp_get_max_threads();
    packs p = {0};
    p.nkb = (a.Nkt + BC - 1) / BC;
    size_t per = (size_t)(BR * a.dp * 2 + BR * BC + 2 * BR) + 16, kpack = (size_t)(a.B * a.H * p.nkb * BC * a.dp);
    float *ws = calloc(per * (size_t)nthr + 2 * kpack, sizeof(float)); /* zeroed: padded key rows of the packs are read */
    if (!ws || fd_tensor_empty_as(o, q, FD_F32) || fd_tensor_empty(lse, FD_F32, 3, shl)) {
        free(ws);
        release_staged(&st);
        fd_nn_release(o, lse, NULL, NULL, NULL, NULL);
        return ws ? FD_ERR : fd_fail("attention: out of memory");
    }
    p.kt = ws + per * (size_t)nthr, p.vp = p.kt + kpack;
    pack_all(&a, &p, NULL);
    float *po = fd_tensor_data(o), *pl = fd_tensor_data(lse);
    const int64_t tiles = (a.Nq + BR - 1) / BR, items = a.B * a.H * tiles;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; it++) {
        int64_t bh = it / tiles, b = bh / a.H, h = bh % a.H;
        forward_tile(&a, &p, b, h, (it % tiles) * BR, ws + per * (size_t)omp_get_thread_num(), po, pl);
    }
    free(ws);
    release_staged(&st);
    return FD_OK;
}

/* ---- backward ------------------------------------------------------------ */

/* P = exp(S - lse) (0 for padded rows/keys and empty rows); dS = P * (dP - D),
 * over the first nrp rows and ncp columns. On return S holds P and dP holds dS. */
static void probs_and_dscores(const att *a, float *S, float *dP, const float *lse, const float *Dr, int64_t nr,
                              int64_t nrp, int64_t ncp)
{
    float (*exprow)(float *, int64_t, float) = a->simd ? exp_row_avx2 : exp_row_c;
    for (int64_t r = 0; r < nrp; r++) {
        float *s = S + r * BC, *g = dP + r * BC;
        if (r >= nr || lse[r] == -INFINITY) {
            memset(s, 0, sizeof(float) * ncp);
            memset(g, 0, sizeof(float) * ncp);
            continue;
        }
        exprow(s, ncp, lse[r]);
        for (int64_t j = 0; j < ncp; j++) g[j] = s[j] * (g[j] - Dr[r]);
    }
}

/* [nrp][ncp] of a [BR][BC] tile -> [ncp][nrp] of a [BC][BR] one */
static void transpose_tile(const float *src, float *dst, int64_t nrp, int64_t ncp)
{
    for (int64_t r = 0; r < nrp; r++)
        for (int64_t j = 0; j < ncp; j++) dst[j * BR + r] = src[r * BC + j];
}

/* dK, dV for the key block kb of (b, h), into dkf/dvf [B, Nkt, C]. */
static void backward_kv(const att *a, const packs *p, int64_t b, int64_t h, int64_t kb, const float *lse,
                        const float *Dv, float *ws, float *dkf, float *dvf)
{
    /* keys are the rows of the dK, dV products here: a multiple of MR and NR (BC is one) */
    const int64_t dp = a->dp, j0 = kb * BC, nc = a->Nkt - j0 < BC ? a->Nkt - j0 : BC, ncp = round_up(nc, 3 * NR);
    const int64_t bh = b * a->H + h;
    float *S = ws, *dP = S + BR * BC, *T = dP + BR * BC, *dK = T + BR * BC, *dV = dK + BC * dp;
    microkernel mk = a->simd ? mk_avx2 : mk_c;
    const float *Kt = p->kt + key_pack_at(a, p, bh, kb), *Vt = p->vt + key_pack_at(a, p, bh, kb);
    memset(dK, 0, sizeof(float) * BC * dp);
    memset(dV, 0, sizeof(float) * BC * dp);
    for (int64_t qt = 0; qt < p->nqt; qt++) {
        int64_t i0 = qt * BR, nr = a->Nq - i0 < BR ? a->Nq - i0 : BR, nrp = round_up(nr, MR);
        const float *Q = p->qp + query_pack_at(a, p, bh, qt), *G = p->gp + query_pack_at(a, p, bh, qt);
        tile_gemm(mk, nrp, ncp, dp, Q, dp, Kt, BC, S, BC, 0);
        mask_scores(a, S, b, h, i0, nr, j0, nc, ncp);
        tile_gemm(mk, nrp, ncp, dp, G, dp, Vt, BC, dP, BC, 0);
        const int64_t row = bh * a->Nq + i0;
        probs_and_dscores(a, S, dP, lse + row, Dv + row, nr, nrp, ncp);
        transpose_tile(S, T, nrp, ncp);
        tile_gemm(mk, ncp, dp, nrp, T, BR, G, dp, dV, dp, 1);
        transpose_tile(dP, T, nrp, ncp);
        tile_gemm(mk, ncp, dp, nrp, T, BR, Q, dp, dK, dp, 1);
    }
    for (int64_t j = 0; j < nc; j++)
        for (int64_t t = 0; t < a->d; t++) {
            int64_t at = (b * a->Nkt + j0 + j) * a->C + h * a->d + t;
            dkf[at] = dK[j * dp + t];
            dvf[at] = dV[j * dp + t];
        }
}

/* dQ for the query tile qt of (b, h). */
static void backward_q(const att *a, const packs *p, int64_t b, int64_t h, int64_t qt, const float *lse,
                       const float *Dv, float *ws, float *dq)
{
    const int64_t dp = a->dp, i0 = qt * BR, nr = a->Nq - i0 < BR ? a->Nq - i0 : BR, nrp = round_up(nr, MR);
    const int64_t bh = b * a->H + h;
    float *S = ws, *dP = S + BR * BC, *dQ = dP + BR * BC;
    microkernel mk = a->simd ? mk_avx2 : mk_c;
    const int64_t row = bh * a->Nq + i0;
    const float *Q = p->qp + query_pack_at(a, p, bh, qt), *G = p->gp + query_pack_at(a, p, bh, qt);
    memset(dQ, 0, sizeof(float) * BR * dp);
    for (int64_t kb = 0; kb < p->nkb; kb++) {
        int64_t j0 = kb * BC, nc = a->Nkt - j0 < BC ? a->Nkt - j0 : BC, ncp = round_up(nc, NR);
        size_t at = key_pack_at(a, p, bh, kb);
        tile_gemm(mk, nrp, ncp, dp, Q, dp, p->kt + at, BC, S, BC, 0);
        mask_scores(a, S, b, h, i0, nr, j0, nc, ncp);
        tile_gemm(mk, nrp, ncp, dp, G, dp, p->vt + at, BC, dP, BC, 0);
        probs_and_dscores(a, S, dP, lse + row, Dv + row, nr, nrp, ncp);
        tile_gemm(mk, nrp, dp, ncp, dP, BC, p->kp + at, dp, dQ, dp, 1);
    }
    for (int64_t r = 0; r < nr; r++)
        for (int64_t t = 0; t < a->d; t++)
            dq[(b * a->Nq + i0 + r) * a->C + h * a->d + t] = a->scale * dQ[r * dp + t];
}

/* The backward of forward_small: per (b, h), one query row at a time, the
 * probabilities again from the logsumexp; dK, dV accumulate into the
 * (b, h) slices of dkf, dvf, which no other item touches. */
static void backward_small(const att *a, int64_t b, int64_t h, const float *dO, const float *lse, const float *Dv,
                           float *dq, float *dkf, float *dvf)
{
    float p[SMALL], ds[SMALL];
    const int64_t d = a->d, bh = b * a->H + h;
    for (int64_t j = 0; j < a->Nkt; j++) {
        float *gk = dkf + (b * a->Nkt + j) * a->C + h * d, *gv = dvf + (b * a->Nkt + j) * a->C + h * d;
        for (int64_t t = 0; t < d; t++) gk[t] = 0, gv[t] = 0;
    }
    for (int64_t i = 0; i < a->Nq; i++) {
        const float *qi = a->q + (b * a->Nq + i) * a->C + h * d, *gi = dO + (b * a->Nq + i) * a->C + h * d;
        float *dqi = dq + (b * a->Nq + i) * a->C + h * d;
        for (int64_t t = 0; t < d; t++) dqi[t] = 0;
        const float l = lse[bh * a->Nq + i], D = Dv[bh * a->Nq + i];
        if (l == -INFINITY) continue; /* every key masked: no gradient */
        for (int64_t j = 0; j < a->Nkt; j++) {
            const float *kj = tok(a, a->k, a->ek, b, j, h), *vj = tok(a, a->v, a->ev, b, j, h);
            float s = 0, dp = 0;
#pragma omp simd reduction(+ : s, dp)
            for (int64_t t = 0; t < d; t++) s += qi[t] * kj[t], dp += gi[t] * vj[t];
            s *= a->scale;
            if (a->mask) s += a->mask[b * a->ms[0] + h * a->ms[1] + i * a->ms[2] + j * a->ms[3]];
            p[j] = s == -INFINITY ? 0.0f : expf(s - l);
            ds[j] = p[j] * (dp - D);
        }
        for (int64_t j = 0; j < a->Nkt; j++) {
            const float *kj = tok(a, a->k, a->ek, b, j, h);
            float *gk = dkf + (b * a->Nkt + j) * a->C + h * d, *gv = dvf + (b * a->Nkt + j) * a->C + h * d;
            const float wq = ds[j] * a->scale, pj = p[j];
#pragma omp simd
            for (int64_t t = 0; t < d; t++) {
                dqi[t] += wq * kj[t];
                gk[t] += wq * qi[t];
                gv[t] += pj * gi[t];
            }
        }
    }
}

int fd_attention_backward(fd_tensor *dq, fd_tensor *dk, fd_tensor *dv, fd_tensor *dek, fd_tensor *dev,
                          const fd_tensor *dout, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                          const fd_tensor *o, const fd_tensor *lse, const fd_attention_args *args)
{
    const char *op = "attention_backward";
    if (q->dtype == FD_F64) return fd_ref_attention_backward(dq, dk, dv, dek, dev, dout, q, k, v, o, lse, args);
    att a;
    staged st;
    if (setup(op, &a, &st, q, k, v, args)) return FD_ERR;
    int64_t shl[3] = {a.B, a.H, a.Nq}, shf[3] = {a.B, a.Nkt, a.C};
    fd_tensor gs = {0}, os = {0}, ls = {0}, dkf = {0}, dvf = {0};
    float *pg = NULL, *po = NULL, *pl = NULL;
    int rc = fd_nn_check_same_shape(op, "grad_out", dout, "q", q) || fd_nn_check_same_shape(op, "o", o, "q", q) ||
             fd_nn_check_float(op, "grad_out", dout) || fd_nn_check_float(op, "o", o) || fd_nn_check_float(op, "lse", lse);
    if (!rc && (lse->ndim != 3 || memcmp(lse->shape, shl, sizeof shl)))
        rc = fd_fail("%s: lse %s, expected [%lld, %lld, %lld]", op, FD_SHAPE_STR(lse), (long long)a.B, (long long)a.H,
                     (long long)a.Nq);
    if (!rc) rc = !(pg = fd_nn_stage_f32(&gs, dout)) || !(po = fd_nn_stage_f32(&os, o)) || !(pl = fd_nn_stage_f32(&ls, lse));
    int nthr = omp_get_max_threads();
    const bool small = a.Nkt <= SMALL; /* no tiles and no packs, as in the forward */
    packs p = {0};
    p.nkb = (a.Nkt + BC - 1) / BC, p.nqt = (a.Nq + BR - 1) / BR;
    size_t per = small ? 0 : (size_t)(BC * a.dp * 2 + BR * a.dp + BR * BC * 3) + 16;
    size_t kpack = small ? 0 : (size_t)(a.B * a.H * p.nkb * BC * a.dp);
    size_t qpack = small ? 0 : (size_t)(a.B * a.H * p.nqt * BR * a.dp);
    float *ws = rc ? NULL
                   : calloc(per * (size_t)nthr + (size_t)(a.B * a.H * a.Nq) + 3 * kpack + 2 * qpack, sizeof(float));
    if (rc || !ws || fd_tensor_empty(&dkf, FD_F32, 3, shf) || fd_tensor_empty(&dvf, FD_F32, 3, shf) ||
        fd_tensor_empty_as(dq, q, FD_F32) || fd_tensor_empty_as(dk, k, FD_F32) || fd_tensor_empty_as(dv, v, FD_F32) ||
        (a.Ne && (fd_tensor_zeros(dek, FD_F32, 3, args->extra_k->shape) ||
                  fd_tensor_zeros(dev, FD_F32, 3, args->extra_v->shape)))) {
        if (!rc && !ws) fd_fail("%s: out of memory", op);
        free(ws);
        release_staged(&st);
        fd_nn_release(&gs, &os, &ls, &dkf, &dvf, NULL);
        fd_nn_release(dq, dk, dv, dek, dev, NULL);
        return FD_ERR;
    }
    float *Dv = ws + per * (size_t)nthr;
    /* D[b, h, i] = sum_t dO * O over the head's channels */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < a.B * a.H * a.Nq; r++) {
        int64_t b = r / (a.H * a.Nq), h = (r / a.Nq) % a.H, i = r % a.Nq;
        const float *g = pg + (b * a.Nq + i) * a.C + h * a.d, *oo = po + (b * a.Nq + i) * a.C + h * a.d;
        float s = 0;
        for (int64_t t = 0; t < a.d; t++) s += g[t] * oo[t];
        Dv[r] = s;
    }
    float *pkf = fd_tensor_data(&dkf), *pvf = fd_tensor_data(&dvf), *pdq = fd_tensor_data(dq);
    if (small) {
#pragma omp parallel for schedule(static)
        for (int64_t it = 0; it < a.B * a.H; it++) backward_small(&a, it / a.H, it % a.H, pg, pl, Dv, pdq, pkf, pvf);
    } else {
        p.kt = Dv + a.B * a.H * a.Nq, p.kp = p.kt + kpack, p.vt = p.kp + kpack, p.qp = p.vt + kpack, p.gp = p.qp + qpack;
        pack_all(&a, &p, pg);
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t it = 0; it < a.B * a.H * p.nkb; it++) {
            int64_t bh = it / p.nkb;
            backward_kv(&a, &p, bh / a.H, bh % a.H, it % p.nkb, pl, Dv, ws + per * (size_t)omp_get_thread_num(), pkf,
                        pvf);
        }
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t it = 0; it < a.B * a.H * p.nqt; it++) {
            int64_t bh = it / p.nqt;
            backward_q(&a, &p, bh / a.H, bh % a.H, it % p.nqt, pl, Dv, ws + per * (size_t)omp_get_thread_num(), pdq);
        }
    }
    /* split the key gradients into keys and extra tokens (summing over batch for shared extras) */
    float *pdk = fd_tensor_data(dk), *pdv = fd_tensor_data(dv);
    for (int64_t b = 0; b < a.B; b++) {
        memcpy(pdk + b * a.Nk * a.C, pkf + b * a.Nkt * a.C, sizeof(float) * (size_t)(a.Nk * a.C));
        memcpy(pdv + b * a.Nk * a.C, pvf + b * a.Nkt * a.C, sizeof(float) * (size_t)(a.Nk * a.C));
        if (a.Ne) {
            float *pek = (float *)fd_tensor_data(dek) + (a.Be == 1 ? 0 : b) * a.Ne * a.C;
            float *pev = (float *)fd_tensor_data(dev) + (a.Be == 1 ? 0 : b) * a.Ne * a.C;
            const float *sk = pkf + (b * a.Nkt + a.Nk) * a.C, *sv = pvf + (b * a.Nkt + a.Nk) * a.C;
            for (int64_t i = 0; i < a.Ne * a.C; i++) pek[i] += sk[i], pev[i] += sv[i];
        }
    }
    free(ws);
    release_staged(&st);
    fd_nn_release(&gs, &os, &ls, &dkf, &dvf, NULL);
    return FD_OK;
}
