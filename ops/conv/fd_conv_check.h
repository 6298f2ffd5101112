/* What both convolution paths share (fd_conv_check.c): the oneDNN kernels in
 * fd_conv.c and the reference loops in fd_conv_ref.c check their operands and
 * shape their outputs the same way, and neither takes this from the other. */
#ifndef FD_CONV_CHECK_H
#define FD_CONV_CHECK_H

#include "ops/conv/fd_conv.h"

/* Validates the operands (naming `op`) and writes the output shape [N, O, OH, OW]. */
int fd_conv2d_check(const char *op, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b,
                    const fd_tensor *residual, const fd_conv_params *p, int64_t out_shape[4]);
/* t must be f32 or f64, and of fd_conv_out_dtype(x) when x is given ("op: what dtype ..."). */
int fd_conv_check_dtype(const char *op, const char *what, const fd_tensor *t, const fd_tensor *x);
/* The dtype of the weights, bias, residual and output for input x: x's own,
 * and f32 for a bf16 input (activations stored bf16 for a bf16 convolution,
 * as group_norm's bf16_nhwc writes them; forward only). */
fd_dtype fd_conv_out_dtype(const fd_tensor *x);
/* An empty 4-d tensor in the given layout (NHWC strides for FD_LAYOUT_NHWC,
 * fd_tensor.block for FD_LAYOUT_BLOCKED). */
int fd_tensor_empty_layout(fd_tensor *out, fd_dtype dt, const int64_t shape[4], fd_layout layout);
/* 1 if t is a 4-d tensor with channels-last strides (and not also plain NCHW). */
int fd_is_channels_last(const fd_tensor *t);
/* The element strides of logical shape s [N, C, H, W] stored channels-last. */
void fd_nhwc_strides(const int64_t s[4], int64_t st[4]);
/* The layout an output takes: p->layout, or the input's when AUTO. */
fd_layout fd_conv_out_layout(const fd_tensor *x, fd_layout asked);

#endif
