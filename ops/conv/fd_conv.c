/* Convolution on oneDNN: forward with fused bias/activation/residual, and
 * backward for data, weights and bias. Layout policy: oneDNN picks the
 * activation layout (format_tag any); activations that already lie that way
 * (channels-last for brgconv on AVX-512, the blocked nChw8c of fd_tensor.block
 * for jit:avx2) are used in place, others are reordered around the call. A
 * blocked input gives a blocked output, so a chain of convolutions (and
 * group_norm, which reads and writes it too) reorders only at its ends.
 * The forward also times a primitive on the activations as they lie and
 * keeps it when faster (ops/backend/fd_tune.h). f32 3x3 stride-1
 * convolutions ask for Winograd first (AVX-512 in oneDNN 2.x; off with
 * fd_conv_set_winograd, FADA_WINOGRAD=0 or the direct algorithm). Weights are
 * packed once per storage version and cached (ops/backend/fd_dnnl.c). */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "ops/backend/fd_dnnl.h"
#include "ops/backend/fd_tune.h"
#include "ops/conv/fd_conv.h"
#include "ops/conv/fd_conv_check.h"
#include "runtime/core/fd_runtime.h"

void fd_conv_params_default(fd_conv_params *p)
{
    *p = (fd_conv_params){.stride = {1, 1}, .padding = {0, 0}, .dilation = {1, 1}, .groups = 1,
                          .act = FD_ACT_NONE, .layout = FD_LAYOUT_AUTO, .compute = FD_NDTYPES};
}

/* A descriptor for a 4-d tensor known to be NCHW-contiguous or channels-last,
 * with canonical strides (size-1 dims may have any stride in the header, but
 * descriptors compare bytewise). */
static int md_4d(dnnl_memory_desc_t *md, const fd_tensor *t, fd_layout layout, const char *op)
{
    dnnl_dims_t dims, st;
    int64_t s[4];
    if (t->block) {
        for (int i = 0; i < 4; i++) dims[i] = t->shape[i];
        return fd_dnnl_check(dnnl_memory_desc_init_by_tag(md, 4, dims, dnnl_f32, dnnl_aBcd8b), op,
                             "memory descriptor");
    }
    if (layout == FD_LAYOUT_NHWC)
        fd_nhwc_strides(t->shape, s);
    else
        fd_contiguous_strides(4, t->shape, s);
    for (int i = 0; i < 4; i++) dims[i] = t->shape[i], st[i] = s[i];
    return fd_dnnl_check(dnnl_memory_desc_init_by_strides(md, 4, dims, fd_dnnl_dt(t->dtype), st), op,
                         "memory descriptor");
}

/* x as a tensor in a layout oneDNN can describe: itself (a view) when it is
 * NCHW-contiguous or channels-last, else a contiguous copy. */
static int usable(fd_tensor *out, const fd_tensor *x, fd_layout *layout)
{
    if (x->block) {
        *layout = FD_LAYOUT_BLOCKED;
        fd_tensor_view_of(out, x);
        return FD_OK;
    }
    if (fd_is_channels_last(x)) {
        *layout = FD_LAYOUT_NHWC;
        fd_tensor_view_of(out, x);
        return FD_OK;
    }
    *layout = FD_LAYOUT_NCHW;
    return fd_tensor_contiguous(out, x);
}

/* ---- primitive descriptors ---------------------------------------------- */

enum { CONV_FWD, CONV_BWD_DATA, CONV_BWD_WEIGHTS };

typedef struct conv_ctx {
    int kind;
    dnnl_memory_desc_t src, wei, dst; /* user layouts (src/dst f32) */
    int has_bias, sum;
    fd_act act;
    dnnl_dims_t strides, dil, pad_l, pad_r;
    dnnl_data_type_t cdt; /* bf16 or f32: what src/weights compute in */
    int plain_first;      /* try the user's activation layout before `any` */
    int wino;             /* try Winograd before direct (see wants_winograd) */
    int training;         /* the weights change between calls (fd_conv_params.training) */
} conv_ctx;

