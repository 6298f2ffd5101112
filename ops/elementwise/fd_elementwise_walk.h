/* What the elementwise ops (fd_binary.c, fd_unary.c, fd_where.c) share,
 * defined in fd_elementwise.c: the parallel strided walk, scalar operands,
 * and making or checking the output. Internal to ops/elementwise. */
#ifndef FD_ELEMENTWISE_WALK_H
#define FD_ELEMENTWISE_WALK_H

#include "ops/elementwise/fd_elementwise.h"

/* The kernels never read errno or FP exception flags; without these GCC
 * will not vectorise sqrtf or if-convert the selects in max/min/clamp/exp.
 * (Every file that includes this header is compiled so, from here on.) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-math-errno", "no-trapping-math")
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/common/fd_blocks.h"

#define PAR_MIN 32768   /* below this, threads cost more than they save */
#define FAST_COLS 8192  /* columns per task on the fast path */

/* ---- parallel strided walks -------------------------------------------- */

/* Called with up to FD_BLOCK elements: p[k] is operand k's first element,
 * s[k] its stride in elements. */
typedef void (*block_fn)(const void *ctx, char *const *p, const int64_t *s, int64_t n);

typedef struct walk_job {
    int nops;
    char *base[FD_WALK_MAX_OPS];
    size_t es[FD_WALK_MAX_OPS];
    block_fn fn;
    const void *ctx;
    int64_t chunk; /* elements per fn call; 0: FD_BLOCK (what the double buffers hold) */
} walk_job;

/* Walks operands of one shape in parallel: whole runs per thread when there
 * are enough of them, else slices of each run; tiles for transposed reads. */
void fd_ew_parallel_walk(const walk_job *j, int ndim, const int64_t *shape, const int64_t *const *strides);

/* ---- scalars ------------------------------------------------------------ */

/* A Lua number as a 0-d tensor over storage on the stack: only read, never
 * retained or released. f32 when the op computes in f32 (so the fast path
 * takes it), else f64. */
typedef struct scalar_operand {
    fd_storage storage;
    union { float f; double d; } v;
    fd_tensor t;
} scalar_operand;
const fd_tensor *fd_ew_scalar_tensor(scalar_operand *s, double v, fd_dtype compute);

/* The type a tensor of type `dt` computes in with a scalar: floats keep
 * theirs; integers stay integral with an integral scalar (bool becomes
 * i64), and become f32 with a fractional one. */
fd_dtype fd_ew_scalar_compute_dtype(fd_dtype dt, bool s_is_int);

/* ---- outputs ------------------------------------------------------------ */

/* Permutes a walk's dims into the memory order of operand 0 (its largest
 * stride first), shape and every operand's strides alike, so that a
 * channels-last output is walked in unit-stride runs. A no-op when operand 0
 * is contiguous. */
void fd_ew_memory_order(int nd, int64_t *shape, int nops, int64_t *const *strides);

/* Makes `out` (released: a new tensor) or checks it (live: in place / out=).
 * Inputs that share storage with a live out in another layout are copied
 * into tmp[k] first and ins[k] is pointed at the copy. */
int fd_ew_prepare_out(const char *name, fd_tensor *out, fd_dtype rdt, int nd, const int64_t *shape,
                      const fd_tensor **ins, fd_tensor *tmp, int nin);

#endif
