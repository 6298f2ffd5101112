/* Reference attention: the textbook softmax(q k^T * scale + mask) v, one
 * query row at a time in double, keys then extra tokens; the backward
 * recomputes each row's probabilities from scratch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops/attention/fd_attention_check.h"
#include "ops/common/fd_nn_common.h"

typedef struct ref_att {
    nn_att_dims dm;
    fd_tensor q, k, v, ek, ev, mask;
    const double *pq, *pk, *pv, *pek, *pev, *pm;
    int64_t ms[4];
} ref_att;

static void ref_release(ref_att *r) { fd_nn_release(&r->q, &r->k, &r->v, &r->ek, &r->ev, &r->mask); }

static int ref_setup(const char *op, ref_att *r, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                     const fd_attention_args *a)
{
    memset(r, 0, sizeof *r);
    if (fd_nn_attention_check(op, q, k, v, a, &r->dm)) return FD_ERR;
    if (!(r->pq = fd_nn_stage_f64(&r->q, q)) || !(r->pk = fd_nn_stage_f64(&r->k, k)) || !(r->pv = fd_nn_stage_f64(&r->v, v)) ||
        (a->extra_k && (!(r->pek = fd_nn_stage_f64(&r->ek, a->extra_k)) || !(r->pev = fd_nn_stage_f64(&r->ev, a->extra_v)))) ||
        (a->mask && !(r->pm = fd_nn_stage_f64(&r->mask, a->mask)))) {
        ref_release(r);
        return FD_ERR;
    }
    if (a->mask) {
        int64_t full[4] = {r->dm.B, r->dm.H, r->dm.Nq, r->dm.Nkt};
        fd_broadcast_strides(&r->mask, 4, full, r->ms);
    }
    return FD_OK;
}

/* Key (which = 0) or value (1) j of batch b, at head h. */
static const double *ref_tok(const ref_att *r, int which, int64_t b, int64_t j, int64_t h)
{
    const nn_att_dims *d = &r->dm;
    if (j < d->Nk) return (which ? r->pv : r->pk) + (b * d->Nk + j) * d->C + h * d->d;
    return (which ? r->pev : r->pek) + ((d->Be == 1 ? 0 : b) * d->Ne + j - d->Nk) * d->C + h * d->d;
}

/* p[j] = softmax row (b, h, i); returns the logsumexp (-inf if all masked, p = 0). */
static double ref_probs(const ref_att *r, const fd_attention_args *a, int64_t b, int64_t h, int64_t i, double *p)
{
    const nn_att_dims *d = &r->dm;
    const double *qi = r->pq + (b * d->Nq + i) * d->C + h * d->d;
    double m = -INFINITY, s = 0;
    for (int64_t j = 0; j < d->Nkt; j++) {
        const double *kj = ref_tok(r, 0, b, j, h);
        double dot = 0;
        for (int64_t t = 0; t < d->d; t++) dot += qi[t] * kj[t];
        p[j] = dot * d->scale;
        if (a->mask) {
            double mv = r->pm[b * r->ms[0] + h * r->ms[1] + i * r->ms[2] + j * r->ms[3]];
            bool is_bool = a->mask->dtype == FD_BOOL || a->mask->dtype == FD_U8;
            p[j] = is_bool ? (mv != 0 ? p[j] : -INFINITY) : p[j] + mv;
        }
        if (p[j] > m) m = p[j];
    }
    if (m == -INFINITY) {
        for (int64_t j = 0; j < d->Nkt; j++) p[j] = 0;
        return -INFINITY;
    }
    for (int64_t j = 0; j < d->Nkt; j++) s += (p[j] = exp(p[j] - m));
    for (int64_t j = 0; j < d->Nkt; j++) p[j] /= s;
    return m + log(s);
}

int fd_ref_attention(fd_tensor *o, fd_tensor *lse, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                     const fd_attention_args *a)
{
    ref_att r;
    if (ref_setup("attention", &r, q, k, v, a)) return FD_ERR;
    const nn_att_dims *d = &r.dm;
    int64_t shl[3] = {d->B, d->H, d->Nq};
    double *p = malloc(sizeof(double) * (size_t)d->Nkt);
    if (!p || fd_tensor_zeros(o, FD_F64, 3, q->shape) || fd_tensor_empty(lse, FD_F64, 3, shl)) {
        free(p);
        ref_release(&r);
        fd_nn_release(o, lse, NULL, NULL, NULL, NULL);
        return p ? FD_ERR : fd_fail("attention: out of memory");
    }
    double *po = fd_tensor_data(o), *pl = fd_tensor_data(lse);
    for (int64_t b = 0; b < d->B; b++)
        for (int64_t h = 0; h < d->H; h++)
            for (int64_t i = 0; i < d->Nq; i++) {
                pl[(b * d->H + h) * d->Nq + i] = ref_probs(&r, a, b, h, i, p);
                double *oi = po + (b * d->Nq + i) * d->C + h * d->d;
                for (int64_t j = 0; j < d->Nkt; j++) {
                    const double *vj = ref_tok(&r, 1, b, j, h);
                    for (int64_t t = 0; t < d->d; t++) oi[t] += p[j] * vj[t];
                }
            }
    free(p);
    ref_release(&r);
    if (fd_nn_to_dtype_inplace(o, q->dtype) || fd_nn_to_dtype_inplace(lse, q->dtype == FD_F64 ? FD_F64 : FD_F32)) {
        fd_nn_release(o, lse, NULL, NULL, NULL, NULL);
        return FD_ERR;
    }
    return FD_OK;
}

