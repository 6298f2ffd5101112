/* The backward of flash attention (see fd_attention.c): the probabilities
 * recomputed tile by tile from the forward's logsumexp, in one pass over key
 * blocks: a thread owns a key block's dK and dV, and adds the block's share of
 * dQ to dQ tiles of its own, summed over the threads at the end (two threads'
 * copies of dQ cost less than computing the scores a second time). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/attention/fd_attention_tiles.h"

/* ---- backward ------------------------------------------------------------ */

/* A padded row (r >= nr) or one whose every key was masked has no probabilities
 * and no gradient: its score and dS rows s, g are zeroed and it is skipped. */
static inline bool dead_row(float *s, float *g, int64_t r, int64_t nr, const float *lse, int64_t ncp)
{
    if (r < nr && lse[r] != -INFINITY) return false;
    memset(s, 0, sizeof(float) * ncp);
    memset(g, 0, sizeof(float) * ncp);
    return true;
}

/* probs_and_dscores on 16 lanes (ncp is a multiple of 16; S - lse <= 0 up to rounding, -inf for masked keys). */
FD_AVX512 static void probs_and_dscores_avx512(float *S, float *dP, const float *lse, const float *Dr, int64_t nr,
                                               int64_t nrp, int64_t ncp)
{
    for (int64_t r = 0; r < nrp; r++) {
        float *s = S + r * BC, *g = dP + r * BC;
        if (dead_row(s, g, r, nr, lse, ncp)) continue;
        /* min(., 0): a score may exceed its logsumexp by a rounding error; exp stays <= 1 */
        const __m512 l = _mm512_set1_ps(lse[r]), d = _mm512_set1_ps(Dr[r]), zero = _mm512_setzero_ps();
        for (int64_t j = 0; j < ncp; j += 16) {
            __m512 p = nn_exp512_nonpos(_mm512_min_ps(_mm512_sub_ps(_mm512_loadu_ps(s + j), l), zero));
            _mm512_storeu_ps(s + j, p);
            _mm512_storeu_ps(g + j, _mm512_mul_ps(p, _mm512_sub_ps(_mm512_loadu_ps(g + j), d)));
        }
    }
}

/* P = exp(S - lse) (0 for padded rows/keys and empty rows); dS = P * (dP - D),
 * over the first nrp rows and ncp columns. On return S holds P and dP holds dS. */
static void probs_and_dscores(const att *a, float *S, float *dP, const float *lse, const float *Dr, int64_t nr,
                              int64_t nrp, int64_t ncp)
{
    if (a->avx512) {
        probs_and_dscores_avx512(S, dP, lse, Dr, nr, nrp, ncp);
        return;
    }
    float (*exprow)(float *, int64_t, float) = a->simd ? fd_att_exp_row_avx2 : fd_att_exp_row_c;
    for (int64_t r = 0; r < nrp; r++) {
        float *s = S + r * BC, *g = dP + r * BC;
        if (dead_row(s, g, r, nr, lse, ncp)) continue;
        exprow(s, ncp, lse[r]);
        for (int64_t j = 0; j < ncp; j++) g[j] = s[j] * (g[j] - Dr[r]);
    }
}

/* dK, dV for the key block kb of (b, h), into dkf/dvf [B, Nkt, C]; the block's
 * share of dQ (unscaled) added to dqt, laid out as the query packs. */
static void backward_kv(const att *a, const packs *p, int64_t b, int64_t h, int64_t kb, const float *lse,
                        const float *Dv, float *ws, float *dkf, float *dvf, float *dqt)
{
    /* keys are the rows of the dK, dV products here: a multiple of MR and NR (BC is one) */
    const int64_t dp = a->dp, j0 = kb * BC, nc = a->Nkt - j0 < BC ? a->Nkt - j0 : BC, ncp = round_up(nc, 3 * NR);
    const int64_t bh = b * a->H + h;
    float *S = ws, *dP = S + BR * BC, *dK = dP + BR * BC, *dV = dK + BC * dp;
    const float *Kt = p->kt + key_pack_at(a, p, bh, kb), *Vt = p->vt + key_pack_at(a, p, bh, kb),
                *Kp = p->kp + key_pack_at(a, p, bh, kb);
    memset(dK, 0, sizeof(float) * BC * dp);
    memset(dV, 0, sizeof(float) * BC * dp);
    for (int64_t qt = 0; qt < p->nqt; qt++) {
        int64_t i0 = qt * BR, nr = a->Nq - i0 < BR ? a->Nq - i0 : BR, nrp = round_up(nr, MR);
        const float *Q = p->qp + query_pack_at(a, p, bh, qt), *G = p->gp + query_pack_at(a, p, bh, qt);
        fd_att_gemm(a, nrp, ncp, dp, Q, dp, Kt, BC, S, BC, 0);
        fd_att_mask_scores(a, S, b, h, i0, nr, j0, nc, ncp);
        fd_att_gemm(a, nrp, ncp, dp, G, dp, Vt, BC, dP, BC, 0);
        const int64_t row = bh * a->Nq + i0;
        probs_and_dscores(a, S, dP, lse + row, Dv + row, nr, nrp, ncp);
        fd_att_gemm_at(a, ncp, dp, nrp, S, BC, G, dp, dV, dp, 1);  /* dV += P^T dO */
        fd_att_gemm_at(a, ncp, dp, nrp, dP, BC, Q, dp, dK, dp, 1); /* dK += dS^T Q */
        fd_att_gemm(a, nrp, dp, ncp, dP, BC, Kp, dp, dqt + query_pack_at(a, p, bh, qt), dp, 1);
    }
    for (int64_t j = 0; j < nc; j++)
        for (int64_t t = 0; t < a->d; t++) {
            int64_t at = (b * a->Nkt + j0 + j) * a->C + h * a->d + t;
            dkf[at] = dK[j * dp + t];
            dvf[at] = dV[j * dp + t];
        }
}

