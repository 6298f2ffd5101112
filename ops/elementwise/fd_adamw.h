/* One AdamW update of a parameter tensor in place, fused: the optimiser's
 * moments and the parameter in one pass over memory instead of the ten tensor
 * ops (and their temporaries) that lua/fada/optim spells it with.
 *
 *   m = b1 m + (1 - b1) g           v = b2 v + (1 - b2) g²
 *   p = p (1 - lr wd) - (lr / bc1) m / (sqrt(v / bc2) + eps)
 *
 * with bc1 = 1 - b1^step and bc2 = 1 - b2^step (bias corrections). p, m and v
 * are f32, contiguous and of the same size; g is any float dtype and layout
 * of that size. fd_ref_adamw_step computes the same in double (the tests'
 * reference). Errors name the argument and both sizes or dtypes. */
#ifndef FD_ADAMW_H
#define FD_ADAMW_H

#include "runtime/core/fd_tensor.h"

typedef struct fd_adamw_args {
    double lr, beta1, beta2, eps, weight_decay;
    int64_t step; /* 1 for the first update */
} fd_adamw_args;

int fd_adamw_step(fd_tensor *p, const fd_tensor *g, fd_tensor *m, fd_tensor *v, const fd_adamw_args *a);
int fd_ref_adamw_step(fd_tensor *p, const fd_tensor *g, fd_tensor *m, fd_tensor *v, const fd_adamw_args *a);

#endif
