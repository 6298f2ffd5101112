/* Matrix products on oneDNN matmul: strided operands are passed as they lie
 * (transposes are strides, broadcast batch dims are size-1 dims), linear's
 * weights are packed once (format any) and cached per storage version.
 * A case oneDNN refuses is retried on contiguous copies, then answered by
 * the reference loops. */
#include <string.h>

#include <omp.h>

#include "ops/backend/fd_dnnl.h"
#include "ops/backend/fd_tune.h"
#include "ops/matmul/fd_matmul.h"
#include "ops/matmul/fd_matmul_blas.h"
#include "ops/matmul/fd_matmul_check.h"
#include "runtime/core/fd_runtime.h"

typedef struct mm_ctx {
    dnnl_memory_desc_t src, wei, dst, bias;
    int has_bias, pack;
    fd_act act;
    dnnl_data_type_t cdt;
} mm_ctx;

static dnnl_status_t mm_try(const mm_ctx *c, dnnl_data_type_t dt, dnnl_primitive_desc_t *pd)
{
    dnnl_memory_desc_t src = c->src, wei = c->wei;
    if (dt != dnnl_f32) dnnl_memory_desc_init_by_tag(&src, c->src.ndims, c->src.dims, dt, dnnl_format_tag_any);
    if (dt != dnnl_f32 || c->pack)
        dnnl_memory_desc_init_by_tag(&wei, c->wei.ndims, c->wei.dims, dt, dnnl_format_tag_any);
    dnnl_primitive_attr_t attr;
    dnnl_status_t st = dnnl_primitive_attr_create(&attr);
    if (st != dnnl_success) return st;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    if (c->act != FD_ACT_NONE) {
        dnnl_post_ops_t po;
        st = dnnl_post_ops_create(&po);
        if (st == dnnl_success) {
            st = fd_dnnl_append_act(po, c->act);
            if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
            dnnl_post_ops_destroy(po);
        }
    }
    dnnl_matmul_desc_t md;
    if (st == dnnl_success) st = dnnl_matmul_desc_init(&md, &src, &wei, c->has_bias ? &c->bias : NULL, &c->dst);
    if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, &md, attr, fd_dnnl_engine(), NULL);
    dnnl_primitive_attr_destroy(attr);
    return st;
}

static dnnl_status_t make_mm(void *vctx, dnnl_primitive_desc_t *pd, dnnl_primitive_desc_t *keep)
{
    const mm_ctx *c = vctx;
    (void)keep;
    dnnl_status_t st = mm_try(c, c->cdt, pd);
    if (st == dnnl_unimplemented && c->cdt != dnnl_f32) st = mm_try(c, dnnl_f32, pd);
    return st;
}

static int md_of_view(dnnl_memory_desc_t *md, const fd_tensor *t)
{
    return fd_dnnl_md_of(md, t, "matmul");
}

/* out [batch..., M, N] (allocated here, f32, contiguous) = A @ B (+ bias)
 * for views of equal ndim whose batch dims are equal or 1. `packed` is the
 * tensor whose storage B's data lives in, when B is a weight to cache packed. */
