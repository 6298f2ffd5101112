/* The per-sample modulation of fd_group_norm_mod (fd_group_norm_mod.c),
 * shared by the NCHW / channels-last kernels (fd_group_norm.c) and the
 * blocked one (fd_group_norm_blocked.c). */
#ifndef FD_GROUP_NORM_MOD_H
#define FD_GROUP_NORM_MOD_H

#include <stdint.h>

/* scale/shift staged as rows of C floats, row n at n * scale_stride (shift:
 * shift_stride); a stride of 0 means one row for every sample. */
typedef struct fd_gn_mod {
    const float *scale, *shift;
    int64_t scale_stride, shift_stride;
} fd_gn_mod;
/* a, bb (the per-channel affine of sample n, channels c0 .. c0 + nc) modulated in place. */
void fd_gn_mod_apply(const fd_gn_mod *m, int64_t n, int64_t c0, int64_t nc, float *a, float *bb);

#endif
