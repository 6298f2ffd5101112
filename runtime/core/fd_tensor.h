/* The tensor: a small value header (dtype, shape, element strides, offset)
 * over a refcounted, 64-byte-aligned storage. Views share the storage.
 * Dimension order is PyTorch's (NCHW), so checkpoints map one to one.
 *
 * Ownership: a header that holds a storage owns one reference to it;
 * fd_tensor_release drops it (idempotent: a released header has storage NULL).
 * Functions that make a tensor write it into an `out` header the caller
 * provides, which must be released (or zeroed) on entry. On failure they
 * leave `out` released and return FD_ERR with a message (fd_error.h).
 *
 * Allocation is thread-safe, but ops allocate their outputs before entering
 * OpenMP regions, never inside them. */
#ifndef FD_TENSOR_H
#define FD_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "runtime/core/fd_dtype.h"
#include "runtime/core/fd_error.h"

#define FD_MAX_DIMS 8
#define FD_ALIGN 64

typedef struct fd_storage fd_storage;
struct fd_storage {
    void *data;
    size_t nbytes;
    int refcount;           /* atomic */
    uint64_t version;       /* bumped by every in-place write; caches key on it */
    /* NULL: data came from fd_storage_new (pool). Otherwise called with this
     * storage once the last reference goes (mmap'd weights, foreign buffers). */
    void (*free_fn)(fd_storage *s);
    void *owner;            /* for free_fn */
};

typedef struct fd_tensor {
    fd_storage *storage;    /* NULL when released */
    int64_t offset;         /* in elements */
    int64_t shape[FD_MAX_DIMS];
    int64_t stride[FD_MAX_DIMS]; /* in elements; 0 for broadcast (expanded) dims */
    int ndim;
    fd_dtype dtype;
    /* 0: the strides say where each element lies. FD_CBLOCK (8): a 4-d f32
     * tensor stored as oneDNN's nChw8c, [N, C/8, H, W, 8] contiguous, the
     * layout its AVX2 convolutions want; shape is still the logical [N, C, H, W]
     * and the strides mean nothing. Only conv2d and group_norm read it; the Lua
     * binding turns it back into NCHW before any other op sees it
     * (fd_tensor_block.c). */
    int block;
} fd_tensor;

#define FD_CBLOCK 8

/* ---- storage ---------------------------------------------------------- */
int fd_storage_new(fd_storage **out, size_t nbytes);  /* uninitialised, aligned */
/* Wraps memory the core does not own; free_fn(s) runs when the last ref goes. */
int fd_storage_wrap(fd_storage **out, void *data, size_t nbytes, void (*free_fn)(fd_storage *), void *owner);
void fd_storage_retain(fd_storage *s);
void fd_storage_release(fd_storage *s);

typedef struct fd_memory_stats {
    size_t live_bytes;      /* held by storages now */
    size_t pooled_bytes;    /* freed buffers kept for reuse */
    size_t peak_live_bytes;
    size_t pool_limit;
    uint64_t pool_hits, pool_misses;
    uint64_t acquired_bytes; /* running total of bytes handed out (GC pressure) */
} fd_memory_stats;
void fd_memory_get_stats(fd_memory_stats *st);
void fd_memory_set_pool_limit(size_t bytes);
void fd_memory_trim(void); /* returns every pooled buffer to the system */

/* ---- shapes ----------------------------------------------------------- */
/* Product of the dims into *numel; fails on negative dims or int64 overflow. */
int fd_shape_numel(int ndim, const int64_t *shape, int64_t *numel);
/* "[2, 3, 4]" into buf; returns buf. */
char *fd_shape_str(char *buf, size_t n, int ndim, const int64_t *shape);
#define FD_SHAPE_STR(t) fd_shape_str((char[128]){0}, 128, (t)->ndim, (t)->shape)

/* ---- making and dropping tensors -------------------------------------- */
int fd_tensor_empty(fd_tensor *out, fd_dtype dt, int ndim, const int64_t *shape);
int fd_tensor_zeros(fd_tensor *out, fd_dtype dt, int ndim, const int64_t *shape);
int fd_tensor_empty_like(fd_tensor *out, const fd_tensor *like);          /* contiguous */
int fd_tensor_empty_as(fd_tensor *out, const fd_tensor *like, fd_dtype dt); /* same shape, other dtype */
/* A view: copies the header and takes a reference. */
void fd_tensor_view_of(fd_tensor *out, const fd_tensor *src);
void fd_tensor_release(fd_tensor *t);

/* ---- facts ------------------------------------------------------------ */
int64_t fd_tensor_numel(const fd_tensor *t);
bool fd_tensor_is_contiguous(const fd_tensor *t);
/* Address of the first element (storage data + offset). */
static inline void *fd_tensor_data(const fd_tensor *t)
{
    return (char *)t->storage->data + t->offset * (int64_t)fd_dtype_size(t->dtype);
}
static inline void fd_tensor_bump_version(const fd_tensor *t) { t->storage->version++; }
void fd_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride);
/* perm: the dims of `stride` by falling |stride| (ties keep their order), i.e. the memory order. */
void fd_memory_order(int ndim, const int64_t *stride, int *perm);
/* Dense strides of `shape` laid out in the memory order perm. */
void fd_strides_in_order(int ndim, const int64_t *shape, const int *perm, int64_t *stride);
/* Whether t is dense (no gaps, no overlaps) but not contiguous, e.g. channels-last or a
 * transpose; perm gets its memory order. */
