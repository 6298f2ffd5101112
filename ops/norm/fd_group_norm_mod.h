/* The per-sample modulation of fd_group_norm_mod (fd_group_norm_mod.c),
 * shared by the NCHW / channels-last kernels (fd_group_norm.c), the blocked
 * one (fd_group_norm_blocked.c) and the bf16 writer (fd_group_norm_bf16.c). */
#ifndef FD_GROUP_NORM_MOD_H
#define FD_GROUP_NORM_MOD_H

#include <stdint.h>

#include "runtime/core/fd_tensor.h"

/* scale/shift staged as rows of C floats, row n at n * scale_stride (shift:
 * shift_stride); a stride of 0 means one row for every sample. */
typedef struct fd_gn_mod {
    const float *scale, *shift;
    int64_t scale_stride, shift_stride;
} fd_gn_mod;
/* a, bb (the per-channel affine of sample n, channels c0 .. c0 + nc) modulated in place. */
void fd_gn_mod_apply(const fd_gn_mod *m, int64_t n, int64_t c0, int64_t nc, float *a, float *bb);
/* scale or shift t (NULL: nothing) of x checked and staged into *tmp (the caller releases it). */
int fd_gn_mod_stage(const char *op, const fd_tensor *x, const fd_tensor *t, const char *what, fd_tensor *tmp,
                    const float **p, int64_t *stride);

#endif
