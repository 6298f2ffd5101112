/* Tensor math in Lua: elementwise ops and operators, reductions, joining and
 * indexing. Every op exists as fada.op(...) and as the method t:op(...);
 * ops that write in place end in `_` and return their first argument.
 * Elementwise functions take an optional last `out` tensor (fada.add(a, b, out)).
 * Lua numbers (and booleans) may stand on either side of a binary op.
 * Dims and indices are 1-based, as everywhere in fada. */
#include <math.h>
#include <string.h>

#include "ops/elementwise/fd_elementwise.h"
#include "ops/index/fd_index.h"
#include "ops/reduce/fd_reduce.h"
#include "runtime/lua/fd_lua.h"

/* ---- operands ----------------------------------------------------------- */

static bool is_scalar(lua_State *L, int arg)
{
    int t = lua_type(L, arg);
    return t == LUA_TNUMBER || t == LUA_TBOOLEAN;
}

static double scalar_value(lua_State *L, int arg)
{
    return lua_isboolean(L, arg) ? lua_toboolean(L, arg) : lua_tonumber(L, arg);
}

/* Integers and booleans keep integer tensors integral; so does a float
 * that holds an integer value only when it is a Lua integer. */
static bool scalar_is_int(lua_State *L, int arg)
{
    return lua_isboolean(L, arg) || lua_isinteger(L, arg);
}

/* ---- binary ops --------------------------------------------------------- */

/* fada.op(a, b, [out]) with a or b possibly numbers; in place: a:op_(b). */
static int binary(lua_State *L, fd_binop op, bool inplace)
{
    bool sa = is_scalar(L, 1), sb = is_scalar(L, 2);
    if (sa && sb)
        return luaL_error(L, "%s: expects at least one tensor, got two numbers (%s and %s)", fd_binop_name(op),
                          lua_tostring(L, 1), lua_tostring(L, 2));
    fd_tensor *a = sa ? NULL : fd_lua_checktensor(L, 1);
    fd_tensor *b = sb ? NULL : fd_lua_checktensor(L, 2);
    if (inplace && !a)
        return luaL_argerror(L, 1, lua_pushfstring(L, "%s_: tensor expected to write into, got %s",
                                                   fd_binop_name(op), luaL_typename(L, 1)));
    int result;
    fd_tensor *out;
    if (inplace) {
        out = a, result = 1;
    } else if (!inplace && !lua_isnoneornil(L, 3)) {
        out = fd_lua_checktensor(L, 3), result = 3;
    } else {
        out = fd_lua_newtensor(L), result = lua_gettop(L);
    }
    int rc = a && b ? fd_binary(out, op, a, b)
             : a    ? fd_binary_scalar(out, op, a, scalar_value(L, 2), scalar_is_int(L, 2), false)
                    : fd_binary_scalar(out, op, b, scalar_value(L, 1), scalar_is_int(L, 1), true);
    if (rc) return fd_lua_error(L);
    lua_pushvalue(L, result);
    return 1;
}

#define BINARY(name, op)                                                  \
    static int f_##name(lua_State *L) { return binary(L, op, false); }   \
    static int m_##name##_(lua_State *L) { return binary(L, op, true); }
BINARY(add, FD_ADD)
BINARY(sub, FD_SUB)
BINARY(mul, FD_MUL)
BINARY(div, FD_DIV)
BINARY(pow, FD_POW)
BINARY(maximum, FD_MAXIMUM)
BINARY(minimum, FD_MINIMUM)
BINARY(remainder, FD_REMAINDER)
#undef BINARY

static int f_eq(lua_State *L) { return binary(L, FD_EQ, false); }
static int f_ne(lua_State *L) { return binary(L, FD_NE, false); }
static int f_lt(lua_State *L) { return binary(L, FD_LT, false); }
static int f_le(lua_State *L) { return binary(L, FD_LE, false); }
static int f_gt(lua_State *L) { return binary(L, FD_GT, false); }
static int f_ge(lua_State *L) { return binary(L, FD_GE, false); }

