/* What the flash-attention forward (fd_attention.c) and backward
 * (fd_attention_backward.c) share, defined in fd_attention_tiles.c: the tile
 * sizes, the micro-kernels and the tile product, packing and masking, and
 * the setup that checks and stages the inputs. Internal to ops/attention. */
#ifndef FD_ATTENTION_TILES_H
#define FD_ATTENTION_TILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/attention/fd_attention.h"
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

/* An input [B, N, C] as rows of C floats: row (b, i) starts at p + b*sb + i*sn.
 * The layers pass q, k and v as column slices of one projection ([B, N, 3C]):
 * read in place, not copied (fd_att_setup copies only other dtypes and strided columns). */
typedef struct att_rows {
    const float *p;
    int64_t sb, sn; /* sb = 0 when B = 1 (broadcast extra tokens) */
} att_rows;

static inline const float *att_row(const att_rows *r, int64_t b, int64_t i)
{
    return r->p + b * r->sb + i * r->sn;
}

typedef struct att {
    int64_t B, Nq, Nk, Ne, Nkt, C, H, d, dp, Be;
    float scale;
    att_rows q, k, v, ek, ev; /* ek.p, ev.p NULL without extra tokens */
    const float *mask;
    int64_t ms[4]; /* mask strides over [B, H, Nq, Nkt] (0 = broadcast) */
    bool simd, avx512; /* AVX2 kernels; AVX-512 tile products (fd_att_gemm) */
    bool amx;          /* the forward on AMX tiles with bf16 products (fd_attention_amx.c) */
} att;

/* C[MR x NR] (+)= A[MR x K] B[K x NR], A(r, k) at A[r*lda + k*aks] (aks = 1: rows; lda = 1: A stored transposed) */
typedef void (*microkernel)(int64_t K, const float *A, int64_t lda, int64_t aks, const float *B, int64_t ldb,
                            float *C, int64_t ldc, int acc);

void fd_att_mk_c(int64_t K, const float *A, int64_t lda, int64_t aks, const float *B, int64_t ldb, float *C,
                 int64_t ldc, int acc);
FD_AVX2 void fd_att_mk_avx2(int64_t K, const float *A, int64_t lda, int64_t aks, const float *B, int64_t ldb,
                            float *C, int64_t ldc, int acc);

static inline int64_t round_up(int64_t n, int64_t m)
{
    return (n + m - 1) / m * m;
}

/* C[M x N] (+)= A[M x K] B[K x N], A(i, k) at A[i*lda + k*aks]; M a multiple of MR, N of NR. */
void fd_att_tile_gemm(microkernel mk, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int64_t aks,
                      const float *B, int64_t ldb, float *C, int64_t ldc, int acc);

/* C[M x N] (+)= A[M x K] B[K x N] with the best kernel `a` allows: AVX-512
 * (6 x 32 register tiles), AVX2 or plain C (6 x 16); M a multiple of MR, N of NR. */
void fd_att_gemm(const att *a, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B,
                 int64_t ldb, float *C, int64_t ldc, int acc);

/* The same with A given transposed: C[M x N] (+)= At^T B, At [K x M] with row stride lda
 * (the backward's P^T dO and dS^T Q without transposing the score tiles). */
void fd_att_gemm_at(const att *a, int64_t M, int64_t N, int64_t K, const float *At, int64_t lda, const float *B,
                    int64_t ldb, float *C, int64_t ldc, int acc);

/* The online softmax step on a score tile S (row stride BC), AVX-512: S becomes
 * P = exp(S - m_new) over nrp rows (< nr real) and ncp columns (a multiple of 16),
 * l and m updated, the O rows (stride a->dp) rescaled; padded rows zeroed. */
FD_AVX512 void fd_att_online_update_avx512(const att *a, float *S, int64_t nr, int64_t nrp, int64_t ncp, float *m,
                                          float *l, float *O);

/* The forward of fd_attention on AMX tiles (a->amx; more than SMALL keys): o [B, Nq, C]
 * and lse [B, H, Nq] as forward_tile writes them, products in bf16. FD_ERR when out of memory. */
int fd_att_amx_forward(const att *a, float *o, float *lse);

/* s[j] = exp(s[j] - sub) for n (a multiple of 8) values; returns their sum. */
float fd_att_exp_row_c(float *s, int64_t n, float sub);
FD_AVX2 float fd_att_exp_row_avx2(float *s, int64_t n, float sub);

/* The C-vector of key j of batch b (a key or an extra token), at head h. */
static inline const float *tok(const att *a, const att_rows *main, const att_rows *extra, int64_t b, int64_t j,
                               int64_t h)
{
    return (j < a->Nk ? att_row(main, b, j) : att_row(extra, b, j - a->Nk)) + h * a->d;
}

/* out[r][t] = mul * src[b, i0 + r, h*d + t] for r < n, zero padded to BR x dp. */
void fd_att_pack_rows(const att *a, const att_rows *src, int64_t b, int64_t h, int64_t i0, int64_t n, float mul,
                      float *out);

/* Adds the mask to the score tile and sends padded keys nc..ncp-1 to -inf. */
void fd_att_mask_scores(const att *a, float *S, int64_t b, int64_t h, int64_t i0, int64_t nr, int64_t j0, int64_t nc,
                        int64_t ncp);

/* Keys and values packed once per call: for (b, h) and key block kb,
 * Kt[dp][BC], Kp[BC][dp] (keys), Vt[dp][BC], Vp[BC][dp] (values); and per
 * query tile the scaled queries Qp[BR][dp] and the output grads Gp[BR][dp]. */
typedef struct packs {
    float *kt, *kp, *vt, *vp, *qp, *gp;
    int64_t nkb, nqt;
} packs;

static inline size_t key_pack_at(const att *a, const packs *p, int64_t bh, int64_t kb)
{
    return (size_t)((bh * p->nkb + kb) * BC * a->dp);
}

static inline size_t query_pack_at(const att *a, const packs *p, int64_t bh, int64_t qt)
{
    return (size_t)((bh * p->nqt + qt) * BR * a->dp);
}

/* Fills the packs that are not NULL (threads over (b, h, block)). */
void fd_att_pack_all(const att *a, packs *p, const float *dO);

/* At most SMALL keys (Nk + Ne): one query row at a time, no tiles (forward_small, backward_small). */
#define SMALL 32

typedef struct staged {
    fd_tensor q, k, v, ek, ev, mask;
} staged;

void fd_att_release_staged(staged *s);

/* n floats of scratch, 64-byte aligned, from the runtime's buffer pool (a call's packs
 * run to tens of MB in training; fresh pages for them every call cost more than the
 * products): held by *t until fd_tensor_release(t). Not zeroed. NULL when out of memory. */
void *fd_att_scratch(fd_tensor *t, size_t n);

/* Checks the arguments, fills `a` and stages the inputs as contiguous f32. */
int fd_att_setup(const char *op, att *a, staged *st, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                 const fd_attention_args *args);

#endif
