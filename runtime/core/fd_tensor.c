/* Tensor headers: creation, views, broadcasting, strided walks, copies. */
#include "runtime/core/fd_tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- shapes ----------------------------------------------------------- */

int fd_shape_numel(int ndim, const int64_t *shape, int64_t *numel)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return fd_fail("size %lld of dim %d is negative", (long long)shape[i], i + 1);
        if (shape[i] != 0 && n > INT64_MAX / shape[i])
            return fd_fail("shape %s has more elements than fit in 64 bits",
                           fd_shape_str((char[128]){0}, 128, ndim, shape));
        n *= shape[i];
    }
    *numel = n;
    return FD_OK;
}

char *fd_shape_str(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, n - at, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}

void fd_contiguous_strides(int ndim, const int64_t *shape, int64_t *stride)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        stride[i] = s;
        s *= shape[i] > 0 ? shape[i] : 1;
    }
}

void fd_memory_order(int ndim, const int64_t *stride, int *perm)
{
    for (int i = 0; i < ndim; i++) {
        int j = i;
        for (; j > 0 && llabs(stride[perm[j - 1]]) < llabs(stride[i]); j--) perm[j] = perm[j - 1];
        perm[j] = i;
    }
}

void fd_strides_in_order(int ndim, const int64_t *shape, const int *perm, int64_t *stride)
{
    int64_t s = 1;
    for (int k = ndim - 1; k >= 0; k--) {
        stride[perm[k]] = s;
        s *= shape[perm[k]] > 0 ? shape[perm[k]] : 1;
    }
}

bool fd_tensor_is_dense_permuted(const fd_tensor *t, int *perm)
{
    if (t->block || fd_tensor_is_contiguous(t)) return false;
    int64_t st[FD_MAX_DIMS];
    fd_memory_order(t->ndim, t->stride, perm);
    fd_strides_in_order(t->ndim, t->shape, perm, st);
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > 1 && t->stride[d] != st[d]) return false;
    return true;
}

int fd_tensor_empty_in_order_of(fd_tensor *out, fd_dtype dt, int ndim, const int64_t *shape, const fd_tensor *like)
{
    if (fd_tensor_empty(out, dt, ndim, shape)) return FD_ERR;
    int perm[FD_MAX_DIMS];
    if (like && like->ndim == ndim && !memcmp(like->shape, shape, sizeof(int64_t) * (size_t)ndim) &&
        fd_tensor_is_dense_permuted(like, perm))
        fd_strides_in_order(ndim, shape, perm, out->stride);
    return FD_OK;
}

/* ---- making and dropping ---------------------------------------------- */

int fd_tensor_empty(fd_tensor *out, fd_dtype dt, int ndim, const int64_t *shape)
{
    memset(out, 0, sizeof *out);
    if (ndim < 0 || ndim > FD_MAX_DIMS)
        return fd_fail("a tensor has 0 to %d dims, got %d", FD_MAX_DIMS, ndim);
    if ((unsigned)dt >= FD_NDTYPES) return fd_fail("invalid dtype code %d", (int)dt);
    int64_t numel;
    if (fd_shape_numel(ndim, shape, &numel)) return FD_ERR;
    size_t es = fd_dtype_size(dt);
    if ((uint64_t)numel > (uint64_t)INT64_MAX / es)
        return fd_fail("shape %s of %s needs more bytes than fit in 64 bits",
                       fd_shape_str((char[128]){0}, 128, ndim, shape), fd_dtype_name(dt));
    if (fd_storage_new(&out->storage, (size_t)numel * es)) return FD_ERR;
    out->dtype = dt;
    out->ndim = ndim;
    if (ndim > 0) memcpy(out->shape, shape, sizeof(int64_t) * (size_t)ndim); /* shape may be NULL for a scalar */
    fd_contiguous_strides(ndim, shape, out->stride);
    return FD_OK;
}

int fd_tensor_zeros(fd_tensor *out, fd_dtype dt, int ndim, const int64_t *shape)
{
    if (fd_tensor_empty(out, dt, ndim, shape)) return FD_ERR;
    memset(out->storage->data, 0, (size_t)fd_tensor_numel(out) * fd_dtype_size(dt));
    return FD_OK;
}

int fd_tensor_empty_like(fd_tensor *out, const fd_tensor *like)
{
    return fd_tensor_empty(out, like->dtype, like->ndim, like->shape);
}

int fd_tensor_empty_as(fd_tensor *out, const fd_tensor *like, fd_dtype dt)
{
    return fd_tensor_empty(out, dt, like->ndim, like->shape);
}

