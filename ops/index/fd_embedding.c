/* embedding: a gather of weight rows by index; its backward, a scatter-add
 * (threads split the columns, so repeated indices never race). f32. */
#include <omp.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/index/fd_embedding_check.h"

int fd_embedding(fd_tensor *y, const fd_tensor *weight, const fd_tensor *idx)
{
    const char *op = "embedding";
    if (fd_nn_check_float(op, "weight", weight) || fd_nn_check_ndim(op, "weight", weight, 2) ||
        fd_nn_check_nonempty(op, "weight", weight))
        return FD_ERR;
    if (weight->dtype == FD_F64) return fd_ref_embedding(y, weight, idx);
    const int64_t V = weight->shape[0], D = weight->shape[1];
    fd_tensor is = {0}, ws = {0};
    if (fd_nn_embedding_check(op, idx, V, &is)) return FD_ERR;
    int64_t shp[FD_MAX_DIMS];
    memcpy(shp, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    shp[idx->ndim] = D;
    float *pw = fd_nn_stage_f32(&ws, weight);
    if (!pw || fd_tensor_empty(y, FD_F32, idx->ndim + 1, shp)) {
        fd_nn_release(&is, &ws, y, NULL, NULL, NULL);
        return FD_ERR;
    }
    const int64_t *pi = fd_tensor_data(&is), n = fd_tensor_numel(&is);
    float *py = fd_tensor_data(y);
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t i = 0; i < n; i++) memcpy(py + i * D, pw + pi[i] * D, sizeof(float) * (size_t)D);
    fd_nn_release(&is, &ws, NULL, NULL, NULL, NULL);
    return FD_OK;
}

int fd_embedding_backward(fd_tensor *dw, const fd_tensor *dy, const fd_tensor *idx, int64_t V)
{
    const char *op = "embedding_backward";
    if (fd_nn_check_float(op, "grad_out", dy)) return FD_ERR;
    if (V <= 0) return fd_fail("%s: num_embeddings %lld must be positive", op, (long long)V);
    bool ok = dy->ndim == idx->ndim + 1;
    for (int d = 0; ok && d < idx->ndim; d++) ok = dy->shape[d] == idx->shape[d];
    if (!ok) return fd_fail("%s: grad_out %s vs indices %s: expected [*indices, D]", op, FD_SHAPE_STR(dy),
                            FD_SHAPE_STR(idx));
    if (dy->dtype == FD_F64) return fd_ref_embedding_backward(dw, dy, idx, V);
    const int64_t D = dy->shape[dy->ndim - 1];
    fd_tensor is = {0}, gs = {0};
    if (fd_nn_embedding_check(op, idx, V, &is)) return FD_ERR;
    int64_t shp[2] = {V, D};
    float *pg = fd_nn_stage_f32(&gs, dy);
    if (!pg || fd_tensor_zeros(dw, FD_F32, 2, shp)) {
        fd_nn_release(&is, &gs, dw, NULL, NULL, NULL);
        return FD_ERR;
    }
    const int64_t *pi = fd_tensor_data(&is), n = fd_tensor_numel(&is);
    float *pd = fd_tensor_data(dw);
    /* threads split the columns, so repeated indices never race */
#pragma omp parallel for schedule(static) if (n * D > 65536)
    for (int64_t c = 0; c < D; c++)
        for (int64_t i = 0; i < n; i++) pd[pi[i] * D + c] += pg[i * D + c];
    fd_nn_release(&is, &gs, NULL, NULL, NULL, NULL);
    return FD_OK;
}
