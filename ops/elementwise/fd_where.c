/* where (see fd_elementwise.h): cond ? a : b, broadcasting all three, on
 * the generic walk (fd_elementwise.c). */
#include "ops/elementwise/fd_elementwise_walk.h"

/* ---- where -------------------------------------------------------------- */

typedef struct where_ctx {
    fd_dtype dt[4]; /* out, cond, a, b */
} where_ctx;

static void where_block(const void *vctx, char *const *p, const int64_t *s, int64_t n)
{
    const where_ctx *c = vctx;
    double m[FD_BLOCK], x[FD_BLOCK], y[FD_BLOCK];
    fd_load_block(m, p[1], s[1], c->dt[1], n);
    fd_load_block(x, p[2], s[2], c->dt[2], n);
    fd_load_block(y, p[3], s[3], c->dt[3], n);
    for (int64_t i = 0; i < n; i++) x[i] = m[i] != 0 ? x[i] : y[i];
    fd_store_block(p[0], s[0], c->dt[0], x, n);
}

int fd_where(fd_tensor *out, const fd_tensor *cond, const fd_tensor *a, double sa, bool sa_is_int,
             const fd_tensor *b, double sb, bool sb_is_int)
{
    fd_dtype rdt;
    if (a && b) rdt = fd_dtype_promote(a->dtype, b->dtype);
    else if (a) rdt = fd_ew_scalar_compute_dtype(a->dtype, sb_is_int);
    else if (b) rdt = fd_ew_scalar_compute_dtype(b->dtype, sa_is_int);
    else rdt = sa_is_int && sb_is_int ? FD_I64 : FD_F32;
    scalar_operand soa, sob;
    if (!a) a = fd_ew_scalar_tensor(&soa, sa, FD_F64);
    if (!b) b = fd_ew_scalar_tensor(&sob, sb, FD_F64);
    int nd, nd2;
    int64_t shape[FD_MAX_DIMS], shape2[FD_MAX_DIMS];
    if (fd_broadcast_shape("where", a->ndim, a->shape, b->ndim, b->shape, &nd, shape) ||
        fd_broadcast_shape("where", cond->ndim, cond->shape, nd, shape, &nd2, shape2))
        return FD_ERR;
    bool fresh = out->storage == NULL;
    const fd_tensor *ins[3] = {cond, a, b};
    fd_tensor tmp[3] = {{0}, {0}, {0}};
    int rc = fd_ew_prepare_out("where", out, rdt, nd2, shape2, ins, tmp, 3);
    if (rc == FD_OK) {
        int64_t sc[FD_MAX_DIMS], sx[FD_MAX_DIMS], sy[FD_MAX_DIMS];
        fd_broadcast_strides(ins[0], nd2, shape2, sc);
        fd_broadcast_strides(ins[1], nd2, shape2, sx);
        fd_broadcast_strides(ins[2], nd2, shape2, sy);
        where_ctx ctx = {{out->dtype, ins[0]->dtype, ins[1]->dtype, ins[2]->dtype}};
        walk_job job = {4,
                        {fd_tensor_data(out), fd_tensor_data(ins[0]), fd_tensor_data(ins[1]), fd_tensor_data(ins[2])},
                        {fd_dtype_size(out->dtype), fd_dtype_size(ins[0]->dtype), fd_dtype_size(ins[1]->dtype),
                         fd_dtype_size(ins[2]->dtype)},
                        where_block, &ctx, 0};
        const int64_t *strides[4] = {out->stride, sc, sx, sy};
        fd_ew_parallel_walk(&job, nd2, shape2, strides);
        if (!fresh) fd_tensor_bump_version(out);
    } else if (fresh) {
        fd_tensor_release(out);
    }
    for (int k = 0; k < 3; k++) fd_tensor_release(&tmp[k]);
    return rc;
}