/* ---- unary ops ---------------------------------------------------------- */

static int unary(lua_State *L, fd_unop op, bool inplace)
{
    fd_tensor *a = fd_lua_checktensor(L, 1), *out;
    int result;
    if (inplace) {
        out = a, result = 1;
    } else if (!lua_isnoneornil(L, 2)) {
        out = fd_lua_checktensor(L, 2), result = 2;
    } else {
        out = fd_lua_newtensor(L), result = lua_gettop(L);
    }
    if (fd_unary(out, op, a)) return fd_lua_error(L);
    lua_pushvalue(L, result);
    return 1;
}

#define UNARY(name, op)                                                  \
    static int f_##name(lua_State *L) { return unary(L, op, false); }   \
    static int m_##name##_(lua_State *L) { return unary(L, op, true); }
UNARY(neg, FD_NEG)
UNARY(exp, FD_EXP)
UNARY(log, FD_LOG)
UNARY(sqrt, FD_SQRT)
UNARY(rsqrt, FD_RSQRT)
UNARY(abs, FD_ABS)
UNARY(tanh, FD_TANH)
UNARY(sigmoid, FD_SIGMOID)
UNARY(sin, FD_SIN)
UNARY(cos, FD_COS)
UNARY(floor, FD_FLOOR)
UNARY(round, FD_ROUND)
UNARY(sign, FD_SIGN)
#undef UNARY

/* __unm gets the operand twice; only the first counts. */
static int mt_unm(lua_State *L)
{
    lua_settop(L, 1);
    return unary(L, FD_NEG, false);
}

/* clamp(t, [min], [max], [out]): nil leaves that side open. */
static int clamp(lua_State *L, bool inplace)
{
    fd_tensor *a = fd_lua_checktensor(L, 1), *out;
    double lo = lua_isnoneornil(L, 2) ? NAN : luaL_checknumber(L, 2);
    double hi = lua_isnoneornil(L, 3) ? NAN : luaL_checknumber(L, 3);
    if (isnan(lo) && isnan(hi)) return luaL_error(L, "clamp: give min, max or both (both are nil)");
    int result;
    if (inplace) {
        out = a, result = 1;
    } else if (!lua_isnoneornil(L, 4)) {
        out = fd_lua_checktensor(L, 4), result = 4;
    } else {
        out = fd_lua_newtensor(L), result = lua_gettop(L);
    }
    if (fd_clamp(out, a, lo, hi)) return fd_lua_error(L);
    lua_pushvalue(L, result);
    return 1;
}
static int f_clamp(lua_State *L) { return clamp(L, false); }
static int m_clamp_(lua_State *L) { return clamp(L, true); }

/* fada.where(cond, a, b): a and b tensors or numbers. */
static int f_where(lua_State *L)
{
    fd_tensor *cond = fd_lua_checktensor(L, 1);
    bool sa = is_scalar(L, 2), sb = is_scalar(L, 3);
    fd_tensor *a = sa ? NULL : fd_lua_checktensor(L, 2), *b = sb ? NULL : fd_lua_checktensor(L, 3);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_where(out, cond, a, sa ? scalar_value(L, 2) : 0, sa && scalar_is_int(L, 2), b,
                 sb ? scalar_value(L, 3) : 0, sb && scalar_is_int(L, 3)))
        return fd_lua_error(L);
    return 1;
}

/* ---- reductions --------------------------------------------------------- */

