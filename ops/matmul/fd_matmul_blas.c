/* The OpenBLAS side of matmul: cblas_sgemm over strided operands (a
 * transpose is a stride, broadcast batch dims are size 1), one call per
 * batch entry. fd_matmul.c times it against oneDNN per shape and keeps the
 * faster (OpenBLAS's Zen kernels beat oneDNN 2.6's AVX2 gemm on large
 * square products on this machine; oneDNN wins on skinny ones). */
#include <cblas.h>
#include <string.h>

#include "ops/matmul/fd_matmul_blas.h"

/* Row-major layout of a matrix view [rows, cols] for BLAS: NoTrans with
 * ld = row stride, or Trans with ld = column stride. 0 if neither fits. */
static int blas_layout(const fd_tensor *t, CBLAS_TRANSPOSE *tr, int64_t *ld)
{
    int nd = t->ndim;
    int64_t rows = t->shape[nd - 2], cols = t->shape[nd - 1], rs = t->stride[nd - 2], cs = t->stride[nd - 1];
    if (cs == 1 || cols == 1) {
        *tr = CblasNoTrans;
        *ld = rows == 1 ? (cols > 1 ? cols : 1) : rs;
        return *ld >= cols && *ld >= 1;
    }
    if (rs == 1 || rows == 1) {
        *tr = CblasTrans;
        *ld = cols == 1 ? (rows > 1 ? rows : 1) : cs;
        return *ld >= rows && *ld >= 1;
    }
    return 0;
}

int fd_blas_mm_ok(const fd_tensor *A, const fd_tensor *B)
{
    CBLAS_TRANSPOSE t;
    int64_t ld;
    if (A->dtype != FD_F32 || B->dtype != FD_F32) return 0;
    if (!blas_layout(A, &t, &ld) || !blas_layout(B, &t, &ld)) return 0;
    int nd = A->ndim;
    int64_t m = A->shape[nd - 2], k = A->shape[nd - 1], n = B->shape[nd - 1];
    return m > 0 && k > 0 && n > 0 && m < INT32_MAX && n < INT32_MAX && k < INT32_MAX;
}

static int64_t batch_offset(int64_t flat, int nb, const int64_t *shape, const fd_tensor *t)
{
    int64_t off = 0;
    for (int d = nb - 1; d >= 0; d--) {
        int64_t i = flat % shape[d];
        flat /= shape[d];
        if (t->shape[d] != 1) off += i * t->stride[d];
    }
    return off;
}

int fd_blas_mm(fd_tensor *out, const fd_tensor *A, const fd_tensor *B, const fd_tensor *bias)
{
    int nd = A->ndim, nb = nd - 2;
    int64_t shape[FD_MAX_DIMS], nbatch = 1;
    for (int i = 0; i < nb; i++) {
        shape[i] = A->shape[i] > B->shape[i] ? A->shape[i] : B->shape[i];
        nbatch *= shape[i];
    }
    int64_t m = A->shape[nb], k = A->shape[nb + 1], n = B->shape[nb + 1];
    shape[nb] = m;
    shape[nb + 1] = n;
    if (fd_tensor_empty(out, FD_F32, nd, shape)) return FD_ERR;
    CBLAS_TRANSPOSE ta, tb;
    int64_t lda, ldb;
    if (!blas_layout(A, &ta, &lda) || !blas_layout(B, &tb, &ldb)) {
        fd_tensor_release(out);
        return fd_fail("matmul: operand strides do not fit BLAS");
    }
    float *y = fd_tensor_data(out);
    const float *a0 = fd_tensor_data(A), *b0 = fd_tensor_data(B);
    float beta = 0.0f;
    if (bias) { /* y rows start as the bias, then y += A B */
        const float *bd = fd_tensor_data(bias);
        for (int64_t r = 0; r < nbatch * m; r++)
            for (int64_t j = 0; j < n; j++) y[r * n + j] = bd[j * bias->stride[0]];
        beta = 1.0f;
    }
    for (int64_t t = 0; t < nbatch; t++)
        cblas_sgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, 1.0f, a0 + batch_offset(t, nb, shape, A), (int)lda,
                    b0 + batch_offset(t, nb, shape, B), (int)ldb, beta, y + t * m * n, (int)n);
    return FD_OK;
}