static int mm_dnnl(fd_tensor *out, const fd_tensor *A, const fd_tensor *B, const fd_tensor *bias,
                   const fd_tensor *packed, fd_act act, fd_dtype compute)
{
    int nd = A->ndim;
    int64_t shape[FD_MAX_DIMS];
    for (int i = 0; i < nd - 2; i++) shape[i] = A->shape[i] > B->shape[i] ? A->shape[i] : B->shape[i];
    shape[nd - 2] = A->shape[nd - 2];
    shape[nd - 1] = B->shape[nd - 1];
    if (fd_tensor_empty(out, FD_F32, nd, shape)) return FD_ERR;
    mm_ctx c = {.has_bias = bias != NULL, .pack = packed != NULL, .act = act,
                .cdt = fd_compute_resolve(compute) == FD_BF16 ? dnnl_bf16 : dnnl_f32};
    fd_tensor bc = {0};
    int rc = FD_ERR;
    if (md_of_view(&c.src, A) || md_of_view(&c.wei, B) || md_of_view(&c.dst, out)) goto done;
    if (bias) {
        dnnl_dims_t bd;
        for (int i = 0; i < nd; i++) bd[i] = 1;
        bd[nd - 1] = bias->shape[0];
        if (fd_tensor_contiguous(&bc, bias)) goto done;
        dnnl_memory_desc_init_by_tag(&c.bias, nd, bd, dnnl_f32, nd == 2 ? dnnl_ab : nd == 3 ? dnnl_abc : dnnl_abcd);
        if (nd > 4) goto done; /* linear's bias is 2-d; matmul has none */
    }
    fd_dnnl_key k;
    fd_dnnl_key_init(&k, "matmul");
    fd_dnnl_key_bytes(&k, &c.src, sizeof c.src);
    fd_dnnl_key_bytes(&k, &c.wei, sizeof c.wei);
    fd_dnnl_key_bytes(&k, &c.dst, sizeof c.dst);
    int64_t v[] = {c.has_bias, c.pack, c.act, c.cdt};
    fd_dnnl_key_bytes(&k, v, sizeof v);
    const fd_dnnl_prim *pr;
    if (fd_dnnl_cached("matmul", &k, make_mm, &c, &pr, NULL)) goto done;
    if (c.cdt == dnnl_bf16 && dnnl_primitive_desc_query_md(pr->pd, dnnl_query_weights_md, 0)->data_type != dnnl_bf16)
        fd_dnnl_note_bf16_fallback("matmul");
    fd_dnnl_call call;
    fd_dnnl_call_init(&call, "matmul", pr);
    int bad;
    if (packed) {
        dnnl_memory_desc_t want = *dnnl_primitive_desc_query_md(pr->pd, dnnl_query_weights_md, 0);
        void *wp;
        /* B is a view of `packed`: the cache keys on packed's storage and
         * offset, and B's descriptor (the transpose) */
        bad = fd_dnnl_weights("linear", B, &c.wei, &want, &wp) ||
              fd_dnnl_call_raw(&call, DNNL_ARG_WEIGHTS, dnnl_query_weights_md, wp);
    } else {
        bad = fd_dnnl_call_input(&call, DNNL_ARG_WEIGHTS, dnnl_query_weights_md, &c.wei, fd_tensor_data(B));
    }
    if (bad || fd_dnnl_call_input(&call, DNNL_ARG_SRC, dnnl_query_src_md, &c.src, fd_tensor_data(A)) ||
        (bias && fd_dnnl_call_bind(&call, DNNL_ARG_BIAS, &c.bias, fd_tensor_data(&bc))) ||
        fd_dnnl_call_output(&call, DNNL_ARG_DST, dnnl_query_dst_md, &c.dst, fd_tensor_data(out), 0)) {
        fd_dnnl_call_free(&call);
        goto done;
    }
    if (fd_dnnl_call_run(&call)) goto done;
    rc = FD_OK;
done:
    fd_tensor_release(&bc);
    if (rc) fd_tensor_release(out);
    return rc;
}

/* mm_dnnl, retried on contiguous copies when oneDNN refuses the strides. */
static int mm_any(fd_tensor *out, const fd_tensor *A, const fd_tensor *B, const fd_tensor *bias,
                  const fd_tensor *packed, fd_act act, fd_dtype compute)
{
    if (mm_dnnl(out, A, B, bias, packed, act, compute) == FD_OK) return FD_OK;
    fd_tensor a = {0}, b = {0};
    int rc = fd_tensor_contiguous(&a, A);
    if (rc == FD_OK) rc = fd_tensor_contiguous(&b, B);
    if (rc == FD_OK) rc = mm_dnnl(out, &a, &b, bias, NULL, act, compute);
    fd_tensor_release(&a), fd_tensor_release(&b);
    return rc;
}

static int mm_fallbacks;

/* ---- backend choice: measured per shape --------------------------------- */

/* Neither backend wins everywhere (OpenBLAS on large square f32 products,
 * oneDNN on skinny ones and whenever a post-op fuses), so fd_tune times both
 * on the first calls of each shape and keeps the faster. The decisions are
 * remembered here for fada.ops.matmul_choices(). */
#define CHOICES 128
static int64_t choices[CHOICES][6];
static int nchoices;

int fd_matmul_choices(int64_t (*rows)[6], int max)
{
    int n = nchoices < max ? nchoices : max;
    memcpy(rows, choices, sizeof choices[0] * (size_t)n);
    return n;
}