static int winograd_on = -1; /* -1: FADA_WINOGRAD not read yet */
static long winograd_calls;

void fd_conv_set_winograd(bool on) { winograd_on = on; }

bool fd_conv_winograd_enabled(void)
{
    if (winograd_on < 0) {
        const char *env = getenv("FADA_WINOGRAD"); /* FADA_WINOGRAD=0: direct only, for A/B runs */
        winograd_on = !(env && strcmp(env, "0") == 0);
    }
    return winograd_on;
}
long fd_conv_winograd_calls(void) { return winograd_calls; }

/* Winograd is worth asking for: f32 compute, a dense 3x3 kernel at stride 1
 * (oneDNN 2.x has it on AVX-512 only and says unimplemented elsewhere, and
 * then the direct kernel runs). */
static int wants_winograd(const fd_conv_params *p, const fd_tensor *w, dnnl_data_type_t cdt)
{
    return fd_conv_winograd_enabled() && p->algorithm == FD_CONV_ALGO_AUTO && cdt == dnnl_f32 && p->groups == 1 &&
           w->shape[2] == 3 && w->shape[3] == 3 && p->stride[0] == 1 && p->stride[1] == 1 && p->dilation[0] == 1 &&
           p->dilation[1] == 1;
}

static void count_winograd(const fd_dnnl_prim *pr)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pr->pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
        strstr(impl, "wino"))
        winograd_calls++;
}

static void any_like(dnnl_memory_desc_t *md, const dnnl_memory_desc_t *like, dnnl_data_type_t dt)
{
    dnnl_memory_desc_init_by_tag(md, like->ndims, like->dims, dt, dnnl_format_tag_any);
}

static dnnl_status_t make_attr(const conv_ctx *c, dnnl_primitive_attr_t *attr)
{
    dnnl_status_t st = dnnl_primitive_attr_create(attr);
    if (st != dnnl_success) return st;
    dnnl_primitive_attr_set_scratchpad_mode(*attr, dnnl_scratchpad_mode_user);
    if (c->kind != CONV_FWD || (c->act == FD_ACT_NONE && !c->sum)) return dnnl_success;
    dnnl_post_ops_t po;
    st = dnnl_post_ops_create(&po);
    if (st != dnnl_success) {
        dnnl_primitive_attr_destroy(*attr);
        return st;
    }
    if (c->act != FD_ACT_NONE) st = fd_dnnl_append_act(po, c->act);
    if (st == dnnl_success && c->sum) st = dnnl_post_ops_append_sum(po, 1.0f);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(*attr, po);
    dnnl_post_ops_destroy(po);
    if (st != dnnl_success) dnnl_primitive_attr_destroy(*attr);
    return st;
}