/* A dim, a table of dims, or nil (all) at arg, as a bit mask of 0-based dims. */
static uint32_t check_dims(lua_State *L, int arg, const fd_tensor *t)
{
    if (lua_isnoneornil(L, arg)) return 0;
    if (!lua_istable(L, arg)) return 1u << fd_lua_checkdim(L, arg, t->ndim);
    uint32_t mask = 0;
    int n = (int)lua_rawlen(L, arg);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, arg, i);
        int isint;
        lua_Integer d = lua_tointegerx(L, -1, &isint);
        lua_pop(L, 1);
        if (!isint || d == 0 || d > t->ndim || d < -t->ndim)
            luaL_argerror(L, arg, lua_pushfstring(L, "dims entry %d (%s) is not a dim of a tensor of %d dims", i,
                                                  isint ? lua_pushfstring(L, "%I", d) : "not an integer", t->ndim));
        int z = (int)(d > 0 ? d - 1 : t->ndim + d);
        if (mask >> z & 1) luaL_argerror(L, arg, lua_pushfstring(L, "dim %d appears twice", z + 1));
        mask |= 1u << z;
    }
    if (n == 0) luaL_argerror(L, arg, "dims table is empty");
    return mask;
}

static bool opt_bool(lua_State *L, int arg, bool def)
{
    if (lua_isnoneornil(L, arg)) return def;
    luaL_checktype(L, arg, LUA_TBOOLEAN);
    return lua_toboolean(L, arg);
}

/* t:sum([dims], [keepdim]) and mean, prod, argmax, argmin. */
static int reduce_plain(lua_State *L, fd_reduce_op op)
{
    fd_tensor *a = fd_lua_checktensor(L, 1);
    fd_reduce_args args = {.dims = check_dims(L, 2, a), .keepdim = opt_bool(L, 3, false), .index_base = 1};
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_reduce(out, NULL, op, a, &args)) return fd_lua_error(L);
    return 1;
}
static int f_sum(lua_State *L) { return reduce_plain(L, FD_SUM); }
static int f_mean(lua_State *L) { return reduce_plain(L, FD_MEAN); }
static int f_prod(lua_State *L) { return reduce_plain(L, FD_PROD); }
static int f_argmax(lua_State *L) { return reduce_plain(L, FD_ARGMAX); }
static int f_argmin(lua_State *L) { return reduce_plain(L, FD_ARGMIN); }

/* t:max() -> 0-d value; t:max(dim, [keepdim]) -> values, indices (1-based);
 * t:max(u) -> elementwise maximum (as torch). Same for min. */
static int extremum(lua_State *L, fd_reduce_op op)
{
    if (lua_isuserdata(L, 2)) return binary(L, op == FD_MAX ? FD_MAXIMUM : FD_MINIMUM, false);
    fd_tensor *a = fd_lua_checktensor(L, 1);
    fd_reduce_args args = {.dims = check_dims(L, 2, a), .keepdim = opt_bool(L, 3, false), .index_base = 1};
    bool with_idx = !lua_isnoneornil(L, 2);
    fd_tensor *out = fd_lua_newtensor(L), *idx = with_idx ? fd_lua_newtensor(L) : NULL;
    if (fd_reduce(out, idx, op, a, &args)) return fd_lua_error(L);
    return with_idx ? 2 : 1;
}
static int f_max(lua_State *L) { return extremum(L, FD_MAX); }
static int f_min(lua_State *L) { return extremum(L, FD_MIN); }

/* t:var([dims], [unbiased = true], [keepdim = false]), and std. */
static int spread(lua_State *L, fd_reduce_op op)
{
    fd_tensor *a = fd_lua_checktensor(L, 1);
    fd_reduce_args args = {.dims = check_dims(L, 2, a), .correction = opt_bool(L, 3, true) ? 1 : 0,
                           .keepdim = opt_bool(L, 4, false), .index_base = 1};
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_reduce(out, NULL, op, a, &args)) return fd_lua_error(L);
    return 1;
}
static int f_var(lua_State *L) { return spread(L, FD_VAR); }
static int f_std(lua_State *L) { return spread(L, FD_STD); }