/* out = A @ B (+ bias, act) on the backend chosen for this shape. */
static int mm_run(fd_tensor *out, const fd_tensor *A, const fd_tensor *B, const fd_tensor *bias,
                  const fd_tensor *packed, fd_act act, fd_dtype compute, int backend)
{
    int blas_ok = act == FD_ACT_NONE && fd_compute_resolve(compute) == FD_F32 && fd_blas_mm_ok(A, B);
    if (!blas_ok || backend == FD_MM_DNNL) return mm_any(out, A, B, bias, packed, act, compute);
    if (backend == FD_MM_BLAS) return fd_blas_mm(out, A, B, bias);
    int nd = A->ndim;
    int64_t nbatch = 1;
    for (int i = 0; i < nd - 2; i++) nbatch *= A->shape[i] > B->shape[i] ? A->shape[i] : B->shape[i];
    int64_t key[8] = {A->shape[nd - 2], A->shape[nd - 1], B->shape[nd - 1], nbatch, A->stride[nd - 1] == 1,
                      B->stride[nd - 1] == 1, bias != NULL, fd_get_num_threads()};
    uint64_t h = fd_tune_hash(0, "matmul", 6);
    h = fd_tune_hash(h, key, sizeof key);
    int timed, which = fd_tune_choose(h, &timed); /* 0 oneDNN, 1 OpenBLAS */
    double t0 = omp_get_wtime();
    int rc = which ? fd_blas_mm(out, A, B, bias) : mm_any(out, A, B, bias, packed, act, compute);
    if (rc || !timed) return rc;
    fd_tune_record(h, which, omp_get_wtime() - t0);
    int d = fd_tune_decided(h);
    if (d >= 0 && nchoices < CHOICES) {
        int64_t row[6] = {key[0], key[1], key[2], key[3], key[7], d ? FD_MM_BLAS : FD_MM_DNNL};
        memcpy(choices[nchoices++], row, sizeof row);
    }
    return FD_OK;
}

/* ---- matmul ------------------------------------------------------------- */

int fd_matmul(fd_tensor *out, const fd_tensor *a, const fd_tensor *b, const fd_mm_opts *o)
{
    memset(out, 0, sizeof *out);
    fd_mm_plan pl;
    if (fd_matmul_plan("matmul", a, b, o, &pl)) return FD_ERR;
    int rc = FD_ERR;
    if (a->dtype == FD_F32 && !(o && o->force_ref)) {
        for (int i = 0; i < pl.nd; i++)
            if (pl.full[i] == 0 || pl.a.shape[i] == 0) goto ref; /* empty products: the loops handle them */
        if (mm_run(out, &pl.a, &pl.b, NULL, NULL, FD_ACT_NONE, o ? o->compute : FD_NDTYPES, o ? o->backend : 0) == FD_OK) {
            rc = fd_view_reshape(out, pl.out_ndim, pl.out_shape);
            if (rc) fd_tensor_release(out);
            fd_mm_plan_release(&pl);
            return rc;
        }
        mm_fallbacks++;
    }
ref:
    fd_mm_plan_release(&pl);
    return fd_ref_matmul(out, a, b, o);
}

/* g for one operand: the full product summed down to the plan's operand
 * shape, then viewed in the caller's shape and made contiguous. */
static int grad_for(fd_tensor *g, fd_tensor *full, const fd_tensor *plan_op, const fd_tensor *orig, int transposed,
                    int is_b)
{
    fd_tensor red = {0}, view = {0};
    int rc = fd_sum_to_shape(&red, full, plan_op->ndim, plan_op->shape);
    if (rc == FD_OK) {
        fd_mm_unplan(&view, &red, orig, transposed, is_b);
        rc = fd_tensor_contiguous(g, &view);
    }
    fd_tensor_release(&red), fd_tensor_release(&view);
    return rc;
}

