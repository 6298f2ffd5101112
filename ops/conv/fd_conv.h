/* 2-d and 1-d convolution, forward (with a fused epilogue) and backward.
 *
 * Tensors keep PyTorch's logical order: x [N, C, H, W], w [O, C/groups, KH, KW],
 * b [O], y [N, O, OH, OW]. Physically x may be NCHW-contiguous or
 * channels-last (strides [H*W*C, 1, W*C, C]); the fast path (oneDNN) takes
 * either without a copy when its kernel wants that layout, and writes y in the
 * layout asked for, so a chain of channels-last convs never reorders
 * activations. Any other strides are made contiguous first.
 *
 * f32 tensors run on oneDNN (bf16 compute on request, f32 accumulation and
 * output); f64 tensors and cases oneDNN refuses run on the reference loops
 * in fd_conv_ref.c. conv1d is conv2d with H = 1. */
#ifndef FD_CONV_H
#define FD_CONV_H

#include <stdbool.h>

#include "ops/common/fd_act.h"
#include "runtime/core/fd_tensor.h"

typedef enum fd_layout {
    FD_LAYOUT_AUTO,  /* the output follows the input's layout */
    FD_LAYOUT_NCHW,  /* contiguous */
    FD_LAYOUT_NHWC,  /* channels-last strides */
    FD_LAYOUT_BLOCKED, /* nChw8c (fd_tensor.block); NCHW when the channels are not a multiple of 8 */
} fd_layout;

enum { FD_CONV_AUTO, FD_CONV_ANY, FD_CONV_PLAIN };

typedef struct fd_conv_params {
    int64_t stride[2], padding[2], dilation[2]; /* [H, W]; dilation 1 = dense */
    int64_t groups;
    fd_act act;        /* applied after the bias, before the residual add */
    fd_layout layout;  /* of the output (and of grad_input in backward) */
    fd_dtype compute;  /* FD_F32, FD_BF16, or FD_NDTYPES for the global setting */
    int force_ref;     /* run the reference loops (tests) */
    /* forward f32: FD_CONV_AUTO times both and keeps the faster per shape;
     * FD_CONV_ANY lets oneDNN pick the activation layout (reordering around
     * the call when it differs); FD_CONV_PLAIN runs on the activations as
     * they lie (no reorder, but maybe a slower kernel). */
    int layout_policy;
    /* FD_CONV_ALGO_AUTO: Winograd (F(4x4, 3x3) on AVX-512 in this oneDNN) for
     * f32 3x3 stride-1 dense convolutions where oneDNN has it and
     * fd_conv_set_winograd has not turned it off, direct elsewhere;
     * FD_CONV_ALGO_DIRECT: direct always. */
    int algorithm;
    /* forward: the weights change between calls (a training step), so a
     * Winograd kernel transforms them itself rather than caching a
     * transformed copy that the next step throws away. */
    int training;
} fd_conv_params;

enum { FD_CONV_ALGO_AUTO, FD_CONV_ALGO_DIRECT };

/* stride 1, padding 0, dilation 1, groups 1, no activation, auto layout. */
void fd_conv_params_default(fd_conv_params *p);

/* y = act(conv(x, w) + b) + residual. b and residual may be NULL; residual
 * has y's shape. */
int fd_conv2d(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b,
              const fd_tensor *residual, const fd_conv_params *p);
/* Gradients of y = conv(x, w) + b (before any activation) given gy.
 * Each of gx, gw, gb may be NULL when not wanted. */
int fd_conv2d_backward(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *x,
                       const fd_tensor *w, const fd_conv_params *p);

/* x [N, C, L], w [O, C/groups, K]; params use index 1 (the W axis) only. */
int fd_conv1d(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b,
              const fd_tensor *residual, const fd_conv_params *p);
int fd_conv1d_backward(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *x,
                       const fd_tensor *w, const fd_conv_params *p);

/* Winograd off (every convolution direct) or back on, for the whole
 * process; it is on unless the environment has FADA_WINOGRAD=0. About 2.25x
 * fewer multiplies, with a rounding error of the direct kernel's order
 * (tests/lua/test_conv_matmul.lua bounds both alike). */
void fd_conv_set_winograd(bool on);
bool fd_conv_winograd_enabled(void);
/* How many oneDNN calls ran a Winograd kernel (forward and backward). */
long fd_conv_winograd_calls(void);

/* How many calls oneDNN refused and the reference loops answered. */
int fd_conv_dnnl_fallbacks(void);

/* The reference loops (fd_conv_ref.c): double accumulation, any float dtype,
 * output in x's dtype and the layout p asks for. */
int fd_ref_conv2d(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b,
                  const fd_tensor *residual, const fd_conv_params *p);
int fd_ref_conv2d_backward(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *x,
                           const fd_tensor *w, const fd_conv_params *p);

#endif
