/* The shape logic both matmul paths share (fd_matmul_check.c): the fast
 * kernels in fd_matmul.c and the reference loops in fd_matmul_ref.c check,
 * plan and reduce their operands the same way, and neither takes this from
 * the other. */
#ifndef FD_MATMUL_CHECK_H
#define FD_MATMUL_CHECK_H

#include "ops/matmul/fd_matmul.h"

/* t must be f32 or f64, and of like's dtype when like is given. */
int fd_matmul_check_dtype(const char *op, const char *what, const fd_tensor *t, const fd_tensor *like);

/* fd_matmul_plan promotes 1-d operands, applies the transposes and
 * broadcasts batch dims: A [B..., M, K] and Bm [B'..., K, N] become views
 * with the same ndim (batch dims of size 1 where broadcast), out_shape is the
 * final torch shape (1-d dims removed). */
typedef struct fd_mm_plan {
    fd_tensor a, b;   /* views, nd dims each */
    int nd;
    int64_t full[FD_MAX_DIMS]; /* [batch..., M, N] */
    int out_ndim;
    int64_t out_shape[FD_MAX_DIMS];
} fd_mm_plan;
int fd_matmul_plan(const char *op, const fd_tensor *a, const fd_tensor *b, const fd_mm_opts *o, fd_mm_plan *pl);
void fd_mm_plan_release(fd_mm_plan *pl);
/* A view of g (a gradient in the plan's operand shape) in the shape of the
 * operand `orig`: transposes undone, promoted and leading size-1 dims dropped. */
void fd_mm_unplan(fd_tensor *view, const fd_tensor *g, const fd_tensor *orig, int transposed, int is_b);
int fd_linear_check(const char *op, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b);
/* out (shape `shape`, zeroed here) = full summed over the dims where shape
 * broadcasts to full's shape. */
int fd_sum_to_shape(fd_tensor *out, const fd_tensor *full, int ndim, const int64_t *shape);

#endif
