/* The indices of embedding checked and widened to i64 (see fd_embedding_check.h). */
#include "ops/common/fd_nn_common.h"
#include "ops/index/fd_embedding_check.h"

int fd_nn_embedding_check(const char *op, const fd_tensor *idx, int64_t V, fd_tensor *is)
{
    if (idx->dtype != FD_I64 && idx->dtype != FD_I32)
        return fd_fail("%s: indices %s have dtype %s, expected i64 or i32", op, FD_SHAPE_STR(idx),
                       fd_dtype_name(idx->dtype));
    if (idx->ndim + 1 > FD_MAX_DIMS) return fd_fail("%s: indices %s have too many dims", op, FD_SHAPE_STR(idx));
    if (fd_tensor_to_dtype(is, idx, FD_I64)) return FD_ERR;
    const int64_t *p = fd_tensor_data(is);
    for (int64_t i = 0, n = fd_tensor_numel(is); i < n; i++)
        if (p[i] < 0 || p[i] >= V) {
            long long bad = (long long)p[i];
            fd_tensor_release(is);
            return fd_fail("%s: index %lld out of range [0, %lld)", op, bad, (long long)V);
        }
    return FD_OK;
}
