/* Multi-head scaled dot-product attention with extra (reference) tokens and
 * a mask, forward and backward: the flash-style fast kernels
 * (fd_attention.c, fd_attention_backward.c, sharing fd_attention_tiles.c)
 * and the textbook reference (fd_attention_ref.c).
 * Conventions of the nn ops: ops/common/fd_nn_common.h. */
#ifndef FD_ATTENTION_H
#define FD_ATTENTION_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

/* q [B, Nq, C], k and v [B, Nk, C]; extra_k, extra_v [B or 1, Ne, C] are
 * appended to the keys/values (reference tokens); mask broadcastable to
 * [B, heads, Nq, Nk + Ne]: bool/u8 (true = attend) or float (added to the
 * scaled scores). scale 0 means 1/sqrt(C / heads). A query row that attends
 * to nothing gives 0 (torch gives NaN). bf16: the forward's two products may
 * round their operands to bf16 (AMX tiles, fd_attention_amx.c) where the CPU
 * has them; the softmax and every sum stay f32. */
typedef struct fd_attention_args {
    int64_t heads;
    double scale;
    const fd_tensor *extra_k, *extra_v, *mask;
    bool bf16;
} fd_attention_args;
/* o [B, Nq, C]; lse [B, heads, Nq] f32: the row logsumexp the backward needs. */
int fd_attention(fd_tensor *o, fd_tensor *lse, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                 const fd_attention_args *a);
/* dek, dev only when extra tokens are given (shaped like them). */
int fd_attention_backward(fd_tensor *dq, fd_tensor *dk, fd_tensor *dv, fd_tensor *dek, fd_tensor *dev,
                          const fd_tensor *dout, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                          const fd_tensor *o, const fd_tensor *lse, const fd_attention_args *a);
int fd_ref_attention(fd_tensor *o, fd_tensor *lse, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                     const fd_attention_args *a);
int fd_ref_attention_backward(fd_tensor *dq, fd_tensor *dk, fd_tensor *dv, fd_tensor *dek, fd_tensor *dev,
                              const fd_tensor *dout, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                              const fd_tensor *o, const fd_tensor *lse, const fd_attention_args *a);

#endif