int fd_matmul_backward(fd_tensor *ga, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *a, const fd_tensor *b,
                       const fd_mm_opts *o)
{
    if (ga) memset(ga, 0, sizeof *ga);
    if (gb) memset(gb, 0, sizeof *gb);
    fd_mm_plan pl;
    if (fd_matmul_plan("matmul_backward", a, b, o, &pl)) return FD_ERR;
    if (gy->dtype != a->dtype || gy->ndim != pl.out_ndim ||
        memcmp(gy->shape, pl.out_shape, sizeof(int64_t) * (size_t)pl.out_ndim)) {
        fd_mm_plan_release(&pl);
        return fd_fail("matmul_backward: grad_output %s %s vs output %s %s", FD_SHAPE_STR(gy),
                       fd_dtype_name(gy->dtype), fd_shape_str((char[128]){0}, 128, pl.out_ndim, pl.out_shape),
                       fd_dtype_name(a->dtype));
    }
    int empty = 0;
    for (int i = 0; i < pl.nd; i++) empty |= pl.full[i] == 0 || pl.a.shape[i] == 0;
    if (a->dtype != FD_F32 || (o && o->force_ref) || empty) {
        fd_mm_plan_release(&pl);
        return fd_ref_matmul_backward(ga, gb, gy, a, b, o);
    }
    fd_tensor g = {0}, t = {0}, full = {0};
    fd_dtype cd = o ? o->compute : FD_NDTYPES;
    int be = o ? o->backend : 0;
    int rc = FD_ERR;
    fd_tensor_view_of(&g, gy); /* gy in the plan's full shape [batch..., M, N] */
    if (fd_view_reshape(&g, pl.nd, pl.full)) {
        fd_tensor_release(&g);
        if (fd_tensor_contiguous(&t, gy)) goto done;
        fd_tensor_view_of(&g, &t);
        if (fd_view_reshape(&g, pl.nd, pl.full)) goto done;
    }
    if (ga) { /* dA = dY B^T */
        fd_tensor bt;
        fd_tensor_view_of(&bt, &pl.b);
        fd_view_transpose(&bt, -1, -2);
        rc = mm_run(&full, &g, &bt, NULL, NULL, FD_ACT_NONE, cd, be);
        fd_tensor_release(&bt);
        if (rc || (rc = grad_for(ga, &full, &pl.a, a, o && o->transpose_a, 0))) goto done;
        fd_tensor_release(&full);
        rc = FD_ERR;
    }
    if (gb) { /* dB = A^T dY */
        fd_tensor at;
        fd_tensor_view_of(&at, &pl.a);
        fd_view_transpose(&at, -1, -2);
        rc = mm_run(&full, &at, &g, NULL, NULL, FD_ACT_NONE, cd, be);
        fd_tensor_release(&at);
        if (rc || (rc = grad_for(gb, &full, &pl.b, b, o && o->transpose_b, 1))) goto done;
    }
    rc = FD_OK;
done:
    fd_tensor_release(&g), fd_tensor_release(&t), fd_tensor_release(&full);
    fd_mm_plan_release(&pl);
    if (rc) {
        if (ga) fd_tensor_release(ga);
        if (gb) fd_tensor_release(gb);
        mm_fallbacks++;
        return fd_ref_matmul_backward(ga, gb, gy, a, b, o);
    }
    return FD_OK;
}

/* ---- linear ------------------------------------------------------------- */

/* t viewed as [rows, cols] (a contiguous copy in *hold when strides forbid). */
static int as_rows(fd_tensor *v, fd_tensor *hold, const fd_tensor *t, int64_t cols)
{
    int64_t shape[2] = {cols ? fd_tensor_numel(t) / cols : 0, cols};
    fd_tensor_view_of(v, t);
    if (fd_view_reshape(v, 2, shape) == FD_OK) return FD_OK;
    fd_tensor_release(v);
    if (fd_tensor_contiguous(hold, t)) return FD_ERR;
    fd_tensor_view_of(v, hold);
    return fd_view_reshape(v, 2, shape);
}