void fd_tensor_view_of(fd_tensor *out, const fd_tensor *src)
{
    *out = *src;
    if (out->storage) fd_storage_retain(out->storage);
}

void fd_tensor_release(fd_tensor *t)
{
    if (t->storage) fd_storage_release(t->storage);
    t->storage = NULL;
}

/* ---- facts ------------------------------------------------------------ */

int64_t fd_tensor_numel(const fd_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

bool fd_tensor_is_contiguous(const fd_tensor *t)
{
    if (t->block) return false; /* contiguous, but not in NCHW order */
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

/* ---- views ------------------------------------------------------------ */

int fd_dim_index(const char *op, int dim, int ndim, int extra, int *out)
{
    int n = ndim + extra;
    int d = dim < 0 ? dim + n : dim;
    if (d < 0 || d >= n || (n == 0))
        return fd_fail("%s: dim %d out of range for a tensor of %d dims", op, dim >= 0 ? dim + 1 : dim, ndim);
    *out = d;
    return FD_OK;
}

int fd_view_reshape(fd_tensor *t, int ndim, const int64_t *shape_in)
{
    if (ndim > FD_MAX_DIMS) return fd_fail("view: at most %d dims, got %d", FD_MAX_DIMS, ndim);
    int64_t shape[FD_MAX_DIMS], numel = fd_tensor_numel(t), known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        shape[i] = shape_in[i];
        if (shape[i] == -1) {
            if (infer >= 0) return fd_fail("view: only one dim may be -1");
            infer = i;
        } else if (shape[i] < 0) {
            return fd_fail("view: size %lld of dim %d is negative", (long long)shape[i], i + 1);
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || numel % known)
            return fd_fail("view: cannot infer dim %d of %s for %lld elements", infer + 1,
                           fd_shape_str((char[128]){0}, 128, ndim, shape_in), (long long)numel);
        shape[infer] = numel / known;
        known *= shape[infer];
    }
    if (known != numel)
        return fd_fail("view: shape %s has %lld elements, the tensor %s has %lld",
                       fd_shape_str((char[128]){0}, 128, ndim, shape), (long long)known, FD_SHAPE_STR(t),
                       (long long)numel);
    /* New strides exist when every run of old dims that is contiguous within
     * itself ("chunk") is covered exactly by a run of new dims. */
    int64_t stride[FD_MAX_DIMS];
    if (t->ndim == 0 || numel == 0) {
        fd_contiguous_strides(ndim, shape, stride);
    } else {
        int nd = ndim - 1;
        int64_t base = t->stride[t->ndim - 1], chunk = 1, covered = 1;
        for (int od = t->ndim - 1; od >= 0; od--) {
            chunk *= t->shape[od];
            bool chunk_ends = od == 0 || (t->shape[od - 1] != 1 && t->stride[od - 1] != chunk * base);
            if (!chunk_ends) continue;
            while (nd >= 0 && (covered < chunk || shape[nd] == 1)) {
                stride[nd] = covered * base;
                covered *= shape[nd];
                nd--;
            }
            if (covered != chunk) goto not_viewable;
            if (od > 0) {
                base = t->stride[od - 1];
                chunk = covered = 1;
            }
        }
        if (nd != -1) goto not_viewable;
    }
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    memcpy(t->stride, stride, sizeof(int64_t) * (size_t)ndim);
    return FD_OK;
not_viewable:
    return fd_fail("view: a tensor %s with strides that are not contiguous cannot be viewed as %s; "
                   "call :contiguous() first or use reshape",
                   FD_SHAPE_STR(t), fd_shape_str((char[128]){0}, 128, ndim, shape));
}

int fd_view_narrow(fd_tensor *t, int dim, int64_t start, int64_t length)
{
    int d;
    if (fd_dim_index("narrow", dim, t->ndim, 0, &d)) return FD_ERR;
    if (start < 0 || length < 0 || start + length > t->shape[d])
        return fd_fail("narrow: start %lld length %lld out of range for dim %d of size %lld", (long long)start + 1,
                       (long long)length, d + 1, (long long)t->shape[d]);
    t->offset += start * t->stride[d];
    t->shape[d] = length;
    return FD_OK;
}

int fd_view_select(fd_tensor *t, int dim, int64_t index)
{
    int d;
    if (fd_dim_index("select", dim, t->ndim, 0, &d)) return FD_ERR;
    if (index < 0 || index >= t->shape[d])
        return fd_fail("select: index %lld out of range for dim %d of size %lld", (long long)index + 1, d + 1,
                       (long long)t->shape[d]);
    t->offset += index * t->stride[d];
    for (int i = d; i < t->ndim - 1; i++) {
        t->shape[i] = t->shape[i + 1];
        t->stride[i] = t->stride[i + 1];
    }
    t->ndim--;
    return FD_OK;
}

int fd_view_transpose(fd_tensor *t, int dim0, int dim1)
{
    int a, b;
    if (fd_dim_index("transpose", dim0, t->ndim, 0, &a) || fd_dim_index("transpose", dim1, t->ndim, 0, &b))
        return FD_ERR;
    int64_t s = t->shape[a], st = t->stride[a];
    t->shape[a] = t->shape[b], t->stride[a] = t->stride[b];
    t->shape[b] = s, t->stride[b] = st;
    return FD_OK;
}

int fd_view_permute(fd_tensor *t, const int *perm)
{
    int64_t shape[FD_MAX_DIMS], stride[FD_MAX_DIMS];
    bool seen[FD_MAX_DIMS] = {0};
    for (int i = 0; i < t->ndim; i++) {
        int d;
        if (fd_dim_index("permute", perm[i], t->ndim, 0, &d)) return FD_ERR;
        if (seen[d]) return fd_fail("permute: dim %d appears twice", d + 1);
        seen[d] = true;
        shape[i] = t->shape[d];
        stride[i] = t->stride[d];
    }
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)t->ndim);
    memcpy(t->stride, stride, sizeof(int64_t) * (size_t)t->ndim);
    return FD_OK;
}

