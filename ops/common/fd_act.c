/* The scalar form of the fused activation, for the reference loops of
 * conv2d and linear (see fd_act.h). */
#include <math.h>

#include "ops/common/fd_act.h"

double fd_act_apply(fd_act a, double v)
{
    switch (a) {
    case FD_ACT_SILU: return v / (1.0 + exp(-v));
    case FD_ACT_GELU: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));
    case FD_ACT_GELU_TANH: return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
    case FD_ACT_RELU: return v > 0 ? v : 0;
    default: return v;
    }
}
