/* The activation fused into conv2d and linear: applied after the bias and
 * before a residual add. Its oneDNN post-op is fd_dnnl_append_act
 * (ops/backend/fd_dnnl.h); its scalar form, for the reference loops, is
 * fd_act_apply. */
#ifndef FD_ACT_H
#define FD_ACT_H

typedef enum fd_act {
    FD_ACT_NONE,
    FD_ACT_SILU,      /* x * sigmoid(x) */
    FD_ACT_GELU,      /* erf form */
    FD_ACT_GELU_TANH, /* tanh approximation */
    FD_ACT_RELU,
} fd_act;

/* Scalar activation in double, shared by the reference loops. */
double fd_act_apply(fd_act a, double v);

#endif
