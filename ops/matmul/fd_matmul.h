/* Matrix products: torch.matmul (1-d operands, batched, broadcast batch dims,
 * transposes as options), and linear y = x W^T + b with W [out, in].
 *
 * f32 runs on oneDNN matmul (linear: weights packed once per storage version
 * and cached; bf16 compute on request); f64, and anything oneDNN refuses,
 * runs on the reference loops in fd_matmul_ref.c (double accumulation). */
#ifndef FD_MATMUL_H
#define FD_MATMUL_H

#include "ops/common/fd_act.h"
#include "runtime/core/fd_tensor.h"

enum { FD_MM_AUTO, FD_MM_DNNL, FD_MM_BLAS };

typedef struct fd_mm_opts {
    int transpose_a, transpose_b; /* use a^T / b^T (last two dims; 1-d operands ignore it) */
    int backend;                  /* FD_MM_AUTO (timed per shape), FD_MM_DNNL or FD_MM_BLAS (f32, no act) */
    fd_act act;                   /* linear only: fused activation */
    fd_dtype compute;             /* FD_F32, FD_BF16 or FD_NDTYPES (global setting) */
    int force_ref;
} fd_mm_opts;
void fd_mm_opts_default(fd_mm_opts *o);

/* torch.matmul(a, b). Output contiguous, dtype of the inputs. */
int fd_matmul(fd_tensor *out, const fd_tensor *a, const fd_tensor *b, const fd_mm_opts *o);
/* Gradients of out = matmul(a, b) given gy; summed over broadcast batch
 * dims, shaped like a and b. ga or gb may be NULL. */
int fd_matmul_backward(fd_tensor *ga, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *a, const fd_tensor *b,
                       const fd_mm_opts *o);

/* y[..., out] = act(x[..., in] W^T + b); b may be NULL. */
int fd_linear(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b, const fd_mm_opts *o);
/* Gradients of y = x W^T + b (before any activation). Any of gx, gw, gb may be NULL. */
int fd_linear_backward(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *x,
                       const fd_tensor *w, const fd_mm_opts *o);

/* The per-shape backend choices made so far: rows of {M, K, N, batch,
 * threads, FD_MM_DNNL or FD_MM_BLAS}; returns the count (at most max). */
int fd_matmul_choices(int64_t (*rows)[6], int max);

/* How many calls oneDNN refused and the reference loops answered. */
int fd_matmul_dnnl_fallbacks(void);

/* Reference loops, double accumulation, any float dtype. */
int fd_ref_matmul(fd_tensor *out, const fd_tensor *a, const fd_tensor *b, const fd_mm_opts *o);
int fd_ref_matmul_backward(fd_tensor *ga, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *a,
                           const fd_tensor *b, const fd_mm_opts *o);
int fd_ref_linear(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b, const fd_mm_opts *o);
int fd_ref_linear_backward(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *x,
                           const fd_tensor *w, const fd_mm_opts *o);

#endif
