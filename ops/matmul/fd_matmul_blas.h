/* OpenBLAS sgemm for matmul views (see fd_matmul_blas.c). */
#ifndef FD_MATMUL_BLAS_H
#define FD_MATMUL_BLAS_H

#include "runtime/core/fd_tensor.h"

/* 1 if A [batch..., M, K] and B [batch..., K, N] (equal ndim, batch dims
 * equal or 1, f32) have strides cblas_sgemm takes. */
int fd_blas_mm_ok(const fd_tensor *A, const fd_tensor *B);
/* out (made here: f32, contiguous [batch..., M, N]) = A B (+ bias [N] per row). */
int fd_blas_mm(fd_tensor *out, const fd_tensor *A, const fd_tensor *B, const fd_tensor *bias);

#endif
