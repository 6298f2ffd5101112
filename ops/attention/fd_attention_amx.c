/* The attention forward on AMX tiles: bf16 products, f32 softmax and sums.
 *
 * The flash loop of forward_tile (fd_attention.c) on tiles of BA = 32 query rows
 * and BC = 96 keys, where the two products are tile instructions: each
 * _tile_dpbf16ps adds A[16 x 32] B[32 x 16] (bf16, B stored as row pairs) to an
 * f32 C[16 x 16]. Eight tile registers: four accumulators (2 row tiles x 2 column
 * tiles), two A and two B operands. Per key block:
 *   S[32 x BC] = Q K^T            (k runs over the head dim, 32 at a time)
 *   online softmax on S           (fd_att_online_update_avx512, f32; O rescaled)
 *   O[32 x dpa] += P V            (P rounded to bf16; k runs over the keys)
 * Q is rounded once per query tile, K and V once per call into the pair layout
 * (pack_kv); O lives in memory between blocks because the softmax rescales it.
 * Operands rounded to bf16 keep about 3 significant digits (2^-9 relative), as in
 * the bf16 convolutions; outputs move by ~1e-3; fd_attention routes
 * here only when its caller asked for bf16 products (inference in bf16). */
#include <omp.h>
#include <string.h>

#include "ops/attention/fd_attention_tiles.h"

#define BA 32 /* query rows per tile: two 16-row AMX tiles */
#define KB 32 /* bf16 values per 64-byte tile row: the k-depth of one tile product */

typedef struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

/* All eight tiles 16 rows x 64 bytes (16 f32 or 32 bf16). */
FD_AMX static void load_tile_config(void)
{
    tile_config c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++) c.rows[t] = 16, c.colsb[t] = 64;
    _tile_loadconfig(&c);
}

/* n <= 16 floats from p (the rest 0), so head dims that are not multiples of 16 pack too. */
FD_AMX static inline __m512 load_upto16(const float *p, int64_t n)
{
    return n >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(n > 0 ? (__mmask16)((1u << n) - 1) : 0, p);
}

/* 32 floats (a then b) rounded to bf16, in order. */
FD_AMX static inline __m512i to_bf16_32(__m512 a, __m512 b)
{
    return (__m512i)_mm512_cvtne2ps_pbh(b, a);
}

/* Keys j0 .. j0+n-1 of (b, h) as B operands of S = Q K^T, Kb[c][g][16][32]: the
 * tile for head-dim chunk c and key group g (16 keys) holds in row r the pairs
 * (K[g*16+i][c*32+2r], K[g*16+i][c*32+2r+1]) for i = 0..15. Values as B operands
 * of O += P V, Vb[kc][g][16][32]: the tile for key chunk kc (32 keys) and column
 * group g (16 of the head dim) holds in row r the pairs (V[kc*32+2r][g*16+i],
 * V[kc*32+2r+1][g*16+i]). Padding (keys >= n, dims >= d) is zero. */
FD_AMX static void pack_kv(const att *a, int64_t dpa, int64_t b, int64_t h, int64_t j0, int64_t n, uint16_t *Kb,
                           uint16_t *Vb)
{
    memset(Kb, 0, sizeof(uint16_t) * BC * dpa);
    memset(Vb, 0, sizeof(uint16_t) * BC * dpa);
    const int64_t groups = BC / 16, cgroups = dpa / 16;
    for (int64_t j = 0; j < n; j++) {
        const float *k = tok(a, &a->k, &a->ek, b, j0 + j, h);
        for (int64_t c = 0; c < dpa / KB; c++) {
            uint32_t pairs[16];
            _mm512_storeu_si512(pairs, to_bf16_32(load_upto16(k + c * KB, a->d - c * KB),
                                                  load_upto16(k + c * KB + 16, a->d - c * KB - 16)));
            uint32_t *tile = (uint32_t *)(Kb + (c * groups + j / 16) * 16 * KB);
            for (int r = 0; r < 16; r++) tile[r * 16 + j % 16] = pairs[r];
        }
    }
    /* two keys at a time: their values interleave into one tile row */
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                                22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int64_t j = 0; j < n; j += 2) {
        const float *v0 = tok(a, &a->v, &a->ev, b, j0 + j, h), *v1 = j + 1 < n ? tok(a, &a->v, &a->ev, b, j0 + j + 1, h) : NULL;
        for (int64_t g = 0; g < cgroups; g++) {
            int64_t left = a->d - g * 16;
            __m512 x0 = load_upto16(v0 + g * 16, left), x1 = v1 ? load_upto16(v1 + g * 16, left) : _mm512_setzero_ps();
            uint16_t *row = Vb + ((j / KB * cgroups + g) * 16 + (j % KB) / 2) * KB;
            _mm512_storeu_si512(row, _mm512_permutexvar_epi16(interleave, to_bf16_32(x0, x1)));
        }
    }
}

