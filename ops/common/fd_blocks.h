/* Strided blocks of any dtype to and from double buffers: the generic paths
 * of the elementwise, reduction and indexing ops compute on these, so each
 * op is written once instead of once per dtype. */
#ifndef FD_BLOCKS_H
#define FD_BLOCKS_H

#include "runtime/core/fd_tensor.h"

/* Elements per block: small enough to stay in L1 (3 x 2 KiB). */
#define FD_BLOCK 256

/* dst[i] = src[i * stride] for i < n (stride in elements of dt). */
void fd_load_block(double *dst, const void *src, int64_t stride, fd_dtype dt, int64_t n);
/* dst[i * stride] = src[i], with fd_store_f64's rounding and saturation. */
void fd_store_block(void *dst, int64_t stride, fd_dtype dt, const double *src, int64_t n);

/* dst[i] = src[i * stride] as int64 (exact for every integer dtype; floats
 * truncate toward zero and saturate), for the exact integer kernels. */
void fd_load_block_i64(int64_t *dst, const void *src, int64_t stride, fd_dtype dt, int64_t n);

/* Whether a result of type `from` may be written into a tensor of type `to`
 * in place (torch's rule: no float into integers, nothing but bool into bool). */
bool fd_can_cast(fd_dtype from, fd_dtype to);

/* Whether two views share storage without being the same view (same
 * offset, shape and strides): writing one while reading the other in
 * blocks could read values already overwritten. */
bool fd_views_overlap(const fd_tensor *a, const fd_tensor *b);

#endif
