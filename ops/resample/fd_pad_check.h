/* What both pad paths share (fd_pad_check.c): the fast kernel in fd_pad.c
 * and the reference in fd_pad_ref.c check the pads the same way. */
#ifndef FD_PAD_CHECK_H
#define FD_PAD_CHECK_H

#include "ops/resample/fd_pad.h"

/* The padded shape of x (checks the pads). */
int fd_nn_pad_shape(const char *op, const fd_tensor *x, int npads, const int64_t *pads, fd_pad_mode mode,
                 int64_t *out_shape);

#endif
