/* The pads of pad checked, and the padded shape (see fd_pad_check.h). */
#include <string.h>

#include "ops/common/fd_nn_common.h"
#include "ops/resample/fd_pad_check.h"

int fd_nn_pad_shape(const char *op, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode,
                 int64_t *out_shape)
{
    if (npads < 0 || npads % 2 || npads > 2 * x->ndim)
        return fd_fail("%s: %d pad values for x %s: need an even count <= %d", op, npads, FD_SHAPE_STR(x),
                       2 * x->ndim);
    memcpy(out_shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    for (int p = 0; p < npads / 2; p++) {
        int d = x->ndim - 1 - p;
        int64_t before = pads[2 * p], after = pads[2 * p + 1];
        out_shape[d] = x->shape[d] + before + after;
        if (out_shape[d] <= 0)
            return fd_fail("%s: pads (%lld, %lld) leave dim %d of x %s empty", op, (long long)before, (long long)after,
                           d, FD_SHAPE_STR(x));
        if (mode == FD_PAD_REFLECT && (before >= x->shape[d] || after >= x->shape[d] || before < 0 || after < 0))
            return fd_fail("%s: reflect pads (%lld, %lld) must be in [0, %lld) for dim %d of x %s", op,
                           (long long)before, (long long)after, (long long)x->shape[d], d, FD_SHAPE_STR(x));
    }
    return FD_OK;
}