bool fd_tensor_is_dense_permuted(const fd_tensor *t, int *perm);
/* An uninitialised tensor of `shape` in the memory order of `like` when like has that
 * shape and is dense in another order, so that an op's result keeps its operand's layout
 * (as torch's element-wise ops do); else contiguous. like may be NULL. */
int fd_tensor_empty_in_order_of(fd_tensor *out, fd_dtype dt, int ndim, const int64_t *shape, const fd_tensor *like);

/* ---- views: modify the header `t` in place (take a view first) ------- */
int fd_view_reshape(fd_tensor *t, int ndim, const int64_t *shape); /* one dim may be -1; fails if strides don't allow a view */
int fd_view_narrow(fd_tensor *t, int dim, int64_t start, int64_t length); /* 0-based */
int fd_view_select(fd_tensor *t, int dim, int64_t index);                  /* drops dim */
int fd_view_transpose(fd_tensor *t, int dim0, int dim1);
int fd_view_permute(fd_tensor *t, const int *perm);
int fd_view_expand(fd_tensor *t, int ndim, const int64_t *shape);           /* -1 keeps a dim */
int fd_view_squeeze(fd_tensor *t, int dim);                                 /* dim -1: all size-1 dims */
int fd_view_unsqueeze(fd_tensor *t, int dim);
/* Normalises a possibly negative 0-based dim (-1 = last) for a tensor of
 * `ndim` dims (`ndim + 1` positions when `extra` is 1, as unsqueeze needs). */
int fd_dim_index(const char *op, int dim, int ndim, int extra, int *out);

/* ---- data movement ---------------------------------------------------- */
/* dst[...] = src[...], broadcasting src to dst's shape and converting dtype. */
int fd_tensor_copy_(fd_tensor *dst, const fd_tensor *src);
int fd_tensor_fill_(fd_tensor *dst, double value);
/* A contiguous tensor with src's values: a view when src already is one. */
int fd_tensor_contiguous(fd_tensor *out, const fd_tensor *src);
int fd_tensor_clone(fd_tensor *out, const fd_tensor *src);

/* ---- the blocked layout (fd_tensor_block.c) ---------------------------- */
/* 1 if t can be stored blocked: 4-d f32 with C a multiple of FD_CBLOCK. */
bool fd_tensor_can_block(const fd_tensor *t);
/* An uninitialised blocked tensor of logical shape [N, C, H, W]. */
int fd_tensor_empty_blocked(fd_tensor *out, const int64_t shape[4]);
/* x in the blocked layout (a view when it already is); x in the NCHW layout
 * (a view when it is not blocked). */
int fd_tensor_block(fd_tensor *out, const fd_tensor *x);
int fd_tensor_unblock(fd_tensor *out, const fd_tensor *x);
/* fd_tensor_copy_ calls this when either side is blocked. */
int fd_tensor_copy_blocked_(fd_tensor *dst, const fd_tensor *src);
int fd_tensor_to_dtype(fd_tensor *out, const fd_tensor *src, fd_dtype dt);

/* ---- broadcasting and strided walks ---------------------------------- */
/* The broadcast shape of a and b into out_shape; fails naming `op` and both shapes. */
int fd_broadcast_shape(const char *op, int ndim_a, const int64_t *a, int ndim_b, const int64_t *b,
                       int *out_ndim, int64_t *out_shape);
/* Strides of t as seen from a tensor of shape (ndim, shape) it broadcasts to
 * (0 on broadcast dims). Assumes the shapes are compatible. */
void fd_broadcast_strides(const fd_tensor *t, int ndim, const int64_t *shape, int64_t *stride);

/* Walks up to 4 operands of one shape in row-major order, in runs along the
 * innermost (collapsed) dim. Usage:
 *     fd_walk w; fd_walk_init(&w, ndim, shape, nops, strides);
 *     do { ... w.offset[k] is operand k's element offset; w.inner_len elements,
 *          w.inner_stride[k] apart ... } while (fd_walk_next(&w));
 * fd_walk_init collapses dims that are contiguous for every operand, so a
 * contiguous tensor is one run. */
#define FD_WALK_MAX_OPS 4
typedef struct fd_walk {
    int ndim, nops;
    int64_t shape[FD_MAX_DIMS];
    int64_t stride[FD_WALK_MAX_OPS][FD_MAX_DIMS];
    int64_t index[FD_MAX_DIMS];
    int64_t offset[FD_WALK_MAX_OPS];
    int64_t inner_len;
    int64_t inner_stride[FD_WALK_MAX_OPS];
    bool empty;
} fd_walk;
void fd_walk_init(fd_walk *w, int ndim, const int64_t *shape, int nops, const int64_t *const *strides);
bool fd_walk_next(fd_walk *w);
/* Positions the walk at the run that holds flat element `start` (a multiple
 * of inner_len), for splitting a walk across threads. */
void fd_walk_seek(fd_walk *w, int64_t start);

#endif