int fd_view_expand(fd_tensor *t, int ndim, const int64_t *shape)
{
    if (ndim < t->ndim || ndim > FD_MAX_DIMS)
        return fd_fail("expand: the tensor %s cannot expand to %s (fewer dims)", FD_SHAPE_STR(t),
                       fd_shape_str((char[128]){0}, 128, ndim, shape));
    int64_t nshape[FD_MAX_DIMS], nstride[FD_MAX_DIMS];
    int lead = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int64_t have = i >= lead ? t->shape[i - lead] : 1;
        int64_t st = i >= lead ? t->stride[i - lead] : 0;
        int64_t want = shape[i] == -1 ? have : shape[i];
        if (i < lead && shape[i] == -1)
            return fd_fail("expand: -1 is not allowed for the new leading dim %d", i + 1);
        if (want != have) {
            if (have != 1)
                return fd_fail("expand: the tensor %s cannot expand to %s (dim %d is %lld, not 1)", FD_SHAPE_STR(t),
                               fd_shape_str((char[128]){0}, 128, ndim, shape), i + 1, (long long)have);
            st = 0;
        }
        nshape[i] = want;
        nstride[i] = st;
    }
    t->ndim = ndim;
    memcpy(t->shape, nshape, sizeof(int64_t) * (size_t)ndim);
    memcpy(t->stride, nstride, sizeof(int64_t) * (size_t)ndim);
    return FD_OK;
}

int fd_view_squeeze(fd_tensor *t, int dim)
{
    if (dim == -1 && t->ndim > 0) { /* all size-1 dims */
        int n = 0;
        for (int i = 0; i < t->ndim; i++)
            if (t->shape[i] != 1) { t->shape[n] = t->shape[i]; t->stride[n] = t->stride[i]; n++; }
        t->ndim = n;
        return FD_OK;
    }
    int d;
    if (fd_dim_index("squeeze", dim, t->ndim, 0, &d)) return FD_ERR;
    if (t->shape[d] != 1) return FD_OK; /* torch leaves other dims alone */
    return fd_view_select(t, d, 0);
}

int fd_view_unsqueeze(fd_tensor *t, int dim)
{
    int d;
    if (t->ndim >= FD_MAX_DIMS) return fd_fail("unsqueeze: a tensor has at most %d dims", FD_MAX_DIMS);
    if (fd_dim_index("unsqueeze", dim, t->ndim, 1, &d)) return FD_ERR;
    for (int i = t->ndim; i > d; i--) {
        t->shape[i] = t->shape[i - 1];
        t->stride[i] = t->stride[i - 1];
    }
    t->shape[d] = 1;
    t->stride[d] = d + 1 < t->ndim + 1 ? t->stride[d + 1] * t->shape[d + 1] : 1;
    t->ndim++;
    return FD_OK;
}

/* ---- broadcasting ----------------------------------------------------- */