/* One attempt: plain = activations as the user has them, else `any`. */
static dnnl_status_t conv_try(const conv_ctx *c, int plain, dnnl_data_type_t cdt, dnnl_primitive_desc_t *pd,
                              dnnl_primitive_desc_t *keep)
{
    dnnl_memory_desc_t src, wei, dst, bias;
    if (plain && cdt == dnnl_f32) {
        src = c->src;
        dst = c->dst;
    } else {
        any_like(&src, &c->src, cdt);
        any_like(&dst, &c->dst, c->kind == CONV_FWD ? dnnl_f32 : cdt);
    }
    any_like(&wei, &c->wei, cdt);
    dnnl_dims_t bdims = {c->dst.dims[1]};
    dnnl_memory_desc_init_by_tag(&bias, 1, bdims, dnnl_f32, dnnl_a);
    const dnnl_memory_desc_t *bp = c->has_bias ? &bias : NULL;
    dnnl_primitive_attr_t attr;
    dnnl_status_t st = make_attr(c, &attr);
    if (st != dnnl_success) return st;
    dnnl_convolution_desc_t cd;
    dnnl_alg_kind_t alg = c->wino ? dnnl_convolution_winograd : dnnl_convolution_direct;
    /* Winograd for inference caches its transformed weights (a slow reorder);
     * for training, whose weights change every step, the kernel transforms
     * them itself */
    dnnl_prop_kind_t fwd_prop = c->wino && c->training ? dnnl_forward_training : dnnl_forward_inference;
    *pd = NULL;
    if (c->kind == CONV_FWD) {
        st = dnnl_dilated_convolution_forward_desc_init(&cd, fwd_prop, alg, &src, &wei, bp, &dst, c->strides, c->dil,
                                                        c->pad_l, c->pad_r);
        if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, &cd, attr, fd_dnnl_engine(), NULL);
    } else {
        /* A backward primitive needs the forward one it mirrors as a hint.
         * With bf16 compute the gradient it writes stays f32 (diff_src for
         * backward data, diff_weights for backward weights). */
        dnnl_convolution_desc_t fd;
        dnnl_primitive_desc_t hint = NULL;
        dnnl_memory_desc_t out32;
        st = dnnl_dilated_convolution_forward_desc_init(&fd, dnnl_forward_training, alg, &src,
                                                        &wei, bp, &dst, c->strides, c->dil, c->pad_l, c->pad_r);
        if (st == dnnl_success) st = dnnl_primitive_desc_create(&hint, &fd, NULL, fd_dnnl_engine(), NULL);
        if (st == dnnl_success && c->kind == CONV_BWD_DATA) {
            if (cdt == dnnl_f32)
                out32 = src;
            else
                any_like(&out32, &c->src, dnnl_f32);
            st = dnnl_dilated_convolution_backward_data_desc_init(&cd, alg, &out32, &wei, &dst,
                                                                  c->strides, c->dil, c->pad_l, c->pad_r);
        } else if (st == dnnl_success) {
            if (cdt == dnnl_f32)
                out32 = wei;
            else
                any_like(&out32, &c->wei, dnnl_f32);
            st = dnnl_dilated_convolution_backward_weights_desc_init(&cd, alg, &src, &out32, bp,
                                                                     &dst, c->strides, c->dil, c->pad_l, c->pad_r);
        }
        if (st == dnnl_success) st = dnnl_primitive_desc_create(pd, &cd, attr, fd_dnnl_engine(), hint);
        if (st == dnnl_success)
            *keep = hint;
        else if (hint)
            dnnl_primitive_desc_destroy(hint);
    }
    dnnl_primitive_attr_destroy(attr);
    return st;
}

static dnnl_status_t make_conv(void *vctx, dnnl_primitive_desc_t *pd, dnnl_primitive_desc_t *keep)
{
    /* format any: oneDNN picks the layout its best kernel wants (NHWC for
     * brgconv on AVX-512, nChw8c for jit:avx2) and the call reorders only
     * activations that lie differently. plain_first (the timed alternative,
     * see fd_conv2d) asks for the activations as they lie instead. */
    const conv_ctx *c = vctx;
    conv_ctx direct = *c;
    direct.wino = 0;
    if (c->plain_first && c->cdt == dnnl_f32 && conv_try(&direct, 1, dnnl_f32, pd, keep) == dnnl_success)
        return dnnl_success;
    /* Winograd's kernels want their own blocked activations: `any` only */
    if (c->wino && conv_try(c, 0, dnnl_f32, pd, keep) == dnnl_success) return dnnl_success;
    c = &direct;
    dnnl_status_t st = conv_try(c, 0, c->cdt, pd, keep);
    if (st == dnnl_unimplemented && c->cdt != dnnl_f32) st = conv_try(c, 0, dnnl_f32, pd, keep); /* bf16 refused */
    if (st != dnnl_success) st = conv_try(c, 1, dnnl_f32, pd, keep);
    return st;
}

