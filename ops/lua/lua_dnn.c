/* Lua binding of the raw conv / matmul kernels: the table fada.ops, plus
 * fada.matmul, t:matmul and the compute-dtype switch. These are explicit
 * kernels (forward and backward as separate calls, no autograd); the
 * functional layer fada.F builds on them.
 *
 *   fada.ops.conv2d(x, w, [b], [opts]) -> y
 *       x [N, C, H, W] (NCHW or channels-last strides), w [O, C/groups, KH, KW], b [O]
 *       opts: stride, padding, dilation (integer or {h, w}; defaults 1, 0, 1),
 *             groups (1), act ('silu' | 'gelu' | 'gelu_tanh' | 'relu'),
 *             residual (tensor shaped like y, added after act),
 *             channels_last (true/false; nil: follow x), blocked (true: the output in
 *               the blocked layout, see Tensor:blocked; a blocked x gives one anyway),
 *             compute ('f32' | 'bf16'),
 *             ref (true: run the reference loops),
 *             layout_policy ('auto': time both per shape and keep the faster;
 *               'any': oneDNN's preferred activation layout, reordering around
 *               the call; 'plain': the activations as they lie, no reorder),
 *             algorithm ('auto': Winograd for f32 3x3 stride-1 convolutions where
 *               oneDNN has it, direct elsewhere; 'direct': direct always),
 *             training (true: the weights change between calls, as in a training
 *               step; Winograd then transforms them in the kernel instead of caching)
 *       y = act(conv(x, w) + b) + residual
 *   fada.ops.conv2d_backward(gy, x, w, [opts]) -> gx, gw, gb
 *       gradients of conv(x, w) + b (pre-activation); opts as above plus
 *       input / weight / bias = false to skip that gradient (nil is returned)
 *   fada.ops.conv1d(x, w, [b], [opts]), fada.ops.conv1d_backward(gy, x, w, [opts])
 *       x [N, C, L], w [O, C/groups, K]; stride/padding/dilation are integers
 *   fada.ops.linear(x, w, [b], [opts]) -> y       y[..., out] = act(x[..., in] W^T + b)
 *       opts: act, compute, ref, backend ('auto': oneDNN or OpenBLAS, whichever
 *             measured faster for the shape; 'dnnl'; 'blas' (f32 without act))
 *   fada.ops.linear_backward(gy, x, w, [opts]) -> gx, gw, gb
 *       gradients of x W^T + b (pre-activation); input / weight / bias = false skip one
 *   fada.ops.matmul(a, b, [opts]) -> y            torch.matmul semantics
 *       opts: transpose_a, transpose_b, compute, ref, backend
 *   fada.ops.matmul_backward(gy, a, b, [opts]) -> ga, gb
 *       summed over broadcast batch dims; a / b = false skip one
 *   fada.matmul(a, b), t:matmul(b)                torch.matmul
 *   fada.set_compute_dtype('bf16' | 'f32'), fada.get_compute_dtype()
 *   fada.ops.measure_peak_gflops([threads], [seconds]) -> GFLOP/s of an FMA loop
 *   fada.ops.dnnl_stats() -> table; fada.ops.dnnl_clear(); fada.ops.dnnl_cache_capacity(n)
 *   fada.ops.matmul_choices() -> {{m=, k=, n=, batch=, threads=, backend=}, ...} decided so far
 *   fada.ops.fallbacks() -> {bf16 =, conv =, matmul =} counts of calls that fell back
 *   fada.ops.conv_set_winograd(bool): Winograd off for every convolution (direct
 *     instead) or back on; fada.ops.conv_winograd_enabled() -> bool;
 *   fada.ops.conv_winograd_calls() -> how many convolution calls ran Winograd */
#include <omp.h>
#include <string.h>

#include "ops/backend/fd_dnnl.h"
#include "ops/backend/fd_peak.h"
#include "ops/backend/fd_tune.h"
#include "ops/conv/fd_conv.h"
#include "ops/matmul/fd_matmul.h"
#include "runtime/lua/fd_lua.h"

/* ---- option parsing ----------------------------------------------------- */

static int opt_field(lua_State *L, int opts, const char *name)
{
    if (!opts) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    return lua_getfield(L, opts, name);
}

static int64_t to_int(lua_State *L, int idx, const char *op, const char *name)
{
    int ok;
    lua_Integer v = lua_tointegerx(L, idx, &ok);
    if (!ok) luaL_error(L, "%s: option %s must be an integer, got %s", op, name, luaL_typename(L, idx));
    return (int64_t)v;
}