int fd_broadcast_shape(const char *op, int na, const int64_t *a, int nb, const int64_t *b, int *out_ndim,
                       int64_t *out)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t da = i - (n - na) >= 0 ? a[i - (n - na)] : 1;
        int64_t db = i - (n - nb) >= 0 ? b[i - (n - nb)] : 1;
        if (da != db && da != 1 && db != 1)
            return fd_fail("%s: shapes %s and %s do not broadcast (dim %d: %lld vs %lld)", op,
                           fd_shape_str((char[128]){0}, 128, na, a), fd_shape_str((char[128]){0}, 128, nb, b),
                           i + 1, (long long)da, (long long)db);
        out[i] = da == 1 ? db : da;
    }
    *out_ndim = n;
    return FD_OK;
}

void fd_broadcast_strides(const fd_tensor *t, int ndim, const int64_t *shape, int64_t *stride)
{
    int lead = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        stride[i] = (j < 0 || (t->shape[j] == 1 && shape[i] != 1)) ? 0 : t->stride[j];
    }
}

/* ---- strided walks ---------------------------------------------------- */

void fd_walk_init(fd_walk *w, int ndim, const int64_t *shape, int nops, const int64_t *const *strides)
{
    memset(w, 0, sizeof *w);
    w->nops = nops;
    /* drop size-1 dims, then merge neighbours that are contiguous for every operand */
    int n = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) w->empty = true;
        if (shape[i] == 1) continue;
        bool merge = n > 0;
        for (int k = 0; merge && k < nops; k++)
            merge = w->stride[k][n - 1] == strides[k][i] * shape[i];
        if (merge) {
            w->shape[n - 1] *= shape[i];
            for (int k = 0; k < nops; k++) w->stride[k][n - 1] = strides[k][i];
        } else {
            w->shape[n] = shape[i];
            for (int k = 0; k < nops; k++) w->stride[k][n] = strides[k][i];
            n++;
        }
    }
    if (n == 0) { /* a scalar or all size-1: one run of one element */
        w->shape[0] = 1;
        n = 1;
    }
    w->ndim = n;
    w->inner_len = w->shape[n - 1];
    for (int k = 0; k < nops; k++) w->inner_stride[k] = w->stride[k][n - 1];
}

bool fd_walk_next(fd_walk *w)
{
    for (int d = w->ndim - 2; d >= 0; d--) {
        w->index[d]++;
        for (int k = 0; k < w->nops; k++) w->offset[k] += w->stride[k][d];
        if (w->index[d] < w->shape[d]) return true;
        for (int k = 0; k < w->nops; k++) w->offset[k] -= w->stride[k][d] * w->shape[d];
        w->index[d] = 0;
    }
    return false;
}

void fd_walk_seek(fd_walk *w, int64_t start)
{
    int64_t run = start / w->inner_len;
    for (int k = 0; k < w->nops; k++) w->offset[k] = 0;
    for (int d = w->ndim - 2; d >= 0; d--) {
        w->index[d] = run % w->shape[d];
        run /= w->shape[d];
        for (int k = 0; k < w->nops; k++) w->offset[k] += w->index[d] * w->stride[k][d];
    }
}

/* ---- data movement ---------------------------------------------------- */

/* One run of a copy: n elements at strides ds (dst) and ss (src), in elements. */
static void copy_run(char *d, fd_dtype dt, int64_t ds, const char *s, fd_dtype st, int64_t ss, int64_t n)
{
    size_t des = fd_dtype_size(dt), ses = fd_dtype_size(st);
    bool same = dt == st;
    if (same && ds == 1 && ss == 1) {
        memmove(d, s, (size_t)n * des);
    } else if (same && des == 4) { /* typed loops: a memcpy call per element is ~10x slower */
        for (int64_t i = 0; i < n; i++) ((uint32_t *)d)[i * ds] = ((const uint32_t *)s)[i * ss];
    } else if (same && des == 2) {
        for (int64_t i = 0; i < n; i++) ((uint16_t *)d)[i * ds] = ((const uint16_t *)s)[i * ss];
    } else if (same) {
        for (int64_t i = 0; i < n; i++) memcpy(d + i * ds * (int64_t)des, s + i * ss * (int64_t)ses, des);
    } else if (dt == FD_F32 && ds == 1 && ss == 1) {
        fd_convert_to_f32((float *)d, s, st, n);
    } else if (st == FD_F32 && ds == 1 && ss == 1) {
        fd_convert_from_f32(d, dt, (const float *)s, n);
    } else {
        for (int64_t i = 0; i < n; i++)
            fd_store_f64(d + i * ds * (int64_t)des, dt, fd_load_f64(s + i * ss * (int64_t)ses, st));
    }
}

