/* Reference kernels for embedding: a row gather and a scatter-add in double;
 * outputs in the weight's (or grad's) dtype. */
#include <math.h>
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/index/fd_embedding_check.h"

int fd_ref_embedding(fd_tensor *y, const fd_tensor *weight, const fd_tensor *idx)
{
    const char *op = "embedding";
    if (fd_nn_check_float(op, "weight", weight) || fd_nn_check_ndim(op, "weight", weight, 2) ||
        fd_nn_check_nonempty(op, "weight", weight))
        return FD_ERR;
    const int64_t V = weight->shape[0], D = weight->shape[1];
    fd_tensor is = {0}, ws = {0};
    if (fd_nn_embedding_check(op, idx, V, &is)) return FD_ERR;
    int64_t shp[FD_MAX_DIMS];
    memcpy(shp, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    shp[idx->ndim] = D;
    const double *pw = fd_nn_stage_f64(&ws, weight);
    if (!pw || fd_tensor_empty(y, FD_F64, idx->ndim + 1, shp)) {
        fd_nn_release(&is, &ws, y, NULL, NULL, NULL);
        return FD_ERR;
    }
    const int64_t *pi = fd_tensor_data(&is);
    double *py = fd_tensor_data(y);
    for (int64_t i = 0, n = fd_tensor_numel(&is); i < n; i++)
        for (int64_t c = 0; c < D; c++) py[i * D + c] = pw[pi[i] * D + c];
    fd_nn_release(&is, &ws, NULL, NULL, NULL, NULL);
    FD_NN_OUT(y, weight->dtype);
    return FD_OK;
}

int fd_ref_embedding_backward(fd_tensor *dw, const fd_tensor *dy, const fd_tensor *idx, int64_t V)
{
    const char *op = "embedding_backward";
    if (fd_nn_check_float(op, "grad_out", dy)) return FD_ERR;
    bool ok = dy->ndim == idx->ndim + 1 && V > 0;
    for (int d = 0; ok && d < idx->ndim; d++) ok = dy->shape[d] == idx->shape[d];
    if (!ok) return fd_fail("%s: grad_out %s vs indices %s (num_embeddings %lld)", op, FD_SHAPE_STR(dy),
                            FD_SHAPE_STR(idx), (long long)V);
    const int64_t D = dy->shape[dy->ndim - 1];
    fd_tensor is = {0}, gs = {0};
    if (fd_nn_embedding_check(op, idx, V, &is)) return FD_ERR;
    int64_t shp[2] = {V, D};
    const double *pg = fd_nn_stage_f64(&gs, dy);
    if (!pg || fd_tensor_zeros(dw, FD_F64, 2, shp)) {
        fd_nn_release(&is, &gs, dw, NULL, NULL, NULL);
        return FD_ERR;
    }
    const int64_t *pi = fd_tensor_data(&is);
    double *pd = fd_tensor_data(dw);
    for (int64_t i = 0, n = fd_tensor_numel(&is); i < n; i++)
        for (int64_t c = 0; c < D; c++) pd[pi[i] * D + c] += pg[i * D + c];
    fd_nn_release(&is, &gs, NULL, NULL, NULL, NULL);
    FD_NN_OUT(dw, dy->dtype);
    return FD_OK;
}
