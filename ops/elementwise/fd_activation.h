/* Elementwise activations (silu, gelu, gelu_tanh, sigmoid, tanh, relu),
 * forward and backward: the fast kernels (fd_activation.c), the reference
 * kernels (fd_activation_ref.c), and the kinds by name (fd_activation_check.c).
 * Conventions of the nn ops: ops/common/fd_nn_common.h. */
#ifndef FD_ACTIVATION_H
#define FD_ACTIVATION_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

typedef enum fd_activation_kind {
    FD_ACTIVATION_SILU,
    FD_ACTIVATION_GELU,      /* x * Phi(x), erf form */
    FD_ACTIVATION_GELU_TANH, /* tanh approximation */
    FD_ACTIVATION_SIGMOID,
    FD_ACTIVATION_TANH,
    FD_ACTIVATION_RELU,
    FD_ACTIVATION_COUNT
} fd_activation_kind;
int fd_activation(fd_tensor *y, const fd_tensor *x, fd_activation_kind k);
/* dx = dy * f'(x), recomputed from x. */
int fd_activation_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x, fd_activation_kind k);
int fd_ref_activation(fd_tensor *y, const fd_tensor *x, fd_activation_kind k);
int fd_ref_activation_backward(fd_tensor *dx, const fd_tensor *dy, const fd_tensor *x, fd_activation_kind k);

#endif
