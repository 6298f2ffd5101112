/* Embedding: a gather of weight rows by index, and its backward, a
 * scatter-add: the fast kernels (fd_embedding.c) and the reference
 * (fd_embedding_ref.c), which check the indices alike (fd_embedding_check.c).
 * Conventions of the nn ops: ops/common/fd_nn_common.h. */
#ifndef FD_EMBEDDING_H
#define FD_EMBEDDING_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_tensor.h"

/* weight [V, D], idx i64/i32 of any shape -> y [*idx.shape, D]. */
int fd_embedding(fd_tensor *y, const fd_tensor *weight, const fd_tensor *idx);
/* dw [V, D] = scatter-add of dy rows at idx. */
int fd_embedding_backward(fd_tensor *dw, const fd_tensor *dy, const fd_tensor *idx, int64_t num_embeddings);
int fd_ref_embedding(fd_tensor *y, const fd_tensor *weight, const fd_tensor *idx);
int fd_ref_embedding_backward(fd_tensor *dw, const fd_tensor *dy, const fd_tensor *idx, int64_t num_embeddings);

#endif
