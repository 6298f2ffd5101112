/* layer_norm over the last dim, and softmax / log_softmax over a dim,
 * forward and backward: the fast row kernels (fd_layer_norm_softmax.c) and
 * the reference kernels (fd_layer_norm_softmax_ref.c).
 * Conventions of the nn ops: ops/common/fd_nn_common.h. */
#ifndef FD_LAYER_NORM_SOFTMAX_H
#define FD_LAYER_NORM_SOFTMAX_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

/* ---- layer_norm over the last dim ------------------------------------ */
/* x [..., D]; w, b [D] or NULL; mean, rstd [...] */
int fd_layer_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, const fd_tensor *w,
                  const fd_tensor *b, double eps);
int fd_layer_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                           const fd_tensor *mean, const fd_tensor *rstd, const fd_tensor *w, const fd_tensor *b);
int fd_ref_layer_norm(fd_tensor *y, fd_tensor *mean, fd_tensor *rstd, const fd_tensor *x, const fd_tensor *w,
                      const fd_tensor *b, double eps);
int fd_ref_layer_norm_backward(fd_tensor *dx, fd_tensor *dw, fd_tensor *db, const fd_tensor *dy, const fd_tensor *x,
                               const fd_tensor *mean, const fd_tensor *rstd, const fd_tensor *w, const fd_tensor *b);

/* ---- softmax / log_softmax over a dim (0-based) ----------------------- */
int fd_softmax(fd_tensor *y, const fd_tensor *x, int dim, bool log);
/* From the forward's output y: softmax dx = y*(dy - sum(dy*y)); log: dx = dy - exp(y)*sum(dy). */
int fd_softmax_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *y, int dim, bool log);
int fd_ref_softmax(fd_tensor *y, const fd_tensor *x, int dim, bool log);
int fd_ref_softmax_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *y, int dim, bool log);

#endif