/* Fills the parts of the context shared by all three kinds. */
static void conv_geometry(conv_ctx *c, const fd_tensor *w, const fd_conv_params *p)
{
    for (int i = 0; i < 2; i++) {
        c->strides[i] = p->stride[i];
        c->dil[i] = p->dilation[i] - 1; /* oneDNN counts the gaps */
        c->pad_l[i] = p->padding[i];
        /* oneDNN checks (in - span + l + r) / s + 1 == out; symmetric padding
         * gives torch's floor for any stride. */
        c->pad_r[i] = p->padding[i];
    }
    /* grouped weights are [G, O/G, C/G, KH, KW] to oneDNN */
    int64_t g = p->groups, o = w->shape[0];
    dnnl_dims_t dims, st;
    int nd = 0;
    if (g > 1) dims[nd] = g, st[nd++] = (o / g) * w->shape[1] * w->shape[2] * w->shape[3];
    dims[nd] = o / g, st[nd++] = w->shape[1] * w->shape[2] * w->shape[3];
    dims[nd] = w->shape[1], st[nd++] = w->shape[2] * w->shape[3];
    dims[nd] = w->shape[2], st[nd++] = w->shape[3];
    dims[nd] = w->shape[3], st[nd++] = 1;
    dnnl_memory_desc_init_by_strides(&c->wei, nd, dims, fd_dnnl_dt(w->dtype), st);
}

static void conv_key(fd_dnnl_key *k, const char *what, const conv_ctx *c, const fd_conv_params *p)
{
    fd_dnnl_key_init(k, what);
    fd_dnnl_key_bytes(k, &c->src, sizeof c->src);
    fd_dnnl_key_bytes(k, &c->wei, sizeof c->wei);
    fd_dnnl_key_bytes(k, &c->dst, sizeof c->dst);
    int64_t v[] = {c->has_bias,   c->sum,       c->act,       c->cdt,       c->plain_first, c->wino,
                   c->training,   p->stride[0], p->stride[1], p->padding[0], p->padding[1], p->dilation[0],
                   p->dilation[1], p->groups};
    fd_dnnl_key_bytes(k, v, sizeof v);
}

static int dnnl_fallbacks;

/* Notes bf16 falling back to f32 for a primitive that was asked for bf16. */
static void note_fallback(const char *op, const conv_ctx *c, const fd_dnnl_prim *pr)
{
    if (c->cdt != dnnl_bf16) return;
    /* the input every kind reads in the compute dtype */
    dnnl_query_t q = c->kind == CONV_FWD ? dnnl_query_src_md : dnnl_query_diff_dst_md;
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pr->pd, q, 0);
    if (!md || md->data_type != dnnl_bf16) fd_dnnl_note_bf16_fallback(op);
}

/* ---- forward ------------------------------------------------------------ */

static int conv_fwd_dnnl(fd_tensor *out, const fd_tensor *x_in, const fd_tensor *w, const fd_tensor *b,
                         const fd_tensor *residual, const fd_conv_params *p, const int64_t os[4], int plain_first)
{
    fd_tensor x = {0}, bias = {0};
    fd_layout xl, ol = fd_conv_out_layout(x_in, p->layout);
    conv_ctx c = {.kind = CONV_FWD, .has_bias = b != NULL, .sum = residual != NULL, .act = p->act,
                  .cdt = fd_compute_resolve(p->compute) == FD_BF16 ? dnnl_bf16 : dnnl_f32,
                  .plain_first = plain_first};
    c.wino = wants_winograd(p, w, c.cdt);
    c.training = p->training;
    int rc = FD_ERR;
    if (usable(&x, x_in, &xl)) return FD_ERR;
    if (fd_tensor_empty_layout(out, FD_F32, os, ol)) goto done;
    if (residual && fd_tensor_copy_(out, residual)) goto done;
    if (md_4d(&c.src, &x, xl, "conv2d") || md_4d(&c.dst, out, ol, "conv2d")) goto done;
    conv_geometry(&c, w, p);
    fd_dnnl_key k;
    conv_key(&k, "conv2d_fwd", &c, p);
    const fd_dnnl_prim *pr;
    if (fd_dnnl_cached("conv2d", &k, make_conv, &c, &pr, NULL)) goto done;
    note_fallback("conv2d", &c, pr);
    count_winograd(pr);
    const dnnl_memory_desc_t *want_w = dnnl_primitive_desc_query_md(pr->pd, dnnl_query_weights_md, 0);
    dnnl_memory_desc_t want = *want_w;
    void *wp;
    if (fd_dnnl_weights("conv2d", w, &c.wei, &want, &wp)) goto done;
    fd_dnnl_call call;
    fd_dnnl_call_init(&call, "conv2d", pr);
    dnnl_memory_desc_t bmd;
    if (b) {
        if (fd_tensor_contiguous(&bias, b)) goto done;
        dnnl_dims_t bd = {b->shape[0]};
        dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_a);
    }
    if (fd_dnnl_call_input(&call, DNNL_ARG_SRC, dnnl_query_src_md, &c.src, fd_tensor_data(&x)) ||
        fd_dnnl_call_raw(&call, DNNL_ARG_WEIGHTS, dnnl_query_weights_md, wp) ||
        (b && fd_dnnl_call_bind(&call, DNNL_ARG_BIAS, &bmd, fd_tensor_data(&bias))) ||
        fd_dnnl_call_output(&call, DNNL_ARG_DST, dnnl_query_dst_md, &c.dst, fd_tensor_data(out), residual != NULL)) {
        fd_dnnl_call_free(&call);
        goto done;
    }
    if (fd_dnnl_call_run(&call)) goto done;
    rc = FD_OK;
