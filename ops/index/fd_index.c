/* cat, stack, index_select, gather, masked_fill, allclose (see fd_index.h).
 * Copies go through fd_tensor_copy_ on narrowed views, so dtype conversion
 * and strides are handled in one place. */
#include "ops/index/fd_index.h"

#include <math.h>
#include <string.h>

#include "ops/common/fd_blocks.h"

static bool is_integer_dtype(fd_dtype dt) { return dt == FD_I32 || dt == FD_I64 || dt == FD_U8; }

static int64_t load_index(const char *p, fd_dtype dt)
{
    switch (dt) {
    case FD_I32: return *(const int32_t *)p;
    case FD_I64: return *(const int64_t *)p;
    case FD_U8: return *(const uint8_t *)p;
    default: return 0;
    }
}

/* ---- cat and stack ------------------------------------------------------ */

int fd_cat(fd_tensor *out, const fd_tensor *const *ts, int n, int dim)
{
    memset(out, 0, sizeof *out);
    if (n < 1) return fd_fail("cat: expects at least one tensor");
    const fd_tensor *t0 = ts[0];
    if (dim < 0 || dim >= t0->ndim)
        return fd_fail("cat: dim %d out of range for tensors of %d dims", dim + 1, t0->ndim);
    int64_t shape[FD_MAX_DIMS];
    memcpy(shape, t0->shape, sizeof shape);
    shape[dim] = 0;
    fd_dtype dt = t0->dtype;
    for (int i = 0; i < n; i++) {
        const fd_tensor *t = ts[i];
        if (t->ndim != t0->ndim)
            return fd_fail("cat: tensor %d has %d dims %s, tensor 1 has %d %s", i + 1, t->ndim, FD_SHAPE_STR(t),
                           t0->ndim, FD_SHAPE_STR(t0));
        for (int d = 0; d < t0->ndim; d++)
            if (d != dim && t->shape[d] != t0->shape[d])
                return fd_fail("cat: tensor %d %s vs tensor 1 %s: size of dim %d is %lld, expected %lld", i + 1,
                               FD_SHAPE_STR(t), FD_SHAPE_STR(t0), d + 1, (long long)t->shape[d],
                               (long long)t0->shape[d]);
        shape[dim] += t->shape[dim];
        dt = fd_dtype_promote(dt, t->dtype);
    }
    if (fd_tensor_empty(out, dt, t0->ndim, shape)) return FD_ERR;
    /* parts all laid out in one other dense order (channels-last): so is the result */
    int perm[FD_MAX_DIMS], pi[FD_MAX_DIMS];
    bool keep = fd_tensor_is_dense_permuted(t0, perm);
    for (int i = 1; keep && i < n; i++)
        keep = fd_tensor_is_dense_permuted(ts[i], pi) && !memcmp(pi, perm, sizeof(int) * (size_t)t0->ndim);
    if (keep) fd_strides_in_order(t0->ndim, shape, perm, out->stride);
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        fd_tensor part = *out; /* a borrowed header: no reference taken */
        part.offset += at * out->stride[dim];
        part.shape[dim] = ts[i]->shape[dim];
        at += ts[i]->shape[dim];
        if (fd_tensor_copy_(&part, ts[i])) {
            fd_tensor_release(out);
            return FD_ERR;
        }
    }
    return FD_OK;
}

int fd_stack(fd_tensor *out, const fd_tensor *const *ts, int n, int dim)
{
    memset(out, 0, sizeof *out);
    if (n < 1) return fd_fail("stack: expects at least one tensor");
    const fd_tensor *t0 = ts[0];
    if (t0->ndim >= FD_MAX_DIMS) return fd_fail("stack: a tensor has at most %d dims", FD_MAX_DIMS);
    if (dim < 0 || dim > t0->ndim)
        return fd_fail("stack: dim %d out of range for a new dim of %d-dim tensors", dim + 1, t0->ndim);
    fd_dtype dt = t0->dtype;
    for (int i = 1; i < n; i++) {
        if (ts[i]->ndim != t0->ndim ||
            memcmp(ts[i]->shape, t0->shape, sizeof(int64_t) * (size_t)t0->ndim) != 0)
            return fd_fail("stack: tensor %d %s vs tensor 1 %s: all shapes must be equal", i + 1,
                           FD_SHAPE_STR(ts[i]), FD_SHAPE_STR(t0));
        dt = fd_dtype_promote(dt, ts[i]->dtype);
    }
    int64_t shape[FD_MAX_DIMS];
    for (int d = 0, s = 0; d <= t0->ndim; d++) shape[d] = d == dim ? n : t0->shape[s++];
    if (fd_tensor_empty(out, dt, t0->ndim + 1, shape)) return FD_ERR;
    for (int i = 0; i < n; i++) {
        fd_tensor part = *out; /* borrowed */
        fd_view_select(&part, dim, i);
        if (fd_tensor_copy_(&part, ts[i])) {
            fd_tensor_release(out);
            return FD_ERR;
        }
    }
    return FD_OK;
}