int fd_linear(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b, const fd_mm_opts *o)
{
    memset(out, 0, sizeof *out);
    if (fd_linear_check("linear", x, w, b)) return FD_ERR;
    int64_t n = w->shape[0], k = w->shape[1];
    if (x->dtype != FD_F32 || (o && o->force_ref) || n == 0 || k == 0 || fd_tensor_numel(x) == 0)
        return fd_ref_linear(out, x, w, b, o);
    fd_tensor x2 = {0}, hold = {0}, wt = {0};
    int rc = as_rows(&x2, &hold, x, k);
    if (rc == FD_OK) {
        fd_tensor_view_of(&wt, w); /* W^T [in, out]: a transposed view, packed by oneDNN once */
        fd_view_transpose(&wt, 0, 1);
        rc = mm_run(out, &x2, &wt, b, w, o ? o->act : FD_ACT_NONE, o ? o->compute : FD_NDTYPES, o ? o->backend : 0);
    }
    if (rc == FD_OK) {
        int64_t shape[FD_MAX_DIMS];
        memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
        shape[x->ndim - 1] = n;
        rc = fd_view_reshape(out, x->ndim, shape);
        if (rc) fd_tensor_release(out);
    }
    fd_tensor_release(&x2), fd_tensor_release(&hold), fd_tensor_release(&wt);
    if (rc == FD_OK) return FD_OK;
    mm_fallbacks++;
    return fd_ref_linear(out, x, w, b, o);
}

int fd_linear_backward(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *x,
                       const fd_tensor *w, const fd_mm_opts *o)
{
    if (gx) memset(gx, 0, sizeof *gx);
    if (gw) memset(gw, 0, sizeof *gw);
    if (gb) memset(gb, 0, sizeof *gb);
    if (fd_linear_check("linear_backward", x, w, NULL)) return FD_ERR;
    int64_t n = w->shape[0], k = w->shape[1], m = k ? fd_tensor_numel(x) / k : 0;
    if (gy->dtype != x->dtype || gy->ndim != x->ndim || gy->shape[gy->ndim - 1] != n || fd_tensor_numel(gy) != m * n)
        return fd_fail("linear_backward: grad_output %s %s vs input %s and weight %s", FD_SHAPE_STR(gy),
                       fd_dtype_name(gy->dtype), FD_SHAPE_STR(x), FD_SHAPE_STR(w));
    if (x->dtype != FD_F32 || (o && o->force_ref) || m == 0 || n == 0 || k == 0)
        return fd_ref_linear_backward(gx, gw, gb, gy, x, w, o);
    fd_dtype cd = o ? o->compute : FD_NDTYPES;
    int be = o ? o->backend : 0;
    fd_tensor g2 = {0}, gh = {0}, x2 = {0}, xh = {0}, tv = {0}, ones = {0}, tmp = {0};
    int rc = as_rows(&g2, &gh, gy, n);
    if (rc == FD_OK) rc = as_rows(&x2, &xh, x, k);
    if (rc == FD_OK && gx) { /* dX [M, K] = dY [M, N] W [N, K] */
        rc = mm_run(gx, &g2, w, NULL, NULL, FD_ACT_NONE, cd, be);
        if (rc == FD_OK) rc = fd_view_reshape(gx, x->ndim, x->shape);
    }
    if (rc == FD_OK && gw) { /* dW [N, K] = dY^T [N, M] X [M, K] */
        fd_tensor_view_of(&tv, &g2);
        fd_view_transpose(&tv, 0, 1);
        rc = mm_run(gw, &tv, &x2, NULL, NULL, FD_ACT_NONE, cd, be);
    }
    if (rc == FD_OK && gb) { /* db [N] = 1 [1, M] dY [M, N] */
        int64_t os[2] = {1, m}, bs[1] = {n};
        rc = fd_tensor_empty(&ones, FD_F32, 2, os);
        if (rc == FD_OK) rc = fd_tensor_fill_(&ones, 1.0);
        if (rc == FD_OK) rc = mm_run(&tmp, &ones, &g2, NULL, NULL, FD_ACT_NONE, FD_F32, be);
        if (rc == FD_OK) {
            fd_tensor_view_of(gb, &tmp);
            rc = fd_view_reshape(gb, 1, bs);
        }
    }
    fd_tensor_release(&g2), fd_tensor_release(&gh), fd_tensor_release(&x2), fd_tensor_release(&xh);
    fd_tensor_release(&tv), fd_tensor_release(&ones), fd_tensor_release(&tmp);
    if (rc == FD_OK) return FD_OK;
    if (gx) fd_tensor_release(gx);
    if (gw) fd_tensor_release(gw);
    if (gb) fd_tensor_release(gb);
    mm_fallbacks++;
    return fd_ref_linear_backward(gx, gw, gb, gy, x, w, o);
}

int fd_matmul_dnnl_fallbacks(void) { return mm_fallbacks; }