done:
    fd_tensor_release(&x);
    fd_tensor_release(&bias);
    if (rc) fd_tensor_release(out);
    return rc;
}

/* The layout policy: fixed when asked, else timed per signature (fd_tune)
 * for channels-last inputs: jit:avx2 can run on them directly, saving two
 * reorders, or on its blocked layout; which is faster depends on the shape. */
static int conv_fwd_tuned(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b,
                          const fd_tensor *residual, const fd_conv_params *p, const int64_t os[4])
{
    /* Plain NCHW gets im2col gemm on every ISA (and a large scratchpad): only
     * channels-last inputs have a plain alternative worth timing. */
    if (p->layout_policy != FD_CONV_AUTO || fd_compute_resolve(p->compute) != FD_F32 || !fd_is_channels_last(x))
        return conv_fwd_dnnl(out, x, w, b, residual, p, os, p->layout_policy == FD_CONV_PLAIN);
    int64_t sig[] = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3], b != NULL, residual != NULL,
                     p->stride[0], p->stride[1], p->padding[0], p->padding[1], p->dilation[0], p->dilation[1],
                     p->groups, p->act, fd_conv_out_layout(x, p->layout), fd_get_num_threads()};
    uint64_t h = fd_tune_hash(fd_tune_hash(0, "conv2d", 6), sig, sizeof sig);
    int timed, which = fd_tune_choose(h, &timed); /* 0: any, 1: plain */
    double t0 = omp_get_wtime();
    int rc = conv_fwd_dnnl(out, x, w, b, residual, p, os, which);
    if (rc == FD_OK && timed) fd_tune_record(h, which, omp_get_wtime() - t0);
    return rc;
}

/* The reference loops read strides: blocked operands go in as NCHW, and the
 * output comes out NCHW (a layout is a speed matter, never a result). */
static int ref_conv2d(fd_tensor *out, const fd_tensor *x_in, const fd_tensor *w, const fd_tensor *b,
                      const fd_tensor *res_in, const fd_conv_params *p)
{
    fd_tensor x = {0}, res = {0};
    fd_conv_params q = *p;
    if (fd_conv_out_layout(x_in, q.layout) == FD_LAYOUT_BLOCKED) q.layout = FD_LAYOUT_NCHW;
    int rc = fd_tensor_unblock(&x, x_in) || (res_in && fd_tensor_unblock(&res, res_in)) ||
             fd_ref_conv2d(out, &x, w, b, res_in ? &res : NULL, &q);
    fd_tensor_release(&x);
    fd_tensor_release(&res);
    return rc ? FD_ERR : FD_OK;
}

