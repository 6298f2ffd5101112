/* Lua bindings of the nn ops (see ops/common/fd_nn_common.h) as raw kernels in
 * fada.ops, and the same signatures bound to the reference kernels in fada.ops.ref. Every
 * function returns new tensors and whatever its backward needs; the autograd
 * layer (fada.F) composes them later. fada.ops is shared with other binding
 * files: we get or create it, never replace it.
 *
 * Conventions: dims are 1-based (negative from the end); optional tensors are
 * nil; options come in a trailing table. bf16/f16 inputs compute in f32 and
 * their results come back in the input's dtype (mean, rstd, lse stay f32). Each binding makes its empty output
 * userdata first, then calls the core, which frees what it holds on failure. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ops/attention/fd_attention.h"
#include "ops/backend/fd_dnnl.h"
#include "ops/common/fd_nn_common.h"
#include "ops/elementwise/fd_activation.h"
#include "ops/elementwise/fd_activation_check.h"
#include "ops/elementwise/fd_adamw.h"
#include "ops/index/fd_embedding.h"
#include "ops/norm/fd_group_norm.h"
#include "ops/norm/fd_layer_norm_softmax.h"
#include "ops/reduce/fd_loss.h"
#include "ops/resample/fd_pad.h"
#include "ops/resample/fd_resample.h"
#include "runtime/lua/fd_lua.h"

/* upvalue 1: 0 = fast kernel, 1 = reference kernel */
#define REF() (lua_toboolean(L, lua_upvalueindex(1)))

static const fd_tensor *opt_tensor(lua_State *L, int arg)
{
    return lua_isnoneornil(L, arg) ? NULL : fd_lua_checktensor(L, arg);
}

/* Replaces released optional outputs (from `first` on, `n` of them) by nil. */
static void nil_released(lua_State *L, int first, int n)
{
    for (int i = first; i < first + n; i++) {
        fd_tensor *t = fd_lua_totensor(L, i);
        if (!t) {
            lua_pushnil(L);
            lua_replace(L, i);
        }
    }
}

/* Ends a binding: raises the core's error, else converts the first `nconv`
 * of the `nret` results on top of the stack to dt when the input was bf16 or
 * f16 (the fast kernels compute and return f32). */
static int done(lua_State *L, int rc, fd_dtype dt, int nret, int nconv)
{
    if (rc) return fd_lua_error(L);
    if (dt != FD_BF16 && dt != FD_F16) return nret;
    int first = lua_gettop(L) - nret + 1;
    for (int i = first; i < first + nconv; i++) {
        fd_tensor *t = fd_lua_totensor(L, i);
        if (t && t->dtype != dt && fd_nn_to_dtype_inplace(t, dt)) return fd_lua_error(L);
    }
    return nret;
}

/* ---- group_norm ----------------------------------------------------------- */

/* ops.group_norm(x [N, C, ...], groups, weight [C] | nil, bias [C] | nil, {eps = 1e-5, silu = false,
 *                scale = [N or 1, C(, 1, 1)], shift = same, bf16_nhwc = false})
 *   -> y (like x; channels-last and blocked stay so), mean [N, G], rstd [N, G]
 *   y = act((norm(x) * weight + bias) * (1 + scale) + shift); scale / shift: forward only, f32 x;
 *   bf16_nhwc: y bf16 stored channels-last, what a bf16 convolution reads in place (4-d f32 x) */
