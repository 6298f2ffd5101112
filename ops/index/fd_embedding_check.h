/* What both embedding paths share (fd_embedding_check.c): the fast kernels
 * in fd_embedding.c and the reference in fd_embedding_ref.c read the indices
 * the same way. */
#ifndef FD_EMBEDDING_CHECK_H
#define FD_EMBEDDING_CHECK_H

#include "ops/index/fd_embedding.h"

/* The indices idx as i64 in *is, each checked to lie in [0, V). */
int fd_nn_embedding_check(const char *op, const fd_tensor *idx, int64_t V, fd_tensor *is);

#endif
