/* Attention's argument checks and sizes (see fd_attention_check.h), shared by
 * the flash kernels and the reference. */
#include <math.h>
#include <string.h>

#include "ops/attention/fd_attention_check.h"
#include "ops/common/fd_nn_common.h"

static int check_tokens(const char *op, const char *name, const fd_tensor *t, int64_t B, int64_t C, bool batch1_ok)
{
    if (fd_nn_check_float(op, name, t) || fd_nn_check_ndim(op, name, t, 3) || fd_nn_check_nonempty(op, name, t)) return FD_ERR;
    if ((t->shape[0] != B && !(batch1_ok && t->shape[0] == 1)) || t->shape[2] != C)
        return fd_fail("%s: %s %s, expected [%lld, N, %lld]", op, name, FD_SHAPE_STR(t), (long long)B, (long long)C);
    return FD_OK;
}

int fd_nn_attention_check(const char *op, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                       const fd_attention_args *args, nn_att_dims *dm)
{
    memset(dm, 0, sizeof *dm);
    if (check_tokens(op, "q", q, q->ndim == 3 ? q->shape[0] : 0, q->ndim == 3 ? q->shape[2] : 0, false)) return FD_ERR;
    dm->B = q->shape[0], dm->Nq = q->shape[1], dm->C = q->shape[2], dm->H = args->heads;
    if (check_tokens(op, "k", k, dm->B, dm->C, false) || check_tokens(op, "v", v, dm->B, dm->C, false)) return FD_ERR;
    if (k->shape[1] != v->shape[1])
        return fd_fail("%s: k %s vs v %s: key counts differ", op, FD_SHAPE_STR(k), FD_SHAPE_STR(v));
    if (dm->H <= 0 || dm->C % dm->H)
        return fd_fail("%s: heads %lld do not divide the %lld channels of q %s", op, (long long)dm->H,
                       (long long)dm->C, FD_SHAPE_STR(q));
    dm->Nk = k->shape[1], dm->d = dm->C / dm->H, dm->Be = 1;
    if (!!args->extra_k != !!args->extra_v) return fd_fail("%s: extra_k and extra_v must be given together", op);
    if (args->extra_k) {
        const fd_tensor *ek = args->extra_k, *ev = args->extra_v;
        if (check_tokens(op, "extra_k", ek, dm->B, dm->C, true) || check_tokens(op, "extra_v", ev, dm->B, dm->C, true) ||
            fd_nn_check_same_shape(op, "extra_k", ek, "extra_v", ev))
            return FD_ERR;
        dm->Ne = ek->shape[1], dm->Be = ek->shape[0];
    }
    dm->Nkt = dm->Nk + dm->Ne;
    dm->scale = args->scale != 0 ? args->scale : 1.0 / sqrt((double)dm->d);
    if (args->mask) {
        const fd_tensor *mk = args->mask;
        int64_t full[4] = {dm->B, dm->H, dm->Nq, dm->Nkt}, bs[FD_MAX_DIMS];
        int bnd;
        if (mk->ndim > 4 || fd_broadcast_shape(op, mk->ndim, mk->shape, 4, full, &bnd, bs) ||
            memcmp(bs, full, sizeof full))
            return fd_fail("%s: mask %s does not broadcast to [B, heads, Nq, Nk + Ne] = [%lld, %lld, %lld, %lld]", op,
                           FD_SHAPE_STR(mk), (long long)dm->B, (long long)dm->H, (long long)dm->Nq,
                           (long long)dm->Nkt);
        if (mk->dtype != FD_BOOL && mk->dtype != FD_U8 && mk->dtype != FD_F32 && mk->dtype != FD_F64)
            return fd_fail("%s: mask %s has dtype %s, expected bool, u8 or a float", op, FD_SHAPE_STR(mk),
                           fd_dtype_name(mk->dtype));
    }
    return FD_OK;
}
