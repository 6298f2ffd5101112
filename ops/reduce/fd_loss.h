/* The mse and l1 losses, weighted, reduced by mean or sum, forward and
 * backward: the fast kernels (fd_loss.c) and the reference (fd_loss_ref.c).
 * Conventions of the nn ops: ops/common/fd_nn_common.h. */
#ifndef FD_LOSS_H
#define FD_LOSS_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

/* loss = reduce(wmap * f(x - target)), f = square (mse) or abs (l1);
 * reduction: mean (divides by numel) or sum. wmap NULL or broadcastable to x.
 * out: a 0-dim tensor of x's dtype. backward: dx = grad * d loss / dx. */
typedef enum fd_loss_kind { FD_LOSS_MSE, FD_LOSS_L1 } fd_loss_kind;
int fd_loss(fd_tensor *out, const fd_tensor *x, const fd_tensor *target, const fd_tensor *wmap, fd_loss_kind k,
            bool mean);
int fd_loss_backward(fd_tensor *dx, double grad, const fd_tensor *x, const fd_tensor *target, const fd_tensor *wmap,
                     fd_loss_kind k, bool mean);
int fd_ref_loss(fd_tensor *out, const fd_tensor *x, const fd_tensor *target, const fd_tensor *wmap, fd_loss_kind k,
                bool mean);
int fd_ref_loss_backward(fd_tensor *dx, double grad, const fd_tensor *x, const fd_tensor *target,
                         const fd_tensor *wmap, fd_loss_kind k, bool mean);

#endif