/* The queries of one tile, scaled and rounded: Qb[BA][dpa], zero padded. */
FD_AMX static void pack_queries(const att *a, int64_t dpa, int64_t b, int64_t h, int64_t i0, int64_t nr, uint16_t *Qb)
{
    memset(Qb, 0, sizeof(uint16_t) * BA * dpa);
    const __m512 s = _mm512_set1_ps(a->scale);
    for (int64_t r = 0; r < nr; r++) {
        const float *q = att_row(&a->q, b, i0 + r) + h * a->d;
        for (int64_t c = 0; c < dpa / KB; c++)
            _mm512_storeu_si512(Qb + r * dpa + c * KB,
                                to_bf16_32(_mm512_mul_ps(load_upto16(q + c * KB, a->d - c * KB), s),
                                           _mm512_mul_ps(load_upto16(q + c * KB + 16, a->d - c * KB - 16), s)));
    }
}

/* The four accumulators (tiles 0-3: rows 0-15 and 16-31 x two 16-column groups)
 * += one k-step of 32: A rows 0-15 and 16-31 from a (row stride lda bytes), the two
 * column groups' B tiles at b0 and b1 (pair layout, 64-byte rows). */
FD_AMX static inline void four_products(const uint16_t *a, int64_t lda, const uint16_t *b0, const uint16_t *b1)
{
    _tile_loadd(4, a, lda);
    _tile_loadd(5, (const char *)a + 16 * lda, lda);
    _tile_loadd(6, b0, 64);
    _tile_loadd(7, b1, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
}

/* The four accumulators to or from c (f32, row stride ldc bytes): 32 rows x 32 columns. */
FD_AMX static inline void store_four(float *c, int64_t ldc)
{
    _tile_stored(0, c, ldc);
    _tile_stored(1, c + 16, ldc);
    _tile_stored(2, (char *)c + 16 * ldc, ldc);
    _tile_stored(3, (char *)c + 16 * ldc + 64, ldc);
}

FD_AMX static inline void load_four(const float *c, int64_t ldc)
{
    _tile_loadd(0, c, ldc);
    _tile_loadd(1, c + 16, ldc);
    _tile_loadd(2, (const char *)c + 16 * ldc, ldc);
    _tile_loadd(3, (const char *)c + 16 * ldc + 64, ldc);
}

/* S[BA x ncp] = Qb Kb^T over the key groups of one block (ncp a multiple of 32). */
FD_AMX static void scores(int64_t dpa, int64_t ncp, const uint16_t *Qb, const uint16_t *Kb, float *S)
{
    const int64_t groups = BC / 16;
    for (int64_t g = 0; g < ncp / 16; g += 2) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
        for (int64_t c = 0; c < dpa / KB; c++)
            four_products(Qb + c * KB, dpa * 2, Kb + (c * groups + g) * 16 * KB, Kb + (c * groups + g + 1) * 16 * KB);
        store_four(S + g * 16, BC * 4);
    }
}

/* O[BA x dpa] += Pb Vb over the ncp keys of one block. */
FD_AMX static void accumulate(int64_t dpa, int64_t ncp, const uint16_t *Pb, const uint16_t *Vb, float *O)
{
    const int64_t cgroups = dpa / 16;
    for (int64_t g = 0; g < cgroups; g += 2) {
        load_four(O + g * 16, dpa * 4);
        for (int64_t kc = 0; kc < ncp / KB; kc++)
            four_products(Pb + kc * KB, BC * 2, Vb + (kc * cgroups + g) * 16 * KB, Vb + (kc * cgroups + g + 1) * 16 * KB);
        store_four(O + g * 16, dpa * 4);
    }
}

/* Per-thread scratch of one query tile. */
typedef struct tile_scratch {
    uint16_t *Qb, *Pb; /* [BA][dpa], [BA][BC] */
    float *S, *O, *m, *l; /* [BA][BC], [BA][dpa], [BA], [BA] */
} tile_scratch;

