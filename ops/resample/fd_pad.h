/* pad (constant or reflect, negative pads crop), forward and backward: the
 * fast kernel (fd_pad.c) and the reference (fd_pad_ref.c), which check the
 * pads alike (fd_pad_check.c).
 * Conventions of the nn ops: ops/common/fd_nn_common.h. */
#ifndef FD_PAD_H
#define FD_PAD_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

/* torch.nn.functional.pad order: pads[0], pads[1] for the last dim (before,
 * after), pads[2], pads[3] for the one before, ...; npads even, <= 2*ndim.
 * Negative pads crop. Reflect needs pads < the dim's size. */
typedef enum fd_pad_mode { FD_PAD_CONSTANT, FD_PAD_REFLECT } fd_pad_mode;
int fd_pad(fd_tensor *y, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode, double value);
int fd_pad_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x_like, int npads, const int64_t *pads,
                    fd_pad_mode mode);
int fd_ref_pad(fd_tensor *y, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode, double value);
int fd_ref_pad_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x_like, int npads, const int64_t *pads,
                        fd_pad_mode mode);

#endif
