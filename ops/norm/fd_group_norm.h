/* GroupNorm (optionally fused with SiLU, optionally modulated per sample),
 * forward and backward: the fast kernels (fd_group_norm.c,
 * fd_group_norm_backward.c, and fd_group_norm_blocked.c for the blocked
 * layout) and the reference kernels (fd_group_norm_ref.c).
 * Conventions of the nn ops: ops/common/fd_nn_common.h. */
#ifndef FD_GROUP_NORM_H
#define FD_GROUP_NORM_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

/* x [N, C, *spatial] (NCHW-contiguous, channels-last, or any view); w, b [C]
 * or NULL; y like x (channels-last stays channels-last); mean, rstd [N, G]
 * (f32, or f64 for f64 input). silu: y = silu(norm(x) * w + b). */
int fd_group_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t groups,
                  const fd_tensor *w, const fd_tensor *b, double eps, bool silu);
/* The same followed by a per-sample modulation, as a diffusion ResBlock
 * applies its time embedding: y = act((norm(x) * w + b) * (1 + scale) + shift)
 * with scale, shift [N or 1, C] (or [N or 1, C, 1, 1]), either NULL; forward
 * only (fada.F records the pieces separately when gradients are wanted). */
int fd_group_norm_mod(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t groups,
                      const fd_tensor *w, const fd_tensor *b, const fd_tensor *scale, const fd_tensor *shift,
                      double eps, bool silu);
/* The backward of fd_group_norm_mod (fd_group_norm_mod_backward.c): dx like x
 * (NCHW), dw, db [C] when w, b are given, dscale, dshift shaped like scale,
 * shift when given (else left released); x f32. */
int fd_group_norm_mod_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, fd_tensor *dscale, fd_tensor *dshift,
                               const fd_tensor *dy, const fd_tensor *x, const fd_tensor *mean, const fd_tensor *rstd,
                               int64_t groups, const fd_tensor *w, const fd_tensor *b, const fd_tensor *scale,
                               const fd_tensor *shift, bool silu);
/* The statistics alone: mean, rstd [N, G] as fd_group_norm gives them (f32 x). */
int fd_group_norm_stats(fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t groups, double eps);
/* fd_group_norm_mod writing y as bf16 stored channels-last ([N, C, H, W] with
 * strides [HWC, 1, WC, C]), the operand a bf16 convolution on AVX-512
 * (brgconv, AMX) reads in place: the norm's output is rounded once, where
 * the convolution would round it anyway, and the transposing reorder it
 * would run (NCHW f32 -> NHWC bf16) goes. Forward only; x f32 in any layout
 * (NCHW, channels-last and blocked run without a copy). */
int fd_group_norm_bf16_nhwc(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t groups,
                            const fd_tensor *w, const fd_tensor *b, const fd_tensor *scale, const fd_tensor *shift,
                            double eps, bool silu);
/* dx like x; dw [C] when w is given, db [C] when b is given (else left released). */
int fd_group_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                           const fd_tensor *mean, const fd_tensor *rstd, int64_t groups, const fd_tensor *w,
                           const fd_tensor *b, bool silu);
int fd_ref_group_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, int64_t groups,
                      const fd_tensor *w, const fd_tensor *b, double eps, bool silu);
int fd_ref_group_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                               const fd_tensor *mean, const fd_tensor *rstd, int64_t groups, const fd_tensor *w,
                               const fd_tensor *b, bool silu);

#endif