int fd_conv2d(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b,
              const fd_tensor *residual, const fd_conv_params *p)
{
    int64_t os[4];
    memset(out, 0, sizeof *out);
    if (fd_conv2d_check("conv2d", x, w, b, residual, p, os)) return FD_ERR;
    if ((x->dtype != FD_F32 && x->dtype != FD_BF16) || p->force_ref) return ref_conv2d(out, x, w, b, residual, p);
    if (conv_fwd_tuned(out, x, w, b, residual, p, os) == FD_OK) return FD_OK;
    dnnl_fallbacks++; /* oneDNN refused: the reference loops still answer */
    return ref_conv2d(out, x, w, b, residual, p);
}

/* ---- backward ----------------------------------------------------------- */

/* The output gradient in the layout a backward primitive wants: reordered
 * once and kept, so the data and weights passes (which want the same blocked
 * layout on AVX-512) share one reorder of it. */
typedef struct held_grad {
    dnnl_memory_desc_t md;
    fd_storage *tmp;
} held_grad;

static int bind_diff_dst(fd_dnnl_call *call, held_grad *h, const dnnl_memory_desc_t *user_md, const void *user)
{
    const dnnl_memory_desc_t *want = dnnl_primitive_desc_query_md(call->p->pd, dnnl_query_diff_dst_md, 0);
    if (dnnl_memory_desc_equal(want, user_md)) return fd_dnnl_call_bind(call, DNNL_ARG_DIFF_DST, user_md, (void *)user);
    if (!h->tmp || !dnnl_memory_desc_equal(want, &h->md)) {
        if (h->tmp) fd_storage_release(h->tmp);
        size_t nbytes = dnnl_memory_desc_get_size(want);
        h->md = *want;
        if (fd_storage_new(&h->tmp, nbytes ? nbytes : 64)) return h->tmp = NULL, FD_ERR;
        if (fd_dnnl_reorder(call->op, user_md, user, want, h->tmp->data)) return FD_ERR;
    }
    return fd_dnnl_call_bind(call, DNNL_ARG_DIFF_DST, &h->md, h->tmp->data);
}

