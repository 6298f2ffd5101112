/* Reductions over all elements, one dim or a set of dims: sum, mean, prod,
 * max/min (values and indices), argmax/argmin, var, std, norm.
 *
 * Sums accumulate in double for floats (a sum of 10^7 f32 values keeps
 * ~1e-9 relative error) and in int64 for integers (exact; sum and prod wrap
 * on overflow like torch); var/std take two passes (mean, then squared
 * deviations). Index results are i64, counted from args->index_base (the Lua
 * binding passes 1) in row-major order over the reduced dims.
 *
 * Output dtypes follow torch: sum/prod of integers or bool give i64; mean,
 * var, std and norm of integers give f32; max/min keep the dtype. */
#ifndef FD_REDUCE_H
#define FD_REDUCE_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

typedef enum fd_reduce_op {
    FD_SUM, FD_MEAN, FD_PROD, FD_MAX, FD_MIN, FD_ARGMAX, FD_ARGMIN, FD_VAR, FD_STD, FD_NORM,
    FD_NREDUCE
} fd_reduce_op;

typedef struct fd_reduce_args {
    uint32_t dims;       /* bit d set: reduce 0-based dim d; 0 means every dim */
    bool keepdim;        /* reduced dims stay as size 1 */
    int correction;      /* var/std divide by n - correction (1: unbiased) */
    double p;            /* norm: p > 0, INFINITY for the max norm */
    int64_t index_base;  /* added to every index written */
} fd_reduce_args;

const char *fd_reduce_name(fd_reduce_op op);

/* Values into `out` (for argmax/argmin: the indices). For max/min, `idx`
 * (may be NULL) receives the indices of the first extremum. Both released
 * on entry and on failure. NaN wins max and min, as in torch. */
int fd_reduce(fd_tensor *out, fd_tensor *idx, fd_reduce_op op, const fd_tensor *a, const fd_reduce_args *args);

#endif
