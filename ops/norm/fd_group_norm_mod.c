/* The per-sample modulation of group_norm_mod applied to a sample's
 * per-channel affine (see fd_group_norm_mod.h). */
#include <stddef.h>

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