/* t:norm([p = 2], [dims], [keepdim]): p a number > 0, math.huge or 'inf'; 'fro' is 2. */
static int f_norm(lua_State *L)
{
    fd_tensor *a = fd_lua_checktensor(L, 1);
    double p = 2;
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *s = lua_tostring(L, 2);
        if (strcmp(s, "inf") == 0) p = INFINITY;
        else if (strcmp(s, "fro") == 0) p = 2;
        else return luaL_argerror(L, 2, lua_pushfstring(L, "p must be a number, 'inf' or 'fro', got '%s'", s));
    } else if (!lua_isnoneornil(L, 2)) {
        p = luaL_checknumber(L, 2);
    }
    fd_reduce_args args = {.dims = check_dims(L, 3, a), .keepdim = opt_bool(L, 4, false), .p = p, .index_base = 1};
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_reduce(out, NULL, FD_NORM, a, &args)) return fd_lua_error(L);
    return 1;
}

/* ---- joining and splitting ---------------------------------------------- */

/* The tensors of the list at arg 1, checked, into an array on a userdata
 * (Lua owns it, so an error frees it). */
static const fd_tensor **check_list(lua_State *L, int arg, const char *op, int *n)
{
    luaL_checktype(L, arg, LUA_TTABLE);
    *n = (int)lua_rawlen(L, arg);
    if (*n == 0) luaL_argerror(L, arg, lua_pushfstring(L, "%s: the list of tensors is empty", op));
    const fd_tensor **ts = lua_newuserdatauv(L, sizeof(*ts) * (size_t)*n, 0);
    for (int i = 1; i <= *n; i++) {
        lua_rawgeti(L, arg, i);
        ts[i - 1] = fd_lua_totensor(L, -1);
        if (!ts[i - 1])
            luaL_argerror(L, arg, lua_pushfstring(L, "%s: entry %d is %s, expected a live tensor", op, i,
                                                  luaL_testudata(L, -1, FD_TENSOR_MT) ? "a released tensor"
                                                                                       : luaL_typename(L, -1)));
        lua_pop(L, 1); /* the list keeps it alive */
    }
    return ts;
}

/* fada.cat({a, b, ...}, [dim = 1]) */
static int f_cat(lua_State *L)
{
    int n;
    lua_settop(L, 2); /* the list's array goes at 3 */
    const fd_tensor **ts = check_list(L, 1, "cat", &n);
    int dim = lua_isnoneornil(L, 2) ? 0 : fd_lua_checkdim(L, 2, ts[0]->ndim);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_cat(out, ts, n, dim)) return fd_lua_error(L);
    return 1;
}

/* fada.stack({a, b, ...}, [dim = 1]): dim may be ndim + 1 (a new last dim). */
static int f_stack(lua_State *L)
{
    int n;
    lua_settop(L, 2);
    const fd_tensor **ts = check_list(L, 1, "stack", &n);
    int dim = lua_isnoneornil(L, 2) ? 0 : fd_lua_checkdim(L, 2, ts[0]->ndim + 1);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_stack(out, ts, n, dim)) return fd_lua_error(L);
    return 1;
}

/* Pushes a table of narrow views of a along dim with the given sizes. */
static int push_pieces(lua_State *L, const fd_tensor *a, int dim, const int64_t *sizes, int64_t n)
{
    lua_createtable(L, (int)n, 0);
    int64_t at = 0;
    for (int64_t i = 0; i < n; i++) {
        fd_tensor *v = fd_lua_newtensor(L);
        fd_tensor_view_of(v, a);
        if (fd_view_narrow(v, dim, at, sizes[i])) return fd_lua_error(L);
        at += sizes[i];
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
    return 1;
}

/* t:split(size, [dim = 1]) -> pieces of `size` (the last may be shorter);
 * t:split({s1, s2, ...}, [dim]) -> pieces of those sizes (they must add up). */
static int f_split(lua_State *L)
{
    fd_tensor *a = fd_lua_checktensor(L, 1);
    int dim = lua_isnoneornil(L, 3) ? 0 : fd_lua_checkdim(L, 3, a->ndim);
    if (a->ndim == 0) return luaL_argerror(L, 1, "split: cannot split a 0-d tensor");
    int64_t len = a->shape[dim], n;
    int64_t *sizes;
    if (lua_istable(L, 2)) {
        n = (int64_t)lua_rawlen(L, 2);
        sizes = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)(n ? n : 1), 0);
        int64_t total = 0;
        for (int64_t i = 0; i < n; i++) {
            lua_rawgeti(L, 2, (lua_Integer)(i + 1));
            int isint;
            sizes[i] = (int64_t)lua_tointegerx(L, -1, &isint);
            lua_pop(L, 1);
            if (!isint || sizes[i] < 0)
                return luaL_argerror(L, 2, lua_pushfstring(L, "split: size %I must be an integer >= 0",
                                                           (lua_Integer)(i + 1)));
            total += sizes[i];
        }
        if (total != len)
            return luaL_error(L, "split: sizes add up to %I, but dim %d of %s has size %I", (lua_Integer)total,
                              dim + 1, FD_SHAPE_STR(a), (lua_Integer)len);
    } else {
        lua_Integer size = luaL_checkinteger(L, 2);
        if (size <= 0) return luaL_argerror(L, 2, lua_pushfstring(L, "split: size must be > 0, got %I", size));
        n = len == 0 ? 1 : (len + size - 1) / size;
        sizes = lua_newuserdatauv(L, sizeof(int64_t) * (size_t)n, 0);
        for (int64_t i = 0; i < n; i++) sizes[i] = len - i * size < size ? len - i * size : size;
    }
    return push_pieces(L, a, dim, sizes, n);
}

