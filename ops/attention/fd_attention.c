/* Multi-head scaled dot-product attention, flash style on the CPU.
 *
 * Forward: threads take (batch, head, query tile) items. A tile of BR queries
 * walks the keys in blocks of BC with an online softmax (running max m and
 * sum l per row), so only a BR x BC score tile ever exists; the output keeps
 * O / l and the row logsumexp m + log l for the backward.
 * Backward (fd_attention_backward.c) recomputes the probabilities tile by
 * tile from the logsumexp, in one pass: threads own key blocks for dK, dV and
 * add each block's share of dQ to a copy of dQ of their own.
 *
 * Every tile product is C[6 x 32] (AVX-512), C[6 x 16] (AVX2) or plain C
 * += A[6 x K] B[K x N] on packed, zero-padded tiles: BR = 48 rows, BC = 96 keys,
 * head dim padded to a multiple of 16. No BLAS in the OpenMP regions. Extra
 * (reference) tokens are simply keys Nk..Nk+Ne-1. The kernels, packing, masking
 * and setup both directions use: fd_attention_tiles.c. With bf16 products asked
 * for and AMX present, the forward runs on tiles instead (fd_attention_amx.c). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/attention/fd_attention_tiles.h"

/* ---- forward ------------------------------------------------------------ */

static float row_max(const float *s, int64_t n)
{
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) m = s[j] > m ? s[j] : m;
    return m;
}

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
        l[r] = l[r] * alpha + fd_att_exp_row_c(s, ncp, mnew);
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
        l[r] = l[r] * alpha + fd_att_exp_row_avx2(s, ncp, mnew);
        m[r] = mnew;
        if (alpha != 1.0f) {
            __m256 va = _mm256_set1_ps(alpha);
            float *o = O + r * a->dp;
            for (int64_t t = 0; t < a->dp; t += 8) _mm256_storeu_ps(o + t, _mm256_mul_ps(_mm256_loadu_ps(o + t), va));
        }
    }
}

