/* Elementwise ops: broadcasting binary arithmetic and comparisons, unary
 * math, clamp and where.
 *
 * Every op writes into `out`, which is either released on entry (a new
 * contiguous tensor of the result's shape and dtype is made) or a live
 * tensor of exactly the broadcast shape (the in-place and out= forms: `out`
 * may be `a` itself; its dtype must be able to hold the result, and its
 * version is bumped). On failure a released `out` stays released.
 *
 * Result dtypes follow torch: a binary op computes in fd_dtype_promote(a, b);
 * div, and the float functions (exp, log, ...) on integers give f32;
 * comparisons give bool. A scalar operand does not promote a float tensor;
 * an integer tensor with a non-integral scalar computes in f32, a bool
 * tensor with an integral scalar in i64.
 *
 * Integer arithmetic runs in int64 and wraps on overflow like torch's (u8
 * 1 - 3 is 254, i64 stays exact beyond 2^53); remainder by 0 gives 0 where
 * torch raises; negative integer powers truncate (only 1 and -1 survive).
 * Float results stored into integers truncate and saturate (fd_store_f64). */
#ifndef FD_ELEMENTWISE_H
#define FD_ELEMENTWISE_H

#include <stdbool.h>

#include "runtime/core/fd_tensor.h"

typedef enum fd_binop {
    FD_ADD, FD_SUB, FD_MUL, FD_DIV, FD_POW, FD_MAXIMUM, FD_MINIMUM, FD_REMAINDER,
    FD_EQ, FD_NE, FD_LT, FD_LE, FD_GT, FD_GE,
    FD_NBINOPS
} fd_binop;

typedef enum fd_unop {
    FD_NEG, FD_EXP, FD_LOG, FD_SQRT, FD_RSQRT, FD_ABS, FD_TANH, FD_SIGMOID,
    FD_SIN, FD_COS, FD_FLOOR, FD_ROUND, FD_SIGN,
    FD_NUNOPS
} fd_unop;

const char *fd_binop_name(fd_binop op); /* "add", "eq", ... */
const char *fd_unop_name(fd_unop op);   /* "neg", "exp", ... */
bool fd_binop_is_comparison(fd_binop op);

/* out = a op b, broadcasting. */
int fd_binary(fd_tensor *out, fd_binop op, const fd_tensor *a, const fd_tensor *b);
/* out = a op s, or s op a when `scalar_first`. `s_is_int` says the scalar is
 * an integer (a Lua integer), which keeps integer tensors integral. */
int fd_binary_scalar(fd_tensor *out, fd_binop op, const fd_tensor *a, double s, bool s_is_int, bool scalar_first);

/* out = op(a). */
int fd_unary(fd_tensor *out, fd_unop op, const fd_tensor *a);
/* out = min(max(a, lo), hi); a NaN bound means "no bound". */
int fd_clamp(fd_tensor *out, const fd_tensor *a, double lo, double hi);

/* out = cond ? a : b (cond nonzero), broadcasting all three. a or b may be
 * NULL, then the scalar sa / sb stands in (see fd_binary_scalar for its dtype). */
int fd_where(fd_tensor *out, const fd_tensor *cond, const fd_tensor *a, double sa, bool sa_is_int,
             const fd_tensor *b, double sb, bool sb_is_int);

#endif
