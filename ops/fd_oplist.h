/* The one list of operators (X-macro). Each row:
 *     X(name, fwd, bwd, ref_fwd, ref_bwd, suite, gradcheck)
 * name: the op (family) as bound in fada.ops; fwd, bwd: its fast kernels;
 * ref_fwd, ref_bwd: its plain-C reference kernels; suite: the Lua test file
 * (tests/lua/<suite>.lua) whose test named `gradcheck` checks the backward
 * against central finite differences.
 *
 * ops/lua/lua_oplist.c turns it into fada.ops.oplist() and takes the address of
 * every kernel, so a missing reference kernel is a link error;
 * tests/lua/test_oplist.lua asserts each op is bound with its backward and
 * that its gradient-check test exists. Add your op here when you bind it. */
#ifndef FD_OPLIST_H
#define FD_OPLIST_H

#include "ops/attention/fd_attention.h"
#include "ops/conv/fd_conv.h"
#include "ops/elementwise/fd_activation.h"
#include "ops/index/fd_embedding.h"
#include "ops/matmul/fd_matmul.h"
#include "ops/norm/fd_group_norm.h"
#include "ops/norm/fd_layer_norm_softmax.h"
#include "ops/reduce/fd_loss.h"
#include "ops/resample/fd_pad.h"
#include "ops/resample/fd_resample.h"

#define FD_OPLIST(X)                                                                                                   \
    X(conv2d, fd_conv2d, fd_conv2d_backward, fd_ref_conv2d, fd_ref_conv2d_backward, "test_conv_matmul",                \
      "conv2d backward: reference vs f64 finite differences")                                                          \
    /* conv1d is conv2d with H = 1, for the fast and the reference path alike */                                      \
    X(conv1d, fd_conv1d, fd_conv1d_backward, fd_ref_conv2d, fd_ref_conv2d_backward, "test_conv_matmul",                \
      "conv1d forward and backward: oneDNN vs reference, reference vs finite differences")                             \
    X(linear, fd_linear, fd_linear_backward, fd_ref_linear, fd_ref_linear_backward, "test_conv_matmul",                \
      "linear forward/backward: oneDNN vs reference, finite differences, views")                                       \
    X(matmul, fd_matmul, fd_matmul_backward, fd_ref_matmul, fd_ref_matmul_backward, "test_conv_matmul",                \
      "matmul forward/backward: torch.matmul shapes, broadcasting, transposes")                                        \
    X(group_norm, fd_group_norm, fd_group_norm_backward, fd_ref_group_norm, fd_ref_group_norm_backward, "test_nnops",  \
      "gradcheck group_norm")                                                                                          \
    X(layer_norm, fd_layer_norm, fd_layer_norm_backward, fd_ref_layer_norm, fd_ref_layer_norm_backward, "test_nnops",  \
      "gradcheck layer_norm")                                                                                          \
    X(softmax, fd_softmax, fd_softmax_backward, fd_ref_softmax, fd_ref_softmax_backward, "test_nnops",                 \
      "gradcheck softmax")                                                                                             \
    X(attention, fd_attention, fd_attention_backward, fd_ref_attention, fd_ref_attention_backward, "test_nnops",       \
      "gradcheck attention")                                                                                           \
    X(activation, fd_activation, fd_activation_backward, fd_ref_activation, fd_ref_activation_backward, "test_nnops",  \
      "gradcheck activations")                                                                                         \
    X(upsample_nearest, fd_upsample_nearest, fd_upsample_nearest_backward, fd_ref_upsample_nearest,                    \
      fd_ref_upsample_nearest_backward, "test_nnops", "gradcheck resampling")                                          \
    X(resize_nearest, fd_resize_nearest, fd_resize_nearest_backward, fd_ref_resize_nearest,                            \
      fd_ref_resize_nearest_backward, "test_nnops", "gradcheck resampling")                                            \
    X(resize_bilinear, fd_resize_bilinear, fd_resize_bilinear_backward, fd_ref_resize_bilinear,                        \
      fd_ref_resize_bilinear_backward, "test_nnops", "gradcheck resampling")                                           \
    X(avg_pool2d, fd_avg_pool2d, fd_avg_pool2d_backward, fd_ref_avg_pool2d, fd_ref_avg_pool2d_backward, "test_nnops",  \
      "gradcheck resampling")                                                                                          \
    X(pad, fd_pad, fd_pad_backward, fd_ref_pad, fd_ref_pad_backward, "test_nnops", "gradcheck pad")                    \
    /* the backward of a pixel shuffle is the opposite shuffle: one kernel */                                         \
    X(pixel_shuffle, fd_pixel_shuffle, fd_pixel_shuffle, fd_ref_pixel_shuffle, fd_ref_pixel_shuffle, "test_nnops",     \
      "gradcheck pixel_shuffle")                                                                                       \
    X(embedding, fd_embedding, fd_embedding_backward, fd_ref_embedding, fd_ref_embedding_backward, "test_nnops",       \
      "gradcheck embedding")                                                                                           \
    X(loss, fd_loss, fd_loss_backward, fd_ref_loss, fd_ref_loss_backward, "test_nnops", "gradcheck losses")

#endif
