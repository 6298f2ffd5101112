/* The per-sample modulation of group_norm_mod applied to a sample's
 * per-channel affine (see fd_group_norm_mod.h). */
#include <stddef.h>

#include "ops/common/fd_nn_common.h"

#include "ops/norm/fd_group_norm_mod.h"

void fd_gn_mod_apply(const fd_gn_mod *m, int64_t n, int64_t c0, int64_t nc, float *a, float *bb)
{
    if (!m) return;
    const float *s = m->scale ? m->scale + n * m->scale_stride + c0 : NULL;
    const float *t = m->shift ? m->shift + n * m->shift_stride + c0 : NULL;
    for (int64_t c = 0; c < nc; c++) {
        float k = s ? 1.0f + s[c] : 1.0f;
        a[c] *= k;
        bb[c] = bb[c] * k + (t ? t[c] : 0.0f);
    }
}

/* scale / shift [N or 1, C] (or [N or 1, C, 1, 1]) staged as f32 rows. */
int fd_gn_mod_stage(const char *op, const fd_tensor *x, const fd_tensor *t, const char *what, fd_tensor *tmp,
                    const float **p, int64_t *stride)
{
    if (!t) return FD_OK;
    int64_t N = x->shape[0], C = x->shape[1], n = t->ndim >= 1 ? t->shape[0] : 0;
    bool ok = (t->ndim == 2 || (t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1)) && (n == N || n == 1) &&
              t->shape[1] == C;
    if (!ok)
        return fd_fail("%s: %s %s must be [N or 1, C] or [N or 1, C, 1, 1] for x %s", op, what, FD_SHAPE_STR(t),
                       FD_SHAPE_STR(x));
    if (fd_nn_check_float(op, what, t) || !(*p = fd_nn_stage_f32(tmp, t))) return FD_ERR;
    *stride = n == 1 ? 0 : C;
    return FD_OK;
}