/* ---- index_select and gather -------------------------------------------- */

int fd_index_select(fd_tensor *out, const fd_tensor *a, int dim, const fd_tensor *index, int64_t base)
{
    memset(out, 0, sizeof *out);
    if (dim < 0 || dim >= a->ndim)
        return fd_fail("index_select: dim %d out of range for a tensor of %d dims %s", dim + 1, a->ndim,
                       FD_SHAPE_STR(a));
    if (!is_integer_dtype(index->dtype))
        return fd_fail("index_select: index must be an integer tensor (i64, i32 or u8), got %s",
                       fd_dtype_name(index->dtype));
    if (index->ndim > 1)
        return fd_fail("index_select: index must be 1-d, got %s", FD_SHAPE_STR(index));
    int64_t n = fd_tensor_numel(index), stride = index->ndim ? index->stride[0] : 0;
    const char *ip = fd_tensor_data(index);
    int64_t ies = (int64_t)fd_dtype_size(index->dtype);
    for (int64_t j = 0; j < n; j++) {
        int64_t i = load_index(ip + j * stride * ies, index->dtype);
        if (i - base < 0 || i - base >= a->shape[dim])
            return fd_fail("index_select: index %lld (entry %lld) out of range for dim %d of size %lld",
                           (long long)i, (long long)(j + base), dim + 1, (long long)a->shape[dim]);
    }
    int64_t shape[FD_MAX_DIMS];
    memcpy(shape, a->shape, sizeof shape);
    shape[dim] = n;
    if (fd_tensor_empty(out, a->dtype, a->ndim, shape)) return FD_ERR;
    for (int64_t j = 0; j < n; j++) {
        int64_t i = load_index(ip + j * stride * ies, index->dtype) - base;
        fd_tensor src = *a, dst = *out; /* borrowed headers */
        fd_view_select(&src, dim, i);
        fd_view_select(&dst, dim, j);
        fd_tensor_copy_(&dst, &src); /* same shape and dtype: cannot fail */
    }
    return FD_OK;
}

int fd_gather(fd_tensor *out, const fd_tensor *a, int dim, const fd_tensor *index, int64_t base)
{
    memset(out, 0, sizeof *out);
    if (dim < 0 || dim >= a->ndim)
        return fd_fail("gather: dim %d out of range for a tensor of %d dims %s", dim + 1, a->ndim, FD_SHAPE_STR(a));
    if (!is_integer_dtype(index->dtype))
        return fd_fail("gather: index must be an integer tensor (i64, i32 or u8), got %s",
                       fd_dtype_name(index->dtype));
    if (index->ndim != a->ndim)
        return fd_fail("gather: index %s has %d dims, the input %s has %d", FD_SHAPE_STR(index), index->ndim,
                       FD_SHAPE_STR(a), a->ndim);
    for (int d = 0; d < a->ndim; d++)
        if (d != dim && index->shape[d] > a->shape[d])
            return fd_fail("gather: index %s vs input %s: size %lld of dim %d exceeds %lld", FD_SHAPE_STR(index),
                           FD_SHAPE_STR(a), (long long)index->shape[d], d + 1, (long long)a->shape[d]);
    if (fd_tensor_empty(out, a->dtype, index->ndim, index->shape)) return FD_ERR;
    /* Walk out, index and a (a's stride along dim zeroed: the index supplies it). */
    int64_t as[FD_MAX_DIMS];
    memcpy(as, a->stride, sizeof as);
    as[dim] = 0;
    const int64_t *strides[3] = {out->stride, index->stride, as};
    fd_walk w;
    fd_walk_init(&w, index->ndim, index->shape, 3, strides);
    if (w.empty) return FD_OK;
    size_t es = fd_dtype_size(a->dtype), ies = fd_dtype_size(index->dtype);
    char *o = fd_tensor_data(out);
    const char *ip = fd_tensor_data(index), *ap = fd_tensor_data(a);
    do {
        for (int64_t k = 0; k < w.inner_len; k++) {
            int64_t i = load_index(ip + (w.offset[1] + k * w.inner_stride[1]) * (int64_t)ies, index->dtype);
            if (i - base < 0 || i - base >= a->shape[dim]) {
                fd_tensor_release(out);
                return fd_fail("gather: index %lld out of range for dim %d of size %lld", (long long)i, dim + 1,
                               (long long)a->shape[dim]);
            }
            memcpy(o + (w.offset[0] + k * w.inner_stride[0]) * (int64_t)es,
                   ap + (w.offset[2] + k * w.inner_stride[2] + (i - base) * a->stride[dim]) * (int64_t)es, es);
        }
    } while (fd_walk_next(&w));
    return FD_OK;
}