/* t:chunk(n, [dim = 1]): pieces of ceil(len / n), as torch (maybe fewer than n). */
static int f_chunk(lua_State *L)
{
    fd_tensor *a = fd_lua_checktensor(L, 1);
    lua_Integer chunks = luaL_checkinteger(L, 2);
    if (chunks <= 0) return luaL_argerror(L, 2, lua_pushfstring(L, "chunk: count must be > 0, got %I", chunks));
    if (a->ndim == 0) return luaL_argerror(L, 1, "chunk: cannot chunk a 0-d tensor");
    int dim = lua_isnoneornil(L, 3) ? 0 : fd_lua_checkdim(L, 3, a->ndim);
    lua_settop(L, 1);
    int64_t len = a->shape[dim], size = (len + chunks - 1) / chunks;
    lua_pushinteger(L, size > 0 ? size : 1);
    lua_pushinteger(L, dim + 1);
    return f_split(L);
}

/* ---- indexing ----------------------------------------------------------- */

/* t:index_select(dim, index): index a 1-d integer tensor of 1-based indices. */
static int f_index_select(lua_State *L)
{
    fd_tensor *a = fd_lua_checktensor(L, 1);
    int dim = fd_lua_checkdim(L, 2, a->ndim);
    fd_tensor *index = fd_lua_checktensor(L, 3);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_index_select(out, a, dim, index, 1)) return fd_lua_error(L);
    return 1;
}

/* t:gather(dim, index) */
static int f_gather(lua_State *L)
{
    fd_tensor *a = fd_lua_checktensor(L, 1);
    int dim = fd_lua_checkdim(L, 2, a->ndim);
    fd_tensor *index = fd_lua_checktensor(L, 3);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_gather(out, a, dim, index, 1)) return fd_lua_error(L);
    return 1;
}

/* t:masked_fill(mask, value) (a copy) and t:masked_fill_(mask, value) */
static int masked_fill(lua_State *L, bool inplace)
{
    fd_tensor *a = fd_lua_checktensor(L, 1), *mask = fd_lua_checktensor(L, 2);
    if (!is_scalar(L, 3)) return luaL_argerror(L, 3, lua_pushfstring(L, "number expected, got %s", luaL_typename(L, 3)));
    double v = scalar_value(L, 3);
    fd_tensor *dst = a;
    if (!inplace) {
        dst = fd_lua_newtensor(L);
        if (fd_tensor_clone(dst, a)) return fd_lua_error(L);
    }
    if (fd_masked_fill_(dst, mask, v)) return fd_lua_error(L);
    if (inplace) lua_settop(L, 1);
    return 1;
}
static int f_masked_fill(lua_State *L) { return masked_fill(L, false); }
static int m_masked_fill_(lua_State *L) { return masked_fill(L, true); }