static int conv_bwd_dnnl(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy_in, const fd_tensor *x_in,
                         const fd_tensor *w, const fd_conv_params *p, const int64_t os[4])
{
    fd_tensor x = {0}, gy = {0}, gw_tmp = {0};
    held_grad held = {0};
    fd_layout xl, yl, gl = fd_conv_out_layout(x_in, p->layout);
    dnnl_data_type_t cdt = fd_compute_resolve(p->compute) == FD_BF16 ? dnnl_bf16 : dnnl_f32;
    int rc = FD_ERR;
    if (usable(&x, x_in, &xl) || usable(&gy, gy_in, &yl)) goto done;
    if (gx) { /* grad_input = conv_transpose(gy, w) */
        conv_ctx c = {.kind = CONV_BWD_DATA, .cdt = cdt, .wino = wants_winograd(p, w, cdt)};
        if (fd_tensor_empty_layout(gx, FD_F32, x.shape, gl)) goto done;
        if (md_4d(&c.src, gx, gl, "conv2d_backward") || md_4d(&c.dst, &gy, yl, "conv2d_backward")) goto done;
        conv_geometry(&c, w, p);
        fd_dnnl_key k;
        conv_key(&k, "conv2d_bwd_data", &c, p);
        const fd_dnnl_prim *pr;
        if (fd_dnnl_cached("conv2d_backward", &k, make_conv, &c, &pr, NULL)) goto done;
        note_fallback("conv2d_backward", &c, pr);
        count_winograd(pr);
        dnnl_memory_desc_t want = *dnnl_primitive_desc_query_md(pr->pd, dnnl_query_weights_md, 0);
        void *wp;
        if (fd_dnnl_weights("conv2d_backward", w, &c.wei, &want, &wp)) goto done;
        fd_dnnl_call call;
        fd_dnnl_call_init(&call, "conv2d_backward", pr);
        if (bind_diff_dst(&call, &held, &c.dst, fd_tensor_data(&gy)) ||
            fd_dnnl_call_raw(&call, DNNL_ARG_WEIGHTS, dnnl_query_weights_md, wp) ||
            fd_dnnl_call_output(&call, DNNL_ARG_DIFF_SRC, dnnl_query_diff_src_md, &c.src, fd_tensor_data(gx), 0)) {
            fd_dnnl_call_free(&call);
            goto done;
        }
        if (fd_dnnl_call_run(&call)) goto done;
    }
    if (gw || gb) { /* grad_weight = corr(x, gy), grad_bias = sum gy */
        conv_ctx c = {.kind = CONV_BWD_WEIGHTS, .cdt = cdt, .has_bias = gb != NULL, .wino = wants_winograd(p, w, cdt)};
        fd_tensor *gwt = gw ? gw : &gw_tmp;
        int64_t bshape[1] = {w->shape[0]};
        if (fd_tensor_empty(gwt, FD_F32, 4, w->shape)) goto done;
        if (gb && fd_tensor_empty(gb, FD_F32, 1, bshape)) goto done;
        if (md_4d(&c.src, &x, xl, "conv2d_backward") || md_4d(&c.dst, &gy, yl, "conv2d_backward")) goto done;
        conv_geometry(&c, gwt, p);
        fd_dnnl_key k;
        conv_key(&k, "conv2d_bwd_weights", &c, p);
        const fd_dnnl_prim *pr;
        if (fd_dnnl_cached("conv2d_backward", &k, make_conv, &c, &pr, NULL)) goto done;
        note_fallback("conv2d_backward", &c, pr);
        count_winograd(pr);
        fd_dnnl_call call;
        fd_dnnl_call_init(&call, "conv2d_backward", pr);
        dnnl_memory_desc_t bmd;
        dnnl_dims_t bd = {w->shape[0]};
        dnnl_memory_desc_init_by_tag(&bmd, 1, bd, dnnl_f32, dnnl_a);
        if (fd_dnnl_call_input(&call, DNNL_ARG_SRC, dnnl_query_src_md, &c.src, fd_tensor_data(&x)) ||
            bind_diff_dst(&call, &held, &c.dst, fd_tensor_data(&gy)) ||
            fd_dnnl_call_output(&call, DNNL_ARG_DIFF_WEIGHTS, dnnl_query_diff_weights_md, &c.wei,
                                fd_tensor_data(gwt), 0) ||
            (gb && fd_dnnl_call_bind(&call, DNNL_ARG_DIFF_BIAS, &bmd, fd_tensor_data(gb)))) {
            fd_dnnl_call_free(&call);
            goto done;
        }
        if (fd_dnnl_call_run(&call)) goto done;
    }
    rc = FD_OK;
done:
    fd_tensor_release(&x);
    fd_tensor_release(&gy);
    fd_tensor_release(&gw_tmp);
    if (held.tmp) fd_storage_release(held.tmp);
    if (rc) {
        if (gx) fd_tensor_release(gx);
        if (gw) fd_tensor_release(gw);
        if (gb) fd_tensor_release(gb);
    }
    return rc;
}

int fd_conv2d_backward(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *x,
                       const fd_tensor *w, const fd_conv_params *p)
{
    int64_t os[4];
    if (gx) memset(gx, 0, sizeof *gx);
    if (gw) memset(gw, 0, sizeof *gw);
    if (gb) memset(gb, 0, sizeof *gb);
    if (x->block || gy->block) { /* backward runs on NCHW (the Lua binding converts before it gets here) */
        fd_tensor xp, gp;
        if (fd_tensor_unblock(&xp, x)) return FD_ERR;
        if (fd_tensor_unblock(&gp, gy)) return fd_tensor_release(&xp), FD_ERR;
        fd_conv_params q = *p;
        if (q.layout == FD_LAYOUT_BLOCKED) q.layout = FD_LAYOUT_NCHW;
        int rc = fd_conv2d_backward(gx, gw, gb, &gp, &xp, w, &q);
        fd_tensor_release(&xp), fd_tensor_release(&gp);
        return rc;
    }
    if (x->dtype == FD_BF16)
        return fd_fail("conv2d_backward: input dtype bf16; the backward takes the f32 activations (bf16 inputs are "
                       "for inference)");
    if (fd_conv2d_check("conv2d_backward", x, w, NULL, NULL, p, os)) return FD_ERR;
    if (fd_conv_check_dtype("conv2d_backward", "grad_output", gy, x)) return FD_ERR;
    if (gy->ndim != 4 || memcmp(gy->shape, os, sizeof os) != 0)
        return fd_fail("conv2d_backward: grad_output %s vs output shape %s", FD_SHAPE_STR(gy),
                       fd_shape_str((char[128]){0}, 128, 4, os));
    if (x->dtype != FD_F32 || p->force_ref) return fd_ref_conv2d_backward(gx, gw, gb, gy, x, w, p);
    if (conv_bwd_dnnl(gx, gw, gb, gy, x, w, p, os) == FD_OK) return FD_OK;
    dnnl_fallbacks++;
    return fd_ref_conv2d_backward(gx, gw, gb, gy, x, w, p);
}

