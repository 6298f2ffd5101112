/* GroupNorm on the blocked layout (fd_group_norm_blocked.c), called by
 * fd_group_norm_mod when the input is blocked and its groups fit. */
#ifndef FD_GROUP_NORM_BLOCKED_H
#define FD_GROUP_NORM_BLOCKED_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/norm/fd_group_norm_mod.h"
#include "runtime/core/fd_tensor.h"

/* Whether x and G fit the blocked kernel (blocked f32, a group's channels a
 * multiple of 8 up to 512, or a divisor of 8). */
bool fd_group_norm_blocked_fits(const fd_tensor *x, int64_t G);
/* The forward; y is blocked too (NULL: the statistics alone). */
int fd_group_norm_blocked(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t G,
                          const fd_tensor *w, const fd_tensor *b, const fd_gn_mod *mod, double eps, bool silu);

#endif