int fd_ref_attention_backward(fd_tensor *dq, fd_tensor *dk, fd_tensor *dv, fd_tensor *dek, fd_tensor *dev,
                              const fd_tensor *dout, const fd_tensor *q, const fd_tensor *k, const fd_tensor *v,
                              const fd_tensor *o, const fd_tensor *lse, const fd_attention_args *a)
{
    const char *op = "attention_backward";
    ref_att r;
    if (fd_nn_check_same_shape(op, "grad_out", dout, "q", q) || fd_nn_check_float(op, "grad_out", dout)) return FD_ERR;
    if (ref_setup(op, &r, q, k, v, a)) return FD_ERR;
    const nn_att_dims *d = &r.dm;
    fd_tensor gs = {0};
    const double *pg = fd_nn_stage_f64(&gs, dout);
    double *p = malloc(sizeof(double) * 2 * (size_t)d->Nkt);
    if (!pg || !p || fd_tensor_zeros(dq, FD_F64, 3, q->shape) || fd_tensor_zeros(dk, FD_F64, 3, k->shape) ||
        fd_tensor_zeros(dv, FD_F64, 3, v->shape) ||
        (d->Ne && (fd_tensor_zeros(dek, FD_F64, 3, a->extra_k->shape) ||
                   fd_tensor_zeros(dev, FD_F64, 3, a->extra_v->shape)))) {
        if (pg && !p) fd_fail("%s: out of memory", op);
        free(p);
        ref_release(&r);
        fd_tensor_release(&gs);
        fd_nn_release(dq, dk, dv, dek, dev, NULL);
        return FD_ERR;
    }
    double *dP = p + d->Nkt;
    double *pdq = fd_tensor_data(dq), *pdk = fd_tensor_data(dk), *pdv = fd_tensor_data(dv);
    double *pdek = d->Ne ? fd_tensor_data(dek) : NULL, *pdev = d->Ne ? fd_tensor_data(dev) : NULL;
    for (int64_t b = 0; b < d->B; b++)
        for (int64_t h = 0; h < d->H; h++)
            for (int64_t i = 0; i < d->Nq; i++) {
                ref_probs(&r, a, b, h, i, p);
                const double *gi = pg + (b * d->Nq + i) * d->C + h * d->d;
                const double *qi = r.pq + (b * d->Nq + i) * d->C + h * d->d;
                double D = 0;
                for (int64_t j = 0; j < d->Nkt; j++) {
                    const double *vj = ref_tok(&r, 1, b, j, h);
                    dP[j] = 0;
                    for (int64_t t = 0; t < d->d; t++) dP[j] += gi[t] * vj[t];
                    D += p[j] * dP[j];
                }
                for (int64_t j = 0; j < d->Nkt; j++) {
                    double ds = p[j] * (dP[j] - D) * d->scale;
                    const double *kj = ref_tok(&r, 0, b, j, h);
                    double *gk, *gv;
                    if (j < d->Nk) {
                        gk = pdk + (b * d->Nk + j) * d->C + h * d->d;
                        gv = pdv + (b * d->Nk + j) * d->C + h * d->d;
                    } else {
                        int64_t at = ((d->Be == 1 ? 0 : b) * d->Ne + j - d->Nk) * d->C + h * d->d;
                        gk = pdek + at, gv = pdev + at;
                    }
                    for (int64_t t = 0; t < d->d; t++) {
                        pdq[(b * d->Nq + i) * d->C + h * d->d + t] += ds * kj[t];
                        gk[t] += ds * qi[t];
                        gv[t] += p[j] * gi[t];
                    }
                }
            }
    free(p);
    ref_release(&r);
    fd_tensor_release(&gs);
    fd_dtype dt = q->dtype;
    if (fd_nn_to_dtype_inplace(dq, dt) || fd_nn_to_dtype_inplace(dk, dt) || fd_nn_to_dtype_inplace(dv, dt) ||
        (d->Ne && (fd_nn_to_dtype_inplace(dek, dt) || fd_nn_to_dtype_inplace(dev, dt)))) {
        fd_nn_release(dq, dk, dv, dek, dev, NULL);
        return FD_ERR;
    }
    return FD_OK;
}