int fd_conv_dnnl_fallbacks(void) { return dnnl_fallbacks; }

/* ---- conv1d: conv2d with H = 1 ------------------------------------------ */

static int as_2d(const char *op, const fd_tensor *t, const char *what, fd_tensor *v)
{
    memset(v, 0, sizeof *v);
    if (!t) return FD_OK;
    if (t->ndim != 3) return fd_fail("%s: %s %s must have 3 dims", op, what, FD_SHAPE_STR(t));
    fd_tensor_view_of(v, t);
    if (fd_view_unsqueeze(v, 2)) {
        fd_tensor_release(v);
        return FD_ERR;
    }
    return FD_OK;
}

static void params_1d(fd_conv_params *q, const fd_conv_params *p)
{
    *q = *p;
    q->stride[0] = 1, q->padding[0] = 0, q->dilation[0] = 1;
}

int fd_conv1d(fd_tensor *out, const fd_tensor *x, const fd_tensor *w, const fd_tensor *b,
              const fd_tensor *residual, const fd_conv_params *p)
{
    fd_tensor x2, w2, r2;
    fd_conv_params q;
    params_1d(&q, p);
    memset(out, 0, sizeof *out);
    if (as_2d("conv1d", x, "input", &x2)) return FD_ERR;
    if (as_2d("conv1d", w, "weight", &w2)) {
        fd_tensor_release(&x2);
        return FD_ERR;
    }
    int rc = as_2d("conv1d", residual, "residual", &r2);
    if (rc == FD_OK) rc = fd_conv2d(out, &x2, &w2, b, residual ? &r2 : NULL, &q);
    if (rc == FD_OK) rc = fd_view_squeeze(out, 2);
    if (rc) fd_tensor_release(out);
    fd_tensor_release(&x2), fd_tensor_release(&w2), fd_tensor_release(&r2);
    return rc;
}

int fd_conv1d_backward(fd_tensor *gx, fd_tensor *gw, fd_tensor *gb, const fd_tensor *gy, const fd_tensor *x,
                       const fd_tensor *w, const fd_conv_params *p)
{
    fd_tensor x2 = {0}, w2 = {0}, g2 = {0};
    fd_conv_params q;
    params_1d(&q, p);
    int rc = as_2d("conv1d_backward", x, "input", &x2);
    if (rc == FD_OK) rc = as_2d("conv1d_backward", w, "weight", &w2);
    if (rc == FD_OK) rc = as_2d("conv1d_backward", gy, "grad_output", &g2);
    if (rc == FD_OK) rc = fd_conv2d_backward(gx, gw, gb, &g2, &x2, &w2, &q);
    if (rc == FD_OK && gx) rc = fd_view_squeeze(gx, 2);
    if (rc == FD_OK && gw) rc = fd_view_squeeze(gw, 2);
    if (rc) {
        if (gx) fd_tensor_release(gx);
        if (gw) fd_tensor_release(gw);
        if (gb) fd_tensor_release(gb);
    }
    fd_tensor_release(&x2), fd_tensor_release(&w2), fd_tensor_release(&g2);
    return rc;
}