static int l_group_norm(lua_State *L)
{
    /* the fast kernel reads the blocked layout (fd_tensor.block) as it is */
    const fd_tensor *x = REF() ? fd_lua_checktensor(L, 1) : fd_lua_checktensor_any(L, 1);
    const fd_tensor *w = opt_tensor(L, 3), *b = opt_tensor(L, 4);
    int64_t G = luaL_checkinteger(L, 2);
    double eps = fd_lua_opt_num(L, 5, "eps", 1e-5);
    bool silu = fd_lua_opt_bool(L, 5, "silu", false), bf16_nhwc = fd_lua_opt_bool(L, 5, "bf16_nhwc", false);
    if (bf16_nhwc && REF()) return luaL_error(L, "group_norm: the reference kernel writes no bf16_nhwc output");
    const fd_tensor *scale = NULL, *shift = NULL; /* stay on the stack (alive) until we return */
    if (lua_istable(L, 5)) {
        lua_settop(L, 5);
        if (lua_getfield(L, 5, "scale") != LUA_TNIL) scale = fd_lua_checktensor(L, 6);
        if (lua_getfield(L, 5, "shift") != LUA_TNIL) shift = fd_lua_checktensor(L, 7);
        if ((scale || shift) && REF()) return luaL_error(L, "group_norm: the reference kernel takes no scale / shift");
    }
    fd_tensor *y = fd_lua_newtensor(L), *m = fd_lua_newtensor(L), *r = fd_lua_newtensor(L);
    int rc = REF()       ? fd_ref_group_norm(y, m, r, x, G, w, b, eps, silu)
             : bf16_nhwc ? fd_group_norm_bf16_nhwc(y, m, r, x, G, w, b, scale, shift, eps, silu)
                         : fd_group_norm_mod(y, m, r, x, G, w, b, scale, shift, eps, silu);
    return done(L, rc, x->dtype, 3, 1);
}

/* ops.group_norm_backward(dy, x, mean, rstd, groups, weight | nil, bias | nil, {silu = false})
 *   -> dx, dweight (nil without weight), dbias (nil without bias) */
static int l_group_norm_backward(lua_State *L)
{
    const fd_tensor *dy = fd_lua_checktensor(L, 1), *x = fd_lua_checktensor(L, 2), *m = fd_lua_checktensor(L, 3),
                    *r = fd_lua_checktensor(L, 4), *w = opt_tensor(L, 6), *b = opt_tensor(L, 7);
    int64_t G = luaL_checkinteger(L, 5);
    bool silu = fd_lua_opt_bool(L, 8, "silu", false);
    lua_settop(L, 8);
    fd_tensor *dx = fd_lua_newtensor(L), *dw = fd_lua_newtensor(L), *db = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_group_norm_backward(dx, dw, db, dy, x, m, r, G, w, b, silu)
                   : fd_group_norm_backward(dx, dw, db, dy, x, m, r, G, w, b, silu);
    if (rc) return fd_lua_error(L);
    nil_released(L, 10, 2);
    return done(L, 0, x->dtype, 3, 3);
}

/* ops.group_norm_mod_backward(dy, x, mean, rstd, groups, weight | nil, bias | nil, scale | nil, shift | nil,
 *                             {silu = false}) -> dx, dweight, dbias, dscale, dshift (nil where not given)
 *   the backward of group_norm with scale / shift (f32 x); no reference kernel of its own: the tests
 *   compare it with the recorded pieces (norm, product, sum, SiLU) */
static int l_group_norm_mod_backward(lua_State *L)
{
    if (REF()) return luaL_error(L, "group_norm_mod_backward: no reference kernel (compose the pieces)");
    const fd_tensor *dy = fd_lua_checktensor(L, 1), *x = fd_lua_checktensor(L, 2), *m = fd_lua_checktensor(L, 3),
                    *r = fd_lua_checktensor(L, 4), *w = opt_tensor(L, 6), *b = opt_tensor(L, 7),
                    *s = opt_tensor(L, 8), *t = opt_tensor(L, 9);
    int64_t G = luaL_checkinteger(L, 5);
    bool silu = fd_lua_opt_bool(L, 10, "silu", false);
    lua_settop(L, 10);
    fd_tensor *dx = fd_lua_newtensor(L), *dw = fd_lua_newtensor(L), *db = fd_lua_newtensor(L),
              *ds = fd_lua_newtensor(L), *dt = fd_lua_newtensor(L);
    if (fd_group_norm_mod_backward(dx, dw, db, ds, dt, dy, x, m, r, G, w, b, s, t, silu)) return fd_lua_error(L);
    nil_released(L, 12, 4);
    return 5;
}

/* ---- layer_norm -------------------------------------------------------------- */

/* ops.layer_norm(x [..., D], weight [D] | nil, bias [D] | nil, {eps = 1e-5}) -> y, mean [...], rstd [...] */
static int l_layer_norm(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1), *w = opt_tensor(L, 2), *b = opt_tensor(L, 3);
    double eps = fd_lua_opt_num(L, 4, "eps", 1e-5);
    fd_tensor *y = fd_lua_newtensor(L), *m = fd_lua_newtensor(L), *r = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_layer_norm(y, m, r, x, w, b, eps) : fd_layer_norm(y, m, r, x, w, b, eps);
    return done(L, rc, x->dtype, 3, 1);
}