int fd_tensor_copy_(fd_tensor *dst, const fd_tensor *src)
{
    if (dst->block || src->block) return fd_tensor_copy_blocked_(dst, src);
    int nd;
    int64_t shape[FD_MAX_DIMS];
    if (fd_broadcast_shape("copy", dst->ndim, dst->shape, src->ndim, src->shape, &nd, shape)) return FD_ERR;
    if (nd != dst->ndim || memcmp(shape, dst->shape, sizeof(int64_t) * (size_t)nd) != 0)
        return fd_fail("copy: source %s does not broadcast to destination %s", FD_SHAPE_STR(src), FD_SHAPE_STR(dst));
    int64_t src_stride[FD_MAX_DIMS];
    fd_broadcast_strides(src, dst->ndim, dst->shape, src_stride);
    /* Walk in the destination's memory order (dims by falling stride), so a
     * channels-last or transposed destination is written in runs rather than
     * strided, and same-layout copies collapse to one run. */
    int perm[FD_MAX_DIMS];
    fd_memory_order(nd, dst->stride, perm);
    int64_t wshape[FD_MAX_DIMS], wdst[FD_MAX_DIMS], wsrc[FD_MAX_DIMS];
    for (int i = 0; i < nd; i++) wshape[i] = dst->shape[perm[i]], wdst[i] = dst->stride[perm[i]], wsrc[i] = src_stride[perm[i]];
    const int64_t *strides[2] = {wdst, wsrc};
    fd_walk w;
    fd_walk_init(&w, nd, wshape, 2, strides);
    fd_tensor_bump_version(dst);
    if (w.empty) return FD_OK;
    const int64_t des = (int64_t)fd_dtype_size(dst->dtype), ses = (int64_t)fd_dtype_size(src->dtype);
    char *d0 = fd_tensor_data(dst);
    const char *s0 = fd_tensor_data(src);
    const int64_t numel = fd_tensor_numel(dst), runs = numel / w.inner_len;
    /* large copies between two storages split their runs across the threads (the
     * transposing copies of training run one element at a time); within one storage,
     * or into a broadcast destination, the runs stay in order as the serial walk has them */
    bool split = runs > 1 && numel * des >= (1 << 20) && dst->storage != src->storage;
    for (int i = 0; i < nd; i++) split = split && (wdst[i] != 0 || wshape[i] == 1); /* no element written twice */
    /* (chunks of runs rather than the OpenMP API: the fuzz targets build this file without OpenMP) */
    const int64_t chunks = split ? (runs < 16 ? runs : 16) : 1;
#pragma omp parallel for schedule(static) if (split)
    for (int64_t c = 0; c < chunks; c++) {
        const int64_t r0 = runs * c / chunks, r1 = runs * (c + 1) / chunks;
        fd_walk wt = w;
        if (r0 > 0) fd_walk_seek(&wt, r0 * w.inner_len);
        for (int64_t r = r0; r < r1; r++, fd_walk_next(&wt))
            copy_run(d0 + wt.offset[0] * des, dst->dtype, wt.inner_stride[0], s0 + wt.offset[1] * ses, src->dtype,
                     wt.inner_stride[1], wt.inner_len);
    }
    return FD_OK;
}

int fd_tensor_fill_(fd_tensor *dst, double value)
{
    char one[8];
    fd_store_f64(one, dst->dtype, value);
    fd_walk w;
    const int64_t *strides[1] = {dst->stride};
    fd_walk_init(&w, dst->ndim, dst->shape, 1, strides);
    fd_tensor_bump_version(dst);
    if (w.empty) return FD_OK;
    size_t es = fd_dtype_size(dst->dtype);
    char *d0 = fd_tensor_data(dst);
    do {
        char *d = d0 + w.offset[0] * (int64_t)es;
        if (value == 0 && w.inner_stride[0] == 1) {
            memset(d, 0, (size_t)w.inner_len * es);
            continue;
        }
        for (int64_t i = 0; i < w.inner_len; i++) memcpy(d + i * w.inner_stride[0] * (int64_t)es, one, es);
    } while (fd_walk_next(&w));
    return FD_OK;
}

int fd_tensor_contiguous(fd_tensor *out, const fd_tensor *src)
{
    if (fd_tensor_is_contiguous(src)) {
        fd_tensor_view_of(out, src);
        return FD_OK;
    }
    return fd_tensor_clone(out, src);
}

int fd_tensor_clone(fd_tensor *out, const fd_tensor *src)
{
    return fd_tensor_to_dtype(out, src, src->dtype);
}

int fd_tensor_to_dtype(fd_tensor *out, const fd_tensor *src, fd_dtype dt)
{
    if (fd_tensor_empty_as(out, src, dt)) return FD_ERR;
    if (fd_tensor_copy_(out, src)) {
        fd_tensor_release(out);
        return FD_ERR;
    }
    return FD_OK;
}
