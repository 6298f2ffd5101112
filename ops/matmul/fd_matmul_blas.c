/* The OpenBLAS side of matmul: cblas_sgemm over strided operands (a
 * transpose is a stride, broadcast batch dims are size 1), one call per
 * batch entry. fd_matmul.c times it against oneDNN per shape and keeps the
 * faster (OpenBLAS's Zen kernels beat oneDNN 2.6's AVX2 gemm on large
 * square products on this machine; oneDNN wins on skinny ones). */
#include <cblas.h>
#include <string.h>

#include "runtime/core/fd_runtime.h"

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
    /* OpenBLAS runs single-threaded (fd_set_num_threads): its own worker
     * threads spin in sched_yield after every call and take the cores from
     * the OpenMP pool that oneDNN and our kernels share. The work is split
     * here instead, over batch entries, or else over row blocks of one
     * product (a row block of y is that row block of A times B). */
    int nt = fd_get_num_threads();
    int64_t parts = nbatch >= nt ? nbatch : nbatch * (m >= nt * 16 ? nt : 1);
    int64_t per = parts / nbatch, rows = (m + per - 1) / per;
#pragma omp parallel for schedule(static) num_threads(nt) if (parts > 1)
    for (int64_t p = 0; p < parts; p++) {
        int64_t t = p / per, r0 = (p % per) * rows, mr = m - r0 < rows ? m - r0 : rows;
        if (mr <= 0) continue;
        /* row r of A starts r * lda in (NoTrans) or r elements in (Trans) */
        int64_t a_off = batch_offset(t, nb, shape, A) + r0 * (ta == CblasNoTrans ? lda : 1);
        cblas_sgemm(CblasRowMajor, ta, tb, (int)mr, (int)n, (int)k, 1.0f, a0 + a_off, (int)lda,
                    b0 + batch_offset(t, nb, shape, B), (int)ldb, beta, y + t * m * n + r0 * n, (int)n);
    }
    return FD_OK;
}