/* ops.layer_norm_backward(dy, x, mean, rstd, weight | nil, bias | nil) -> dx, dweight | nil, dbias | nil */
static int l_layer_norm_backward(lua_State *L)
{
    const fd_tensor *dy = fd_lua_checktensor(L, 1), *x = fd_lua_checktensor(L, 2), *m = fd_lua_checktensor(L, 3),
                    *r = fd_lua_checktensor(L, 4), *w = opt_tensor(L, 5), *b = opt_tensor(L, 6);
    lua_settop(L, 6);
    fd_tensor *dx = fd_lua_newtensor(L), *dw = fd_lua_newtensor(L), *db = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_layer_norm_backward(dx, dw, db, dy, x, m, r, w, b)
                   : fd_layer_norm_backward(dx, dw, db, dy, x, m, r, w, b);
    if (rc) return fd_lua_error(L);
    nil_released(L, 8, 2);
    return done(L, 0, x->dtype, 3, 3);
}

/* ---- softmax ------------------------------------------------------------------ */

/* ops.softmax(x, [dim = -1]) / ops.log_softmax(x, [dim = -1]) -> y.  upvalue 2: log */
static int l_softmax(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1);
    int dim = lua_isnoneornil(L, 2) ? x->ndim - 1 : fd_lua_checkdim(L, 2, x->ndim);
    bool lg = lua_tointeger(L, lua_upvalueindex(2)) != 0;
    fd_tensor *y = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_softmax(y, x, dim, lg) : fd_softmax(y, x, dim, lg);
    return done(L, rc, x->dtype, 1, 1);
}

/* ops.softmax_backward(dy, y, [dim = -1]) / ops.log_softmax_backward(dy, y, [dim]) -> dx (y = forward output) */
static int l_softmax_backward(lua_State *L)
{
    const fd_tensor *dy = fd_lua_checktensor(L, 1), *y = fd_lua_checktensor(L, 2);
    int dim = lua_isnoneornil(L, 3) ? y->ndim - 1 : fd_lua_checkdim(L, 3, y->ndim);
    bool lg = lua_tointeger(L, lua_upvalueindex(2)) != 0;
    fd_tensor *dx = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_softmax_backward(dx, dy, y, dim, lg) : fd_softmax_backward(dx, dy, y, dim, lg);
    return done(L, rc, y->dtype, 1, 1);
}

/* ---- optimiser ----------------------------------------------------------------- */

/* ops.adamw_step_(param, grad, exp_avg, exp_avg_sq, {lr, beta1 = 0.9, beta2 = 0.999, eps = 1e-8,
 *                 weight_decay = 0, step}) -> param: one fused AdamW update in place (fd_adamw.h) */
static int l_adamw_step(lua_State *L)
{
    fd_tensor *p = fd_lua_checktensor(L, 1), *m = fd_lua_checktensor(L, 3), *v = fd_lua_checktensor(L, 4);
    const fd_tensor *g = fd_lua_checktensor(L, 2);
    luaL_checktype(L, 5, LUA_TTABLE);
    fd_adamw_args a = {fd_lua_opt_num(L, 5, "lr", NAN), fd_lua_opt_num(L, 5, "beta1", 0.9),
                       fd_lua_opt_num(L, 5, "beta2", 0.999), fd_lua_opt_num(L, 5, "eps", 1e-8),
                       fd_lua_opt_num(L, 5, "weight_decay", 0), (int64_t)fd_lua_opt_int(L, 5, "step", 0)};
    if (isnan(a.lr)) return luaL_error(L, "adamw_step_: give the options table an lr");
    int rc = REF() ? fd_ref_adamw_step(p, g, m, v, &a) : fd_adamw_step(p, g, m, v, &a);
    if (rc) return fd_lua_error(L);
    lua_settop(L, 1);
    return 1;
}

/* ---- attention ----------------------------------------------------------------- */