/* fada.allclose(a, b, [rtol = 1e-5], [atol = 1e-8]) -> boolean */
static int f_allclose(lua_State *L)
{
    fd_tensor *a = fd_lua_checktensor(L, 1), *b = fd_lua_checktensor(L, 2);
    double rtol = luaL_optnumber(L, 3, 1e-5), atol = luaL_optnumber(L, 4, 1e-8);
    bool r;
    if (fd_allclose(&r, a, b, rtol, atol)) return fd_lua_error(L);
    lua_pushboolean(L, r);
    return 1;
}

/* ---- registration ------------------------------------------------------- */

void fd_open_math(lua_State *L, const fd_lua_tables *tb)
{
    /* Functions that are both fada.name(t, ...) and t:name(...). */
    static const luaL_Reg both[] = {
        {"add", f_add}, {"sub", f_sub}, {"mul", f_mul}, {"div", f_div}, {"pow", f_pow},
        {"maximum", f_maximum}, {"minimum", f_minimum}, {"remainder", f_remainder},
        {"eq", f_eq}, {"ne", f_ne}, {"lt", f_lt}, {"le", f_le}, {"gt", f_gt}, {"ge", f_ge},
        {"neg", f_neg}, {"exp", f_exp}, {"log", f_log}, {"sqrt", f_sqrt}, {"rsqrt", f_rsqrt},
        {"abs", f_abs}, {"tanh", f_tanh}, {"sigmoid", f_sigmoid}, {"sin", f_sin}, {"cos", f_cos},
        {"floor", f_floor}, {"round", f_round}, {"sign", f_sign}, {"clamp", f_clamp},
        {"sum", f_sum}, {"mean", f_mean}, {"prod", f_prod}, {"max", f_max}, {"min", f_min},
        {"argmax", f_argmax}, {"argmin", f_argmin}, {"var", f_var}, {"std", f_std}, {"norm", f_norm},
        {"split", f_split}, {"chunk", f_chunk}, {"index_select", f_index_select}, {"gather", f_gather},
        {"masked_fill", f_masked_fill}, {"allclose", f_allclose},
        {NULL, NULL},
    };
    static const luaL_Reg fns_only[] = {
        {"cat", f_cat}, {"stack", f_stack}, {"where", f_where}, {NULL, NULL},
    };
    static const luaL_Reg inplace[] = {
        {"add_", m_add_}, {"sub_", m_sub_}, {"mul_", m_mul_}, {"div_", m_div_}, {"pow_", m_pow_},
        {"maximum_", m_maximum_}, {"minimum_", m_minimum_}, {"remainder_", m_remainder_},
        {"neg_", m_neg_}, {"exp_", m_exp_}, {"log_", m_log_}, {"sqrt_", m_sqrt_}, {"rsqrt_", m_rsqrt_},
        {"abs_", m_abs_}, {"tanh_", m_tanh_}, {"sigmoid_", m_sigmoid_}, {"sin_", m_sin_}, {"cos_", m_cos_},
        {"floor_", m_floor_}, {"round_", m_round_}, {"sign_", m_sign_}, {"clamp_", m_clamp_},
        {"masked_fill_", m_masked_fill_},
        {NULL, NULL},
    };
    /* Operators; no __eq (tensors compare by identity; use t:eq(u)) and no
     * __lt/__le (Lua wants a boolean back). */
    static const luaL_Reg ops[] = {
        {"__add", f_add}, {"__sub", f_sub}, {"__mul", f_mul}, {"__div", f_div}, {"__pow", f_pow},
        {"__mod", f_remainder}, {"__unm", mt_unm}, {NULL, NULL},
    };
    fd_lua_setfuncs(L, tb->fada, both);
    fd_lua_setfuncs(L, tb->methods, both);
    fd_lua_setfuncs(L, tb->fada, fns_only);
    fd_lua_setfuncs(L, tb->methods, inplace);
    fd_lua_setfuncs(L, tb->meta, ops);
}