/* An integer or {h, w} into v[0], v[1]. */
static void opt_pair(lua_State *L, int opts, const char *op, const char *name, int64_t def, int64_t v[2])
{
    int t = opt_field(L, opts, name);
    if (t == LUA_TNIL) {
        v[0] = v[1] = def;
    } else if (t == LUA_TTABLE) {
        if (luaL_len(L, -1) != 2) luaL_error(L, "%s: option %s must be an integer or {h, w}", op, name);
        lua_geti(L, -1, 1);
        v[0] = to_int(L, -1, op, name);
        lua_geti(L, -2, 2);
        v[1] = to_int(L, -1, op, name);
        lua_pop(L, 2);
    } else {
        v[0] = v[1] = to_int(L, -1, op, name);
    }
    lua_pop(L, 1);
}

static fd_act opt_act(lua_State *L, int opts, const char *op)
{
    static const char *names[] = {"none", "silu", "gelu", "gelu_tanh", "relu", NULL};
    int t = opt_field(L, opts, "act");
    fd_act a = FD_ACT_NONE;
    if (t != LUA_TNIL) {
        const char *s = lua_tostring(L, -1);
        int i = 0;
        while (names[i] && (!s || strcmp(names[i], s) != 0)) i++;
        if (!names[i]) luaL_error(L, "%s: act '%s' is not one of none, silu, gelu, gelu_tanh, relu", op, s ? s : "?");
        a = (fd_act)i;
    }
    lua_pop(L, 1);
    return a;
}

static fd_dtype opt_compute(lua_State *L, int opts, const char *op)
{
    int t = opt_field(L, opts, "compute");
    fd_dtype dt = FD_NDTYPES;
    if (t != LUA_TNIL) {
        const char *s = lua_tostring(L, -1);
        if (s && strcmp(s, "bf16") == 0)
            dt = FD_BF16;
        else if (s && strcmp(s, "f32") == 0)
            dt = FD_F32;
        else
            luaL_error(L, "%s: compute must be 'f32' or 'bf16', got %s", op, s ? s : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    return dt;
}

static int opts_index(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx)) return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    return idx;
}

static fd_tensor *opt_tensor(lua_State *L, int idx)
{
    return lua_isnoneornil(L, idx) ? NULL : fd_lua_checktensor(L, idx);
}