static void attention_opts(lua_State *L, int arg, fd_attention_args *a)
{
    memset(a, 0, sizeof *a);
    if (!lua_isnoneornil(L, arg)) luaL_checktype(L, arg, LUA_TTABLE);
    a->heads = (int64_t)fd_lua_opt_int(L, arg, "heads", 1);
    a->scale = fd_lua_opt_num(L, arg, "scale", 0);
    a->extra_k = fd_lua_opt_tensor(L, arg, "extra_k");
    a->extra_v = fd_lua_opt_tensor(L, arg, "extra_v");
    a->mask = fd_lua_opt_tensor(L, arg, "mask");
    /* bf16 products: as asked, else when the compute dtype is bf16 */
    bool bf16 = fd_compute_dtype() == FD_BF16;
    if (lua_istable(L, arg)) {
        lua_getfield(L, arg, "bf16");
        if (!lua_isnil(L, -1)) bf16 = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    a->bf16 = bf16;
}

/* ops.attention(q [B, Nq, C], k [B, Nk, C], v [B, Nk, C],
 *               {heads = 1, scale = 1/sqrt(C/heads), extra_k = [B|1, Ne, C], extra_v = ..., mask = ...,
 *                bf16 = (compute dtype is bf16)})
 *   -> o [B, Nq, C], lse [B, heads, Nq]
 * mask broadcasts to [B, heads, Nq, Nk + Ne]: bool/u8 (true = attend) or float (added to the scores). */
static int l_attention(lua_State *L)
{
    const fd_tensor *q = fd_lua_checktensor(L, 1), *k = fd_lua_checktensor(L, 2), *v = fd_lua_checktensor(L, 3);
    fd_attention_args a;
    attention_opts(L, 4, &a);
    lua_settop(L, 4);
    fd_tensor *o = fd_lua_newtensor(L), *lse = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_attention(o, lse, q, k, v, &a) : fd_attention(o, lse, q, k, v, &a);
    return done(L, rc, q->dtype, 2, 1);
}

/* ops.attention_backward(dout, q, k, v, o, lse, {same options as attention})
 *   -> dq, dk, dv, dextra_k | nil, dextra_v | nil */
static int l_attention_backward(lua_State *L)
{
    const fd_tensor *g = fd_lua_checktensor(L, 1), *q = fd_lua_checktensor(L, 2), *k = fd_lua_checktensor(L, 3),
                    *v = fd_lua_checktensor(L, 4), *o = fd_lua_checktensor(L, 5), *lse = fd_lua_checktensor(L, 6);
    fd_attention_args a;
    attention_opts(L, 7, &a);
    lua_settop(L, 7);
    fd_tensor *dq = fd_lua_newtensor(L), *dk = fd_lua_newtensor(L), *dv = fd_lua_newtensor(L),
              *dek = fd_lua_newtensor(L), *dev = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_attention_backward(dq, dk, dv, dek, dev, g, q, k, v, o, lse, &a)
                   : fd_attention_backward(dq, dk, dv, dek, dev, g, q, k, v, o, lse, &a);
    if (rc) return fd_lua_error(L);
    nil_released(L, 11, 2);
    return done(L, 0, q->dtype, 5, 5);
}

/* ---- activations ------------------------------------------------------------------ */

/* ops.silu(x), ops.gelu(x), ops.gelu_tanh(x), ops.sigmoid(x), ops.tanh(x), ops.relu(x) -> y.
 * upvalue 2: the kind */
static int l_activation(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1);
    fd_activation_kind k = (fd_activation_kind)lua_tointeger(L, lua_upvalueindex(2));
    fd_tensor *y = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_activation(y, x, k) : fd_activation(y, x, k);
    return done(L, rc, x->dtype, 1, 1);
}

/* ops.silu_backward(dy, x) (and the same for each activation) -> dx = dy * f'(x) */
static int l_activation_backward(lua_State *L)
{
    const fd_tensor *dy = fd_lua_checktensor(L, 1), *x = fd_lua_checktensor(L, 2);
    fd_activation_kind k = (fd_activation_kind)lua_tointeger(L, lua_upvalueindex(2));
    fd_tensor *dx = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_activation_backward(dx, dy, x, k) : fd_activation_backward(dx, dy, x, k);
    return done(L, rc, x->dtype, 1, 1);
}

/* ---- resampling ---------------------------------------------------------------------- */

