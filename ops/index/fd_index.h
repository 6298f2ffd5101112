/* Joining, indexing and comparing tensors: cat, stack, index_select, gather,
 * masked_fill, allclose. (split and chunk are narrow views; the binding
 * makes them.)
 *
 * Dims are 0-based and already normalised. Index tensors hold integers
 * (any integer dtype) counted from `base` (the Lua binding passes 1); an
 * index out of range fails naming the index as the caller wrote it. */
#ifndef FD_INDEX_H
#define FD_INDEX_H

#include <stdbool.h>

#include "runtime/core/fd_tensor.h"

/* Joins n tensors along dim; all other sizes must match. The dtype is the
 * promotion of all inputs. */
int fd_cat(fd_tensor *out, const fd_tensor *const *ts, int n, int dim);
/* Joins n tensors of one shape along a new dim (0..ndim). */
int fd_stack(fd_tensor *out, const fd_tensor *const *ts, int n, int dim);

/* out = a with dim `dim` replaced by the entries `index` (1-D) picks. */
int fd_index_select(fd_tensor *out, const fd_tensor *a, int dim, const fd_tensor *index, int64_t base);
/* out[i][j][k] = a[i][index[i][j][k]][k] for dim 1 (and so on); index has
 * a's number of dims and no size larger than a's outside `dim`. */
int fd_gather(fd_tensor *out, const fd_tensor *a, int dim, const fd_tensor *index, int64_t base);

/* a[mask] = value, in place; mask (bool or u8) broadcasts to a's shape. */
int fd_masked_fill_(fd_tensor *a, const fd_tensor *mask, double value);

/* Whether |a - b| <= atol + rtol * |b| everywhere (broadcasting; NaN is
 * never close; equal infinities are). */
int fd_allclose(bool *result, const fd_tensor *a, const fd_tensor *b, double rtol, double atol);

#endif
