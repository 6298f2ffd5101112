/* What the fast GroupNorm forward (fd_group_norm.c) and backward
 * (fd_group_norm_backward.c) share, defined in fd_group_norm_layout.c: the
 * layout a kernel runs in (NCHW or channels-last) and staging into it, and
 * the argument checks. Internal to ops/norm. */
#ifndef FD_GROUP_NORM_LAYOUT_H
#define FD_GROUP_NORM_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

#define BLOCK 1024 /* f32 partial sums are flushed to double every BLOCK elements */

/* Whether t is [N, C, *spatial] stored as [N, *spatial, C] (and not also NCHW-contiguous). */
bool fd_gn_is_channels_last(const fd_tensor *t);

/* An f32 copy (or view) of t in the layout the kernel runs in. */
float *fd_gn_stage_layout(fd_tensor *tmp, const fd_tensor *t, bool cl);

/* A new f32 tensor shaped like x, channels-last when cl. */
int fd_gn_alloc_like(fd_tensor *out, const fd_tensor *x, bool cl);

/* x [N, C, ...] float with groups G dividing C; w, b [C] or NULL. */
int fd_gn_check_args(const char *op, const fd_tensor *x, int64_t G, const fd_tensor *w, const fd_tensor *b);

#endif