/* ops.upsample_nearest(x [N, C, H, W], sh, [sw = sh]) -> [N, C, H*sh, W*sw] */
static int l_upsample_nearest(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1);
    int64_t sh = luaL_checkinteger(L, 2), sw = luaL_optinteger(L, 3, sh);
    fd_tensor *y = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_upsample_nearest(y, x, sh, sw) : fd_upsample_nearest(y, x, sh, sw);
    return done(L, rc, x->dtype, 1, 1);
}

/* ops.upsample_nearest_backward(dy, sh, [sw = sh]) -> dx */
static int l_upsample_nearest_backward(lua_State *L)
{
    const fd_tensor *dy = fd_lua_checktensor(L, 1);
    int64_t sh = luaL_checkinteger(L, 2), sw = luaL_optinteger(L, 3, sh);
    fd_tensor *dx = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_upsample_nearest_backward(dx, dy, sh, sw) : fd_upsample_nearest_backward(dx, dy, sh, sw);
    return done(L, rc, dy->dtype, 1, 1);
}

/* ops.resize_nearest(x [N, C, H, W], oh, ow) -> [N, C, oh, ow] (torch interpolate(size=, mode='nearest')) */
static int l_resize_nearest(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1);
    int64_t oh = luaL_checkinteger(L, 2), ow = luaL_checkinteger(L, 3);
    fd_tensor *y = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_resize_nearest(y, x, oh, ow) : fd_resize_nearest(y, x, oh, ow);
    return done(L, rc, x->dtype, 1, 1);
}

/* ops.resize_nearest_backward(dy, ih, iw) -> dx [N, C, ih, iw] */
static int l_resize_nearest_backward(lua_State *L)
{
    const fd_tensor *dy = fd_lua_checktensor(L, 1);
    int64_t ih = luaL_checkinteger(L, 2), iw = luaL_checkinteger(L, 3);
    fd_tensor *dx = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_resize_nearest_backward(dx, dy, ih, iw) : fd_resize_nearest_backward(dx, dy, ih, iw);
    return done(L, rc, dy->dtype, 1, 1);
}

/* ops.resize_bilinear(x [N, C, H, W], oh, ow) -> [N, C, oh, ow] (torch align_corners=False) */
static int l_resize_bilinear(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1);
    int64_t oh = luaL_checkinteger(L, 2), ow = luaL_checkinteger(L, 3);
    fd_tensor *y = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_resize_bilinear(y, x, oh, ow) : fd_resize_bilinear(y, x, oh, ow);
    return done(L, rc, x->dtype, 1, 1);
}

/* ops.resize_bilinear_backward(dy, ih, iw) -> dx [N, C, ih, iw] */
static int l_resize_bilinear_backward(lua_State *L)
{
    const fd_tensor *dy = fd_lua_checktensor(L, 1);
    int64_t ih = luaL_checkinteger(L, 2), iw = luaL_checkinteger(L, 3);
    fd_tensor *dx = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_resize_bilinear_backward(dx, dy, ih, iw) : fd_resize_bilinear_backward(dx, dy, ih, iw);
    return done(L, rc, dy->dtype, 1, 1);
}

/* ops.avg_pool2d(x, kh, [kw = kh]) -> y (kernel = stride; floor(H / kh) x floor(W / kw), as torch) */
static int l_avg_pool2d(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1);
    int64_t kh = luaL_checkinteger(L, 2), kw = luaL_optinteger(L, 3, kh);
    fd_tensor *y = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_avg_pool2d(y, x, kh, kw) : fd_avg_pool2d(y, x, kh, kw);
    return done(L, rc, x->dtype, 1, 1);
}

/* ops.avg_pool2d_backward(dy, kh, [kw = kh], [ih, iw]) -> dx [N, C, ih, iw]; the input's size
 * defaults to dy's times the kernel (give it when the forward dropped rows or columns) */
static int l_avg_pool2d_backward(lua_State *L)
{
    const fd_tensor *dy = fd_lua_checktensor(L, 1);
    int64_t kh = luaL_checkinteger(L, 2), kw = luaL_optinteger(L, 3, kh);
    int64_t oh = dy->ndim == 4 ? dy->shape[2] : 0, ow = dy->ndim == 4 ? dy->shape[3] : 0;
    int64_t ih = luaL_optinteger(L, 4, oh * kh), iw = luaL_optinteger(L, 5, ow * kw);
    fd_tensor *dx = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_avg_pool2d_backward(dx, dy, kh, kw, ih, iw)
                   : fd_avg_pool2d_backward(dx, dy, kh, kw, ih, iw);
    return done(L, rc, dy->dtype, 1, 1);
}