/* The backward of forward_small: per (b, h), one query row at a time, the
 * probabilities again from the logsumexp; dK, dV accumulate into the
 * (b, h) slices of dkf, dvf, which no other item touches. */
static inline __attribute__((always_inline)) void backward_small_body(const att *a, int64_t b, int64_t h,
                                                                       const float *dO, const float *lse,
                                                                       const float *Dv, float *dq, float *dkf,
                                                                       float *dvf)
{
    float p[SMALL], ds[SMALL];
    const int64_t d = a->d, bh = b * a->H + h;
    for (int64_t j = 0; j < a->Nkt; j++) {
        float *gk = dkf + (b * a->Nkt + j) * a->C + h * d, *gv = dvf + (b * a->Nkt + j) * a->C + h * d;
        for (int64_t t = 0; t < d; t++) gk[t] = 0, gv[t] = 0;
    }
    for (int64_t i = 0; i < a->Nq; i++) {
        const float *qi = att_row(&a->q, b, i) + h * d, *gi = dO + (b * a->Nq + i) * a->C + h * d;
        float *dqi = dq + (b * a->Nq + i) * a->C + h * d;
        for (int64_t t = 0; t < d; t++) dqi[t] = 0;
        const float l = lse[bh * a->Nq + i], D = Dv[bh * a->Nq + i];
        if (l == -INFINITY) continue; /* every key masked: no gradient */
        for (int64_t j = 0; j < a->Nkt; j++) {
            const float *kj = tok(a, &a->k, &a->ek, b, j, h), *vj = tok(a, &a->v, &a->ev, b, j, h);
            float s = 0, dp = 0;
#pragma omp simd reduction(+ : s, dp)
            for (int64_t t = 0; t < d; t++) s += qi[t] * kj[t], dp += gi[t] * vj[t];
            s *= a->scale;
            if (a->mask) s += a->mask[b * a->ms[0] + h * a->ms[1] + i * a->ms[2] + j * a->ms[3]];
            p[j] = s == -INFINITY ? 0.0f : expf(s - l);
            ds[j] = p[j] * (dp - D);
        }
        for (int64_t j = 0; j < a->Nkt; j++) {
            const float *kj = tok(a, &a->k, &a->ek, b, j, h);
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

/* backward_small_body for AVX2+FMA and for the baseline ISA (as forward_small). */
FD_AVX2 static void backward_small_avx2(const att *a, int64_t b, int64_t h, const float *dO, const float *lse,
                                        const float *Dv, float *dq, float *dkf, float *dvf)
{
    backward_small_body(a, b, h, dO, lse, Dv, dq, dkf, dvf);
}

static void backward_small(const att *a, int64_t b, int64_t h, const float *dO, const float *lse, const float *Dv,
                           float *dq, float *dkf, float *dvf)
{
    if (a->simd) backward_small_avx2(a, b, h, dO, lse, Dv, dq, dkf, dvf);
    else backward_small_body(a, b, h, dO, lse, Dv, dq, dkf, dvf);
}

int fd_attention_backward(fd_tensor *dq, fd_tensor *dk, fd_tensor *dv, fd_tensor *dek, fd_tensor *dev,
                          const fd_tensor *dout, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                          const fd_tensor *o, const fd_tensor *lse, const fd_attention_args *args)
{
    const char *op = "attention_backward";
    if (q->dtype == FD_F64) return fd_ref_attention_backward(dq, dk, dv, dek, dev, dout, q, k, v, o, lse, args);
    att a;
    staged st;
    if (fd_att_setup(op, &a, &st, q, k, v, args)) return FD_ERR;
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
    size_t per = small ? 0 : (size_t)(BC * a.dp * 2 + BR * a.dp + BR * BC * 2) + 16;
    size_t kpack = small ? 0 : (size_t)(a.B * a.H * p.nkb * BC * a.dp);
    size_t qpack = small ? 0 : (size_t)(a.B * a.H * p.nqt * BR * a.dp);
    /* not zeroed: the packs clear each tile they fill, backward_kv and backward_q clear their
     * accumulators, and every score tile is written before it is read (test_uninit.lua) */
    fd_tensor scratch = {0};
    float *ws = rc ? NULL
                   : fd_att_scratch(&scratch, per * (size_t)nthr + (size_t)(a.B * a.H * a.Nq) + 3 * kpack +
                                                  (2 + (size_t)nthr) * qpack);
    if (rc || !ws || fd_tensor_empty(&dkf, FD_F32, 3, shf) || fd_tensor_empty(&dvf, FD_F32, 3, shf) ||
        fd_tensor_empty_as(dq, q, FD_F32) || fd_tensor_empty_as(dk, k, FD_F32) || fd_tensor_empty_as(dv, v, FD_F32) ||
        (a.Ne && (fd_tensor_zeros(dek, FD_F32, 3, args->extra_k->shape) ||
                  fd_tensor_zeros(dev, FD_F32, 3, args->extra_v->shape)))) {
        fd_tensor_release(&scratch);
        fd_att_release_staged(&st);
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
        float *dqt = p.gp + qpack; /* a copy of dQ per thread, in the query packs' layout */
        int team = 1;                /* the threads that ran (at most nthr): the copies to sum */
        fd_att_pack_all(&a, &p, pg);
#pragma omp parallel
        {
            const int t = omp_get_thread_num();
#pragma omp single
            team = omp_get_num_threads();
            float *mine = dqt + (size_t)t * qpack;
            memset(mine, 0, sizeof(float) * qpack);
#pragma omp for schedule(dynamic, 1)
            for (int64_t it = 0; it < a.B * a.H * p.nkb; it++) {
                int64_t bh = it / p.nkb;
                backward_kv(&a, &p, bh / a.H, bh % a.H, it % p.nkb, pl, Dv, ws + per * (size_t)t, pkf, pvf, mine);
            }
        }
        /* dq = scale * (the threads' dQ tiles summed), back to [B, Nq, C] */
#pragma omp parallel for schedule(static)
        for (int64_t row = 0; row < a.B * a.H * a.Nq; row++) {
            int64_t bh = row / a.Nq, i = row % a.Nq, b = bh / a.H, h = bh % a.H;
            size_t at = query_pack_at(&a, &p, bh, i / BR) + (size_t)((i % BR) * a.dp);
            float *dst = pdq + (b * a.Nq + i) * a.C + h * a.d;
            for (int64_t t = 0; t < a.d; t++) {
                float sum = 0;
                for (int th = 0; th < team; th++) sum += dqt[(size_t)th * qpack + at + t];
                dst[t] = a.scale * sum;
            }
        }
    }
    /* split the key gradients into keys and extra tokens */
    float *pdk = fd_tensor_data(dk), *pdv = fd_tensor_data(dv);
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < a.B; b++) {
        memcpy(pdk + b * a.Nk * a.C, pkf + b * a.Nkt * a.C, sizeof(float) * (size_t)(a.Nk * a.C));
        memcpy(pdv + b * a.Nk * a.C, pvf + b * a.Nkt * a.C, sizeof(float) * (size_t)(a.Nk * a.C));
    }
    /* the extra tokens' gradients; shared extras (Be = 1) sum over the batch, in order */
    for (int64_t b = 0; a.Ne && b < a.B; b++) {
        float *pek = (float *)fd_tensor_data(dek) + (a.Be == 1 ? 0 : b) * a.Ne * a.C;
        float *pev = (float *)fd_tensor_data(dev) + (a.Be == 1 ? 0 : b) * a.Ne * a.C;
        const float *sk = pkf + (b * a.Nkt + a.Nk) * a.C, *sv = pvf + (b * a.Nkt + a.Nk) * a.C;
        for (int64_t i = 0; i < a.Ne * a.C; i++) pek[i] += sk[i], pev[i] += sv[i];
    }
    fd_att_release_staged(&st);
    fd_nn_release(&gs, &os, &ls, &dkf, &dvf, &scratch);
    return FD_OK;
}
