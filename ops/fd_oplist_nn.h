/* The nn op list (X-macro): one line per op family, naming its fast forward
 * and backward kernels, their plain-C reference kernels, and the Lua test
 * that checks the gradient against central finite differences. Users define
 * FD_NN_OP(name, fwd, bwd, ref_fwd, ref_bwd, gradcheck) and include this
 * file's FD_NN_OPLIST. lua_nnops.c turns it into fada.ops.nn_oplist and takes
 * the address of every kernel (so a missing reference kernel fails to link);
 * tests/lua/test_nnops.lua asserts each op has a reference binding in
 * fada.ops.ref and that its gradcheck test ran.
 *
 * Kept apart from the conv/matmul list (fd_oplist.h) until the branches merge. */
#ifndef FD_OPLIST_NN_H
#define FD_OPLIST_NN_H

#include "fd_nnops.h"

#define FD_NN_OPLIST                                                                                                   \
    FD_NN_OP(group_norm, fd_group_norm, fd_group_norm_backward, fd_ref_group_norm, fd_ref_group_norm_backward,         \
             "gradcheck group_norm")                                                                                   \
    FD_NN_OP(layer_norm, fd_layer_norm, fd_layer_norm_backward, fd_ref_layer_norm, fd_ref_layer_norm_backward,         \
             "gradcheck layer_norm")                                                                                   \
    FD_NN_OP(softmax, fd_softmax, fd_softmax_backward, fd_ref_softmax, fd_ref_softmax_backward, "gradcheck softmax")   \
    FD_NN_OP(attention, fd_attention, fd_attention_backward, fd_ref_attention, fd_ref_attention_backward,              \
             "gradcheck attention")                                                                                    \
    FD_NN_OP(activation, fd_activation, fd_activation_backward, fd_ref_activation, fd_ref_activation_backward,         \
             "gradcheck activations")                                                                                  \
    FD_NN_OP(upsample_nearest, fd_upsample_nearest, fd_upsample_nearest_backward, fd_ref_upsample_nearest,             \
             fd_ref_upsample_nearest_backward, "gradcheck resampling")                                                 \
    FD_NN_OP(resize_bilinear, fd_resize_bilinear, fd_resize_bilinear_backward, fd_ref_resize_bilinear,                 \
             fd_ref_resize_bilinear_backward, "gradcheck resampling")                                                  \
    FD_NN_OP(avg_pool2d, fd_avg_pool2d, fd_avg_pool2d_backward, fd_ref_avg_pool2d, fd_ref_avg_pool2d_backward,         \
             "gradcheck resampling")                                                                                   \
    FD_NN_OP(pad, fd_pad, fd_pad_backward, fd_ref_pad, fd_ref_pad_backward, "gradcheck pad")                           \
    FD_NN_OP(pixel_shuffle, fd_pixel_shuffle, fd_pixel_shuffle, fd_ref_pixel_shuffle, fd_ref_pixel_shuffle,            \
             "gradcheck pixel_shuffle")                                                                                \
    FD_NN_OP(embedding, fd_embedding, fd_embedding_backward, fd_ref_embedding, fd_ref_embedding_backward,              \
             "gradcheck embedding")                                                                                    \
    FD_NN_OP(loss, fd_loss, fd_loss_backward, fd_ref_loss, fd_ref_loss_backward, "gradcheck losses")

#endif