/* ---- pad ---------------------------------------------------------------------------- */

static int check_pads(lua_State *L, int arg, int64_t *pads)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    int n = (int)lua_rawlen(L, arg);
    if (n > 2 * FD_MAX_DIMS) return luaL_argerror(L, arg, "too many pad values");
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, arg, i + 1);
        int ok;
        pads[i] = lua_tointegerx(L, -1, &ok);
        if (!ok) return luaL_argerror(L, arg, "pad values must be integers");
        lua_pop(L, 1);
    }
    return n;
}

static fd_pad_mode check_mode(lua_State *L, int arg)
{
    const char *m = luaL_optstring(L, arg, "constant");
    if (!strcmp(m, "constant") || !strcmp(m, "zeros")) return FD_PAD_CONSTANT;
    if (!strcmp(m, "reflect")) return FD_PAD_REFLECT;
    luaL_argerror(L, arg, lua_pushfstring(L, "pad mode '%s': expected constant, zeros or reflect", m));
    return FD_PAD_CONSTANT;
}

/* ops.pad(x, {left, right, [top, bottom, ...]}, [mode = 'constant' | 'zeros' | 'reflect'], [value = 0]) -> y
 * (pads in torch order: last dim first; negative values crop) */
static int l_pad(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1);
    int64_t pads[2 * FD_MAX_DIMS];
    int n = check_pads(L, 2, pads);
    fd_pad_mode mode = check_mode(L, 3);
    double value = luaL_optnumber(L, 4, 0);
    fd_tensor *y = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_pad(y, x, n, pads, mode, value) : fd_pad(y, x, n, pads, mode, value);
    return done(L, rc, x->dtype, 1, 1);
}

/* ops.pad_backward(dy, x (for its shape), pads, [mode]) -> dx */
static int l_pad_backward(lua_State *L)
{
    const fd_tensor *dy = fd_lua_checktensor(L, 1), *x = fd_lua_checktensor(L, 2);
    int64_t pads[2 * FD_MAX_DIMS];
    int n = check_pads(L, 3, pads);
    fd_pad_mode mode = check_mode(L, 4);
    fd_tensor *dx = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_pad_backward(dx, dy, x, n, pads, mode) : fd_pad_backward(dx, dy, x, n, pads, mode);
    return done(L, rc, dy->dtype, 1, 1);
}

/* ---- pixel shuffle ---------------------------------------------------------------------- */

/* ops.pixel_shuffle(x [N, C*r*r, H, W], r) -> [N, C, H*r, W*r]; ops.pixel_unshuffle(x, r) the inverse.
 * Each one's backward is the other (also bound as pixel_shuffle_backward / pixel_unshuffle_backward).
 * upvalue 2: unshuffle */
static int l_pixel_shuffle(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1);
    int64_t r = luaL_checkinteger(L, 2);
    bool un = lua_tointeger(L, lua_upvalueindex(2)) != 0;
    fd_tensor *y = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_pixel_shuffle(y, x, r, un) : fd_pixel_shuffle(y, x, r, un);
    return rc ? fd_lua_error(L) : 1;
}

/* ---- embedding ---------------------------------------------------------------------------- */

/* ops.embedding(weight [V, D], indices (i64/i32, 0-based, any shape)) -> [*indices, D] */
static int l_embedding(lua_State *L)
{
    const fd_tensor *w = fd_lua_checktensor(L, 1), *idx = fd_lua_checktensor(L, 2);
    fd_tensor *y = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_embedding(y, w, idx) : fd_embedding(y, w, idx);
    return done(L, rc, w->dtype, 1, 1);
}

/* ops.embedding_backward(dy [*indices, D], indices, num_embeddings) -> dweight [V, D] (scatter-add) */
static int l_embedding_backward(lua_State *L)
{
    const fd_tensor *dy = fd_lua_checktensor(L, 1), *idx = fd_lua_checktensor(L, 2);
    int64_t V = luaL_checkinteger(L, 3);
    fd_tensor *dw = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_embedding_backward(dw, dy, idx, V) : fd_embedding_backward(dw, dy, idx, V);
    return done(L, rc, dy->dtype, 1, 1);
}