static void forward_tile(const att *a, const packs *p, int64_t b, int64_t h, int64_t i0, float *ws, float *o,
                         float *lse)
{
    const int64_t dp = a->dp, nr = a->Nq - i0 < BR ? a->Nq - i0 : BR, nrp = round_up(nr, MR), bh = b * a->H + h;
    float *Q = ws, *S = Q + BR * dp, *O = S + BR * BC, *m = O + BR * dp, *l = m + BR;
    fd_att_pack_rows(a, &a->q, b, h, i0, nr, a->scale, Q);
    memset(O, 0, sizeof(float) * BR * dp);
    for (int64_t r = 0; r < BR; r++) m[r] = -INFINITY, l[r] = 0;
    for (int64_t kb = 0; kb < p->nkb; kb++) {
        /* the last tiles are cut to whole micro-tiles: no work on padding beyond them */
        int64_t j0 = kb * BC, nc = a->Nkt - j0 < BC ? a->Nkt - j0 : BC, ncp = round_up(nc, NR);
        size_t at = key_pack_at(a, p, bh, kb);
        fd_att_gemm(a, nrp, ncp, dp, Q, dp, p->kt + at, BC, S, BC, 0);
        fd_att_mask_scores(a, S, b, h, i0, nr, j0, nc, ncp);
        (a->avx512 ? fd_att_online_update_avx512 : a->simd ? online_update_avx2 : online_update_c)(a, S, nr, nrp, ncp,
                                                                                                 m, l, O);
        fd_att_gemm(a, nrp, dp, ncp, S, BC, p->vp + at, dp, O, dp, 1);
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
static inline __attribute__((always_inline)) void forward_small_body(const att *a, int64_t b, int64_t h, float *o,
                                                                      float *lse)
{
    float s[SMALL];
    const int64_t d = a->d;
    for (int64_t i = 0; i < a->Nq; i++) {
        const float *qi = att_row(&a->q, b, i) + h * d;
        float mx = -INFINITY;
        for (int64_t j = 0; j < a->Nkt; j++) {
            const float *kj = tok(a, &a->k, &a->ek, b, j, h);
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
            const float *vj = tok(a, &a->v, &a->ev, b, j, h), w = s[j] * inv;
#pragma omp simd
            for (int64_t t = 0; t < d; t++) dst[t] += w * vj[t];
        }
        *l = mx + logf(sum);
    }
}

/* forward_small_body compiled twice: for AVX2+FMA (its dot products and axpys
 * vectorise 8 wide with fused multiply-adds) and for the baseline ISA. */
FD_AVX2 static void forward_small_avx2(const att *a, int64_t b, int64_t h, float *o, float *lse)
{
    forward_small_body(a, b, h, o, lse);
}

static void forward_small(const att *a, int64_t b, int64_t h, float *o, float *lse)
{
    if (a->simd) forward_small_avx2(a, b, h, o, lse);
    else forward_small_body(a, b, h, o, lse);
}

int fd_attention(fd_tensor *o, fd_tensor *lse, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                 const fd_attention_args *args)
{
    if (q->dtype == FD_F64) return fd_ref_attention(o, lse, q, k, v, args);
    att a;
    staged st;
    if (fd_att_setup("attention", &a, &st, q, k, v, args)) return FD_ERR;
    int64_t shl[3] = {a.B, a.H, a.Nq};
    if (a.Nkt <= SMALL) { /* few keys: no tiles, no packing */
        if (fd_tensor_empty_as(o, q, FD_F32) || fd_tensor_empty(lse, FD_F32, 3, shl)) {
            fd_att_release_staged(&st);
            fd_nn_release(o, lse, NULL, NULL, NULL, NULL);
            return FD_ERR;
        }
        float *so = fd_tensor_data(o), *sl = fd_tensor_data(lse);
        const int64_t items = a.B * a.H;
#pragma omp parallel for schedule(static)
        for (int64_t it = 0; it < items; it++) forward_small(&a, it / a.H, it % a.H, so, sl);
        fd_att_release_staged(&st);
        return FD_OK;
    }
    if (a.amx) { /* bf16 products on AMX tiles */
        int rc = fd_tensor_empty_as(o, q, FD_F32) || fd_tensor_empty(lse, FD_F32, 3, shl) ||
                 fd_att_amx_forward(&a, fd_tensor_data(o), fd_tensor_data(lse));
        fd_att_release_staged(&st);
        if (rc) fd_nn_release(o, lse, NULL, NULL, NULL, NULL);
        return rc ? FD_ERR : FD_OK;
    }
    int nthr = omp_get_max_threads();
    packs p = {0};
    p.nkb = (a.Nkt + BC - 1) / BC;
    size_t per = (size_t)(BR * a.dp * 2 + BR * BC + 2 * BR) + 16, kpack = (size_t)(a.B * a.H * p.nkb * BC * a.dp);
    /* not zeroed: pack_keys clears each key tile before filling it, and forward_tile
     * writes every row and column of its scratch that it reads (test_uninit.lua) */
    fd_tensor scratch = {0};
    float *ws = fd_att_scratch(&scratch, per * (size_t)nthr + 2 * kpack);
    if (!ws || fd_tensor_empty_as(o, q, FD_F32) || fd_tensor_empty(lse, FD_F32, 3, shl)) {
        fd_tensor_release(&scratch);
        fd_att_release_staged(&st);
        fd_nn_release(o, lse, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    p.kt = ws + per * (size_t)nthr, p.vp = p.kt + kpack;
    fd_att_pack_all(&a, &p, NULL);
    float *po = fd_tensor_data(o), *pl = fd_tensor_data(lse);
    const int64_t tiles = (a.Nq + BR - 1) / BR, items = a.B * a.H * tiles;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t it = 0; it < items; it++) {
        int64_t bh = it / tiles, b = bh / a.H, h = bh % a.H;
        forward_tile(&a, &p, b, h, (it % tiles) * BR, ws + per * (size_t)omp_get_thread_num(), po, pl);
    }
    fd_tensor_release(&scratch);
    fd_att_release_staged(&st);
    return FD_OK;
}