/* ---- masked_fill and allclose ------------------------------------------- */

int fd_masked_fill_(fd_tensor *a, const fd_tensor *mask, double value)
{
    if (mask->dtype != FD_BOOL && mask->dtype != FD_U8)
        return fd_fail("masked_fill: mask must be bool (or u8), got %s", fd_dtype_name(mask->dtype));
    int nd;
    int64_t shape[FD_MAX_DIMS];
    if (fd_broadcast_shape("masked_fill", a->ndim, a->shape, mask->ndim, mask->shape, &nd, shape)) return FD_ERR;
    if (nd != a->ndim || memcmp(shape, a->shape, sizeof(int64_t) * (size_t)nd) != 0)
        return fd_fail("masked_fill: mask %s does not broadcast to the tensor %s", FD_SHAPE_STR(mask), FD_SHAPE_STR(a));
    int64_t ms[FD_MAX_DIMS];
    fd_broadcast_strides(mask, nd, shape, ms);
    const int64_t *strides[2] = {a->stride, ms};
    fd_walk w;
    fd_walk_init(&w, nd, shape, 2, strides);
    fd_tensor_bump_version(a);
    if (w.empty) return FD_OK;
    char one[8];
    fd_store_f64(one, a->dtype, value);
    size_t es = fd_dtype_size(a->dtype);
    char *ap = fd_tensor_data(a);
    const uint8_t *mp = fd_tensor_data(mask);
    do {
        for (int64_t k = 0; k < w.inner_len; k++)
            if (mp[w.offset[1] + k * w.inner_stride[1]])
                memcpy(ap + (w.offset[0] + k * w.inner_stride[0]) * (int64_t)es, one, es);
    } while (fd_walk_next(&w));
    return FD_OK;
}

int fd_allclose(bool *result, const fd_tensor *a, const fd_tensor *b, double rtol, double atol)
{
    int nd;
    int64_t shape[FD_MAX_DIMS], sa[FD_MAX_DIMS], sb[FD_MAX_DIMS];
    if (fd_broadcast_shape("allclose", a->ndim, a->shape, b->ndim, b->shape, &nd, shape)) return FD_ERR;
    fd_broadcast_strides(a, nd, shape, sa);
    fd_broadcast_strides(b, nd, shape, sb);
    const int64_t *strides[2] = {sa, sb};
    fd_walk w;
    fd_walk_init(&w, nd, shape, 2, strides);
    *result = true;
    if (w.empty) return FD_OK;
    const char *pa = fd_tensor_data(a), *pb = fd_tensor_data(b);
    int64_t ea = (int64_t)fd_dtype_size(a->dtype), eb = (int64_t)fd_dtype_size(b->dtype);
    double x[FD_BLOCK], y[FD_BLOCK];
    do {
        for (int64_t i = 0; i < w.inner_len; i += FD_BLOCK) {
            int64_t n = w.inner_len - i < FD_BLOCK ? w.inner_len - i : FD_BLOCK;
            fd_load_block(x, pa + (w.offset[0] + i * w.inner_stride[0]) * ea, w.inner_stride[0], a->dtype, n);
            fd_load_block(y, pb + (w.offset[1] + i * w.inner_stride[1]) * eb, w.inner_stride[1], b->dtype, n);
            for (int64_t k = 0; k < n; k++)
                if (!(x[k] == y[k] || fabs(x[k] - y[k]) <= atol + rtol * fabs(y[k]))) {
                    *result = false;
                    return FD_OK;
                }
        }
    } while (fd_walk_next(&w));
    return FD_OK;
}