/* ---- losses ---------------------------------------------------------------------------------- */

static bool check_reduction(lua_State *L, int arg)
{
    const char *r = fd_lua_opt_str(L, arg, "reduction", "mean");
    if (!strcmp(r, "mean")) return true;
    if (!strcmp(r, "sum")) return false;
    luaL_error(L, "loss: reduction '%s': expected mean or sum", r);
    return true;
}

/* ops.mse_loss(x, target, {reduction = 'mean' | 'sum', weight = w (broadcast to x)}) -> 0-dim tensor;
 * ops.l1_loss the same. upvalue 2: kind */
static int l_loss(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1), *t = fd_lua_checktensor(L, 2);
    const fd_tensor *w = fd_lua_opt_tensor(L, 3, "weight");
    bool mean = check_reduction(L, 3);
    fd_loss_kind k = (fd_loss_kind)lua_tointeger(L, lua_upvalueindex(2));
    fd_tensor *out = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_loss(out, x, t, w, k, mean) : fd_loss(out, x, t, w, k, mean);
    return done(L, rc, x->dtype, 1, 1);
}

/* ops.mse_loss_backward(x, target, {grad = 1, reduction = 'mean', weight = w}) -> dx
 * (d target = -dx); ops.l1_loss_backward the same. */
static int l_loss_backward(lua_State *L)
{
    const fd_tensor *x = fd_lua_checktensor(L, 1), *t = fd_lua_checktensor(L, 2);
    const fd_tensor *w = fd_lua_opt_tensor(L, 3, "weight");
    bool mean = check_reduction(L, 3);
    double g = fd_lua_opt_num(L, 3, "grad", 1.0);
    fd_loss_kind k = (fd_loss_kind)lua_tointeger(L, lua_upvalueindex(2));
    fd_tensor *dx = fd_lua_newtensor(L);
    int rc = REF() ? fd_ref_loss_backward(dx, g, x, t, w, k, mean) : fd_loss_backward(dx, g, x, t, w, k, mean);
    return done(L, rc, x->dtype, 1, 1);
}

/* ---- utilities --------------------------------------------------------------------------------- */

/* ops.nn_set_simd(bool): turn the AVX2 kernels off/on (tests); ops.nn_simd_enabled() -> bool */
static int l_set_simd(lua_State *L)
{
    fd_nn_set_simd(lua_toboolean(L, 1));
    return 0;
}
/* ops.nn_set_avx512(bool): the AVX-512 kernels off (AVX2 instead) or back on; ops.nn_avx512_enabled() -> bool */
static int l_set_avx512(lua_State *L)
{
    fd_nn_set_avx512(lua_toboolean(L, 1));
    return 0;
}
static int l_avx512_enabled(lua_State *L)
{
    lua_pushboolean(L, fd_nn_avx512_enabled());
    return 1;
}
/* ops.nn_set_amx(bool): the AMX kernels off (f32 AVX-512 instead) or back on; ops.nn_amx_enabled() -> bool */
static int l_set_amx(lua_State *L)
{
    fd_nn_set_amx(lua_toboolean(L, 1));
    return 0;
}
static int l_amx_enabled(lua_State *L)
{
    lua_pushboolean(L, fd_nn_amx_enabled());
    return 1;
}
static int l_simd_enabled(lua_State *L)
{
    lua_pushboolean(L, fd_nn_simd_enabled());
    return 1;
}
/* ops.nn_copy_gbs(bytes, [reps = 21]) -> median read+write GB/s of a scale-copy over `bytes` in total */
static int l_copy_gbs(lua_State *L)
{
    lua_pushnumber(L, fd_nn_measure_copy_gbs(luaL_checkinteger(L, 1), (int)luaL_optinteger(L, 2, 21)));
    return 1;
}

/* ---- registration --------------------------------------------------------------------------------- */

typedef struct entry {
    const char *name;
    lua_CFunction fn;
    int has_arg; /* pushes `arg` as the second upvalue */
    lua_Integer arg;
} entry;