FD_AMX static void forward_tile(const att *a, const uint16_t *kpack, const uint16_t *vpack, int64_t nkb, int64_t b,
                                int64_t h, int64_t i0, const tile_scratch *w, float *o, float *lse)
{
    /* a->dp is the head dim padded to whole tile rows (fd_att_amx_forward) */
    const int64_t dpa = a->dp, nr = a->Nq - i0 < BA ? a->Nq - i0 : BA, bh = b * a->H + h;
    pack_queries(a, dpa, b, h, i0, nr, w->Qb);
    memset(w->O, 0, sizeof(float) * BA * dpa);
    for (int64_t r = 0; r < BA; r++) w->m[r] = -INFINITY, w->l[r] = 0;
    for (int64_t kb = 0; kb < nkb; kb++) {
        int64_t j0 = kb * BC, nc = a->Nkt - j0 < BC ? a->Nkt - j0 : BC, ncp = round_up(nc, KB);
        size_t at = (size_t)((bh * nkb + kb) * BC * dpa);
        scores(dpa, ncp, w->Qb, kpack + at, w->S);
        fd_att_mask_scores(a, w->S, b, h, i0, nr, j0, nc, ncp);
        fd_att_online_update_avx512(a, w->S, nr, BA, ncp, w->m, w->l, w->O);
        for (int64_t r = 0; r < BA; r++)
            for (int64_t j = 0; j < ncp; j += KB)
                _mm512_storeu_si512(w->Pb + r * BC + j,
                                    to_bf16_32(_mm512_loadu_ps(w->S + r * BC + j), _mm512_loadu_ps(w->S + r * BC + j + 16)));
        accumulate(dpa, ncp, w->Pb, vpack + at, w->O);
    }
    for (int64_t r = 0; r < nr; r++) {
        float inv = w->l[r] > 0 ? 1.0f / w->l[r] : 0.0f;
        float *dst = o + (b * a->Nq + i0 + r) * a->C + h * a->d;
        for (int64_t t = 0; t < a->d; t++) dst[t] = w->O[r * dpa + t] * inv;
        lse[bh * a->Nq + i0 + r] = w->l[r] > 0 ? w->m[r] + logf(w->l[r]) : -INFINITY;
    }
}

/* One thread's share of the query tiles (called inside the parallel region: the
 * tile configuration is per thread). */
FD_AMX static void thread_tiles(const att *a, const uint16_t *kpack, const uint16_t *vpack, int64_t nkb,
                                const tile_scratch *w, float *o, float *lse)
{
    const int64_t tiles = (a->Nq + BA - 1) / BA;
    load_tile_config();
#pragma omp for schedule(dynamic, 1)
    for (int64_t it = 0; it < a->B * a->H * tiles; it++) {
        int64_t bh = it / tiles;
        forward_tile(a, kpack, vpack, nkb, bh / a->H, bh % a->H, (it % tiles) * BA, w, o, lse);
    }
    _tile_release();
}

int fd_att_amx_forward(const att *a0, float *o, float *lse)
{
    att a = *a0;
    a.dp = round_up(a.d, KB); /* the head dim padded to whole tile rows */
    const int64_t dpa = a.dp, nkb = (a.Nkt + BC - 1) / BC, BH = a.B * a.H;
    const int nthr = omp_get_max_threads();
    const size_t kv = (size_t)(BH * nkb * BC * dpa), per_f = (size_t)(BA * BC + BA * dpa + 2 * BA),
                 per_h = (size_t)(BA * dpa + BA * BC);
    /* one scratch buffer from the pool: the bf16 packs of K and V, then per thread its
     * bf16 tiles (Qb, Pb) and f32 ones (S, O, m, l); all multiples of 16 floats, so aligned */
    fd_tensor scratch = {0};
    uint16_t *packs = fd_att_scratch(&scratch, kv + (size_t)nthr * (per_h / 2 + per_f));
    if (!packs) return FD_ERR;
    uint16_t *wh = packs + 2 * kv;
    float *wf = (float *)(wh + (size_t)nthr * per_h);
    uint16_t *kpack = packs, *vpack = packs + kv;
#pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < BH * nkb; it++) {
        int64_t bh = it / nkb, kb = it % nkb, j0 = kb * BC, nc = a.Nkt - j0 < BC ? a.Nkt - j0 : BC;
        size_t at = (size_t)((bh * nkb + kb) * BC * dpa);
        pack_kv(&a, dpa, bh / a.H, bh % a.H, j0, nc, kpack + at, vpack + at);
    }
#pragma omp parallel
    {
        int t = omp_get_thread_num();
        tile_scratch w = {wh + t * per_h, wh + t * per_h + BA * dpa, wf + t * per_f, NULL, NULL, NULL};
        w.O = w.S + BA * BC, w.m = w.O + BA * dpa, w.l = w.m + BA;
        thread_tiles(&a, kpack, vpack, nkb, &w, o, lse);
    }
    fd_tensor_release(&scratch);
    return FD_OK;
}