static void conv_opts(lua_State *L, int opts, const char *op, int one_d, fd_conv_params *p)
{
    fd_conv_params_default(p);
    opt_pair(L, opts, op, "stride", 1, p->stride);
    opt_pair(L, opts, op, "padding", 0, p->padding);
    opt_pair(L, opts, op, "dilation", 1, p->dilation);
    if (one_d) p->stride[0] = 1, p->padding[0] = 0, p->dilation[0] = 1;
    int t = opt_field(L, opts, "groups");
    p->groups = t == LUA_TNIL ? 1 : to_int(L, -1, op, "groups");
    lua_pop(L, 1);
    p->act = opt_act(L, opts, op);
    t = opt_field(L, opts, "channels_last");
    p->layout = t == LUA_TNIL ? FD_LAYOUT_AUTO : lua_toboolean(L, -1) ? FD_LAYOUT_NHWC : FD_LAYOUT_NCHW;
    lua_pop(L, 1);
    if (!one_d && fd_lua_opt_bool(L, opts, "blocked", 0)) p->layout = FD_LAYOUT_BLOCKED;
    p->compute = opt_compute(L, opts, op);
    p->force_ref = fd_lua_opt_bool(L, opts, "ref", 0);
    if (opt_field(L, opts, "layout_policy") != LUA_TNIL) {
        const char *s = lua_tostring(L, -1);
        if (s && strcmp(s, "any") == 0)
            p->layout_policy = FD_CONV_ANY;
        else if (s && strcmp(s, "plain") == 0)
            p->layout_policy = FD_CONV_PLAIN;
        else if (!s || strcmp(s, "auto") != 0)
            luaL_error(L, "%s: layout_policy must be 'auto', 'any' or 'plain', got %s", op,
                       s ? s : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    p->training = fd_lua_opt_bool(L, opts, "training", 0);
    if (opt_field(L, opts, "algorithm") != LUA_TNIL) {
        const char *s = lua_tostring(L, -1);
        if (s && strcmp(s, "direct") == 0)
            p->algorithm = FD_CONV_ALGO_DIRECT;
        else if (!s || strcmp(s, "auto") != 0)
            luaL_error(L, "%s: algorithm must be 'auto' or 'direct', got %s", op, s ? s : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

static void mm_opts(lua_State *L, int opts, const char *op, fd_mm_opts *o)
{
    fd_mm_opts_default(o);
    o->transpose_a = fd_lua_opt_bool(L, opts, "transpose_a", 0);
    o->transpose_b = fd_lua_opt_bool(L, opts, "transpose_b", 0);
    o->act = opt_act(L, opts, op);
    o->compute = opt_compute(L, opts, op);
    o->force_ref = fd_lua_opt_bool(L, opts, "ref", 0);
    if (opt_field(L, opts, "backend") != LUA_TNIL) {
        const char *s = lua_tostring(L, -1);
        if (s && strcmp(s, "dnnl") == 0)
            o->backend = FD_MM_DNNL;
        else if (s && strcmp(s, "blas") == 0)
            o->backend = FD_MM_BLAS;
        else if (!s || strcmp(s, "auto") != 0)
            luaL_error(L, "%s: backend must be 'auto', 'dnnl' or 'blas', got %s", op, s ? s : luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* Three new tensors at the top; those not wanted become nil after a call. */
static void nil_unwanted(lua_State *L, int first, const int *want, int n)
{
    for (int i = 0; i < n; i++)
        if (!want[i]) {
            lua_pushnil(L);
            lua_replace(L, first + i);
        }
}

/* ---- conv --------------------------------------------------------------- */

static int conv_fwd(lua_State *L, int one_d)
{
    const char *op = one_d ? "conv1d" : "conv2d";
    /* conv2d reads the blocked layout (fd_tensor.block) of x and residual as it is */
    fd_tensor *(*activation)(lua_State *, int) = one_d ? fd_lua_checktensor : fd_lua_checktensor_any;
    fd_tensor *x = activation(L, 1), *w = fd_lua_checktensor(L, 2), *b = opt_tensor(L, 3);
    int opts = opts_index(L, 4);
    fd_conv_params p;
    conv_opts(L, opts, op, one_d, &p);
    fd_tensor *r = NULL;
    if (opt_field(L, opts, "residual") != LUA_TNIL) r = activation(L, lua_gettop(L));
    /* r stays on the stack (alive) until we return */
    fd_tensor *out = fd_lua_newtensor(L);
    int rc = one_d ? fd_conv1d(out, x, w, b, r, &p) : fd_conv2d(out, x, w, b, r, &p);
    if (rc) return fd_lua_error(L);
    return 1;
}

static int conv_bwd(lua_State *L, int one_d)
{
    const char *op = one_d ? "conv1d_backward" : "conv2d_backward";
    fd_tensor *gy = fd_lua_checktensor(L, 1), *x = fd_lua_checktensor(L, 2), *w = fd_lua_checktensor(L, 3);
    int opts = opts_index(L, 4);
    fd_conv_params p;
    conv_opts(L, opts, op, one_d, &p);
    int want[3] = {fd_lua_opt_bool(L, opts, "input", 1), fd_lua_opt_bool(L, opts, "weight", 1), fd_lua_opt_bool(L, opts, "bias", 1)};
    int first = lua_gettop(L) + 1;
    fd_tensor *gx = fd_lua_newtensor(L), *gw = fd_lua_newtensor(L), *gb = fd_lua_newtensor(L);
    int rc = one_d ? fd_conv1d_backward(want[0] ? gx : NULL, want[1] ? gw : NULL, want[2] ? gb : NULL, gy, x, w, &p)
                   : fd_conv2d_backward(want[0] ? gx : NULL, want[1] ? gw : NULL, want[2] ? gb : NULL, gy, x, w, &p);
    if (rc) return fd_lua_error(L);
    nil_unwanted(L, first, want, 3);
    return 3;
}

static int l_conv2d(lua_State *L) { return conv_fwd(L, 0); }
static int l_conv1d(lua_State *L) { return conv_fwd(L, 1); }
static int l_conv2d_backward(lua_State *L) { return conv_bwd(L, 0); }
static int l_conv1d_backward(lua_State *L) { return conv_bwd(L, 1); }

/* ---- matmul / linear ---------------------------------------------------- */

static int l_linear(lua_State *L)
{
    fd_tensor *x = fd_lua_checktensor(L, 1), *w = fd_lua_checktensor(L, 2), *b = opt_tensor(L, 3);
    fd_mm_opts o;
    mm_opts(L, opts_index(L, 4), "linear", &o);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_linear(out, x, w, b, &o)) return fd_lua_error(L);
    return 1;
}

static int l_linear_backward(lua_State *L)
{
    fd_tensor *gy = fd_lua_checktensor(L, 1), *x = fd_lua_checktensor(L, 2), *w = fd_lua_checktensor(L, 3);
    int opts = opts_index(L, 4);
    fd_mm_opts o;
    mm_opts(L, opts, "linear_backward", &o);
    int want[3] = {fd_lua_opt_bool(L, opts, "input", 1), fd_lua_opt_bool(L, opts, "weight", 1), fd_lua_opt_bool(L, opts, "bias", 1)};
    int first = lua_gettop(L) + 1;
    fd_tensor *gx = fd_lua_newtensor(L), *gw = fd_lua_newtensor(L), *gb = fd_lua_newtensor(L);
    if (fd_linear_backward(want[0] ? gx : NULL, want[1] ? gw : NULL, want[2] ? gb : NULL, gy, x, w, &o))
        return fd_lua_error(L);
    nil_unwanted(L, first, want, 3);
    return 3;
}

static int l_matmul(lua_State *L)
{
    fd_tensor *a = fd_lua_checktensor(L, 1), *b = fd_lua_checktensor(L, 2);
    fd_mm_opts o;
    mm_opts(L, opts_index(L, 3), "matmul", &o);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_matmul(out, a, b, &o)) return fd_lua_error(L);
    return 1;
}

static int l_matmul_backward(lua_State *L)
{
    fd_tensor *gy = fd_lua_checktensor(L, 1), *a = fd_lua_checktensor(L, 2), *b = fd_lua_checktensor(L, 3);
    int opts = opts_index(L, 4);
    fd_mm_opts o;
    mm_opts(L, opts, "matmul_backward", &o);
    int want[2] = {fd_lua_opt_bool(L, opts, "a", 1), fd_lua_opt_bool(L, opts, "b", 1)};
    int first = lua_gettop(L) + 1;
    fd_tensor *ga = fd_lua_newtensor(L), *gb = fd_lua_newtensor(L);
    if (fd_matmul_backward(want[0] ? ga : NULL, want[1] ? gb : NULL, gy, a, b, &o)) return fd_lua_error(L);
    nil_unwanted(L, first, want, 2);
    return 2;
}

/* fada.matmul(a, b) and t:matmul(b): plain torch.matmul, no options. */
static int l_matmul_plain(lua_State *L)
{
    fd_tensor *a = fd_lua_checktensor(L, 1), *b = fd_lua_checktensor(L, 2);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_matmul(out, a, b, NULL)) return fd_lua_error(L);
    return 1;
}

/* ---- settings and introspection ---------------------------------------- */

static int l_set_compute_dtype(lua_State *L)
{
    const char *s = luaL_checkstring(L, 1);
    if (strcmp(s, "bf16") && strcmp(s, "f32"))
        return luaL_error(L, "set_compute_dtype: expected 'f32' or 'bf16', got '%s'", s);
    fd_set_compute_dtype(strcmp(s, "bf16") == 0 ? FD_BF16 : FD_F32);
    return 0;
}

static int l_get_compute_dtype(lua_State *L)
{
    lua_pushstring(L, fd_dtype_name(fd_compute_dtype()));
    return 1;
}

static int l_measure_peak(lua_State *L)
{
    int threads = (int)luaL_optinteger(L, 1, 0);
    double seconds = luaL_optnumber(L, 2, 0.5);
    lua_pushnumber(L, fd_measure_peak_gflops(threads, seconds));
    return 1;
}

static int l_dnnl_stats(lua_State *L)
{
    fd_dnnl_stats st;
    fd_dnnl_get_stats(&st);
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, st.prims), lua_setfield(L, -2, "primitives");
    lua_pushinteger(L, st.prim_capacity), lua_setfield(L, -2, "capacity");
    lua_pushinteger(L, (lua_Integer)st.prim_hits), lua_setfield(L, -2, "hits");
    lua_pushinteger(L, (lua_Integer)st.prim_misses), lua_setfield(L, -2, "misses");
    lua_pushinteger(L, st.weights), lua_setfield(L, -2, "weights");
    lua_pushinteger(L, (lua_Integer)st.weight_bytes), lua_setfield(L, -2, "weight_bytes");
    lua_pushinteger(L, (lua_Integer)st.weight_hits), lua_setfield(L, -2, "weight_hits");
    lua_pushinteger(L, (lua_Integer)st.weight_reorders), lua_setfield(L, -2, "weight_reorders");
    lua_pushinteger(L, (lua_Integer)st.scratch_bytes), lua_setfield(L, -2, "scratch_bytes");
    return 1;
}

static int l_dnnl_clear(lua_State *L)
{
    (void)L;
    fd_dnnl_clear_caches();
    return 0;
}

static int l_dnnl_capacity(lua_State *L)
{
    fd_dnnl_set_cache_capacity((int)luaL_checkinteger(L, 1));
    return 0;
}

/* fada.ops.tune('auto' | 0 | 1): time both variants per shape (default), or
 * always run one (bit-for-bit repeatable runs); returns the previous mode. */
static int l_tune(lua_State *L)
{
    int prev = fd_tune_forced();
    if (!lua_isnoneornil(L, 1)) {
        if (lua_type(L, 1) == LUA_TSTRING && strcmp(lua_tostring(L, 1), "auto") == 0) {
            fd_tune_force(-1);
        } else {
            lua_Integer v = luaL_checkinteger(L, 1);
            if (v != 0 && v != 1) return luaL_argerror(L, 1, "tune mode must be 'auto', 0 or 1");
            fd_tune_force((int)v);
        }
    }
    if (prev < 0) lua_pushliteral(L, "auto");
    else lua_pushinteger(L, prev);
    return 1;
}

static int l_matmul_choices(lua_State *L)
{
    int64_t rows[128][6];
    int n = fd_matmul_choices(rows, 128);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 6);
        lua_pushinteger(L, rows[i][0]), lua_setfield(L, -2, "m");
        lua_pushinteger(L, rows[i][1]), lua_setfield(L, -2, "k");
        lua_pushinteger(L, rows[i][2]), lua_setfield(L, -2, "n");
        lua_pushinteger(L, rows[i][3]), lua_setfield(L, -2, "batch");
        lua_pushinteger(L, rows[i][4]), lua_setfield(L, -2, "threads");
        lua_pushstring(L, rows[i][5] == FD_MM_BLAS ? "blas" : "dnnl"), lua_setfield(L, -2, "backend");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_fallbacks(lua_State *L)
{
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, fd_dnnl_bf16_fallbacks()), lua_setfield(L, -2, "bf16");
    lua_pushinteger(L, fd_conv_dnnl_fallbacks()), lua_setfield(L, -2, "conv");
    lua_pushinteger(L, fd_matmul_dnnl_fallbacks()), lua_setfield(L, -2, "matmul");
    return 1;
}

static int l_conv_set_winograd(lua_State *L)
{
    luaL_checkany(L, 1);
    fd_conv_set_winograd(lua_toboolean(L, 1));
    return 0;
}

static int l_conv_winograd_enabled(lua_State *L)
{
    lua_pushboolean(L, fd_conv_winograd_enabled());
    return 1;
}

static int l_conv_winograd_calls(lua_State *L)
{
    lua_pushinteger(L, fd_conv_winograd_calls());
    return 1;
}

void fd_open_dnn(lua_State *L, const fd_lua_tables *t)
{
    static const luaL_Reg ops[] = {
        {"conv2d", l_conv2d},
        {"conv2d_backward", l_conv2d_backward},
        {"conv1d", l_conv1d},
        {"conv1d_backward", l_conv1d_backward},
        {"linear", l_linear},
        {"linear_backward", l_linear_backward},
        {"matmul", l_matmul},
        {"matmul_backward", l_matmul_backward},
        {"measure_peak_gflops", l_measure_peak},
        {"dnnl_stats", l_dnnl_stats},
        {"dnnl_clear", l_dnnl_clear},
        {"dnnl_cache_capacity", l_dnnl_capacity},
        {"fallbacks", l_fallbacks},
        {"conv_set_winograd", l_conv_set_winograd},
        {"conv_winograd_enabled", l_conv_winograd_enabled},
        {"conv_winograd_calls", l_conv_winograd_calls},
        {"matmul_choices", l_matmul_choices},
        {"tune", l_tune},
        {NULL, NULL},
    };
    /* fada.ops is shared with other binding files: take it or make it */
    luaL_getsubtable(L, t->fada, "ops"); /* shared with other binding files: get or create */
    fd_lua_setfuncs(L, -1, ops);
    lua_pop(L, 1);
    static const luaL_Reg fada[] = {
        {"matmul", l_matmul_plain},
        {"set_compute_dtype", l_set_compute_dtype},
        {"get_compute_dtype", l_get_compute_dtype},
        {NULL, NULL},
    };
    fd_lua_setfuncs(L, t->fada, fada);
    static const luaL_Reg methods[] = {{"matmul", l_matmul_plain}, {NULL, NULL}};
    fd_lua_setfuncs(L, t->methods, methods);
}