static const entry entries[] = {
    {"adamw_step_", l_adamw_step, 0, 0},
    {"group_norm", l_group_norm, 0, 0},
    {"group_norm_backward", l_group_norm_backward, 0, 0},
    {"group_norm_mod_backward", l_group_norm_mod_backward, 0, 0},
    {"layer_norm", l_layer_norm, 0, 0},
    {"layer_norm_backward", l_layer_norm_backward, 0, 0},
    {"softmax", l_softmax, 1, 0},
    {"log_softmax", l_softmax, 1, 1},
    {"softmax_backward", l_softmax_backward, 1, 0},
    {"log_softmax_backward", l_softmax_backward, 1, 1},
    {"attention", l_attention, 0, 0},
    {"attention_backward", l_attention_backward, 0, 0},
    {"upsample_nearest", l_upsample_nearest, 0, 0},
    {"upsample_nearest_backward", l_upsample_nearest_backward, 0, 0},
    {"resize_nearest", l_resize_nearest, 0, 0},
    {"resize_nearest_backward", l_resize_nearest_backward, 0, 0},
    {"resize_bilinear", l_resize_bilinear, 0, 0},
    {"resize_bilinear_backward", l_resize_bilinear_backward, 0, 0},
    {"avg_pool2d", l_avg_pool2d, 0, 0},
    {"avg_pool2d_backward", l_avg_pool2d_backward, 0, 0},
    {"pad", l_pad, 0, 0},
    {"pad_backward", l_pad_backward, 0, 0},
    {"pixel_shuffle", l_pixel_shuffle, 1, 0},
    {"pixel_unshuffle", l_pixel_shuffle, 1, 1},
    {"pixel_shuffle_backward", l_pixel_shuffle, 1, 1},
    {"pixel_unshuffle_backward", l_pixel_shuffle, 1, 0},
    {"embedding", l_embedding, 0, 0},
    {"embedding_backward", l_embedding_backward, 0, 0},
    {"mse_loss", l_loss, 1, FD_LOSS_MSE},
    {"mse_loss_backward", l_loss_backward, 1, FD_LOSS_MSE},
    {"l1_loss", l_loss, 1, FD_LOSS_L1},
    {"l1_loss_backward", l_loss_backward, 1, FD_LOSS_L1},
    {NULL, NULL, 0, 0},
};

/* Registers every entry (and each activation) into the table at `t`, bound to
 * the fast kernels (ref = 0) or the reference kernels (ref = 1). */
static void register_all(lua_State *L, int t, int ref)
{
    for (const entry *e = entries; e->name; e++) {
        lua_pushboolean(L, ref);
        if (e->has_arg) lua_pushinteger(L, e->arg);
        lua_pushcclosure(L, e->fn, 1 + e->has_arg);
        lua_setfield(L, t, e->name);
    }
    for (int k = 0; k < FD_ACTIVATION_COUNT; k++) {
        char name[64];
        lua_pushboolean(L, ref);
        lua_pushinteger(L, k);
        lua_pushcclosure(L, l_activation, 2);
        lua_setfield(L, t, fd_activation_name((fd_activation_kind)k));
        snprintf(name, sizeof name, "%s_backward", fd_activation_name((fd_activation_kind)k));
        lua_pushboolean(L, ref);
        lua_pushinteger(L, k);
        lua_pushcclosure(L, l_activation_backward, 2);
        lua_setfield(L, t, name);
    }
}

void fd_open_nnops(lua_State *L, const fd_lua_tables *t)
{
    luaL_getsubtable(L, t->fada, "ops"); /* shared with other binding files: get or create */
    int ops = lua_gettop(L);
    register_all(L, ops, 0);
    luaL_getsubtable(L, ops, "ref");
    register_all(L, lua_gettop(L), 1);
    lua_pop(L, 1);
    static const luaL_Reg util[] = {
        {"nn_set_simd", l_set_simd}, {"nn_simd_enabled", l_simd_enabled},
        {"nn_set_avx512", l_set_avx512}, {"nn_avx512_enabled", l_avx512_enabled},
        {"nn_set_amx", l_set_amx}, {"nn_amx_enabled", l_amx_enabled},
        {"nn_copy_gbs", l_copy_gbs},         {NULL, NULL},
    };
    fd_lua_setfuncs(L, ops, util);
    lua_pop(L, 1);
}
