/* Tensors in Lua: creation (fada.empty, zeros, ones, full, *_like, arange,
 * linspace, tensor, is_tensor). */
#include <math.h>

#include "runtime/lua/fd_lua_tensor.h"

/* ---- creation --------------------------------------------------------- */

/* fada.empty(shape..., [dtype]) and friends. */
static fd_tensor *new_from_shape_args(lua_State *L, int arg, int *next)
{
    int64_t shape[FD_MAX_DIMS];
    int after;
    int ndim = fd_lua_checkshape(L, arg, shape, &after);
    fd_dtype dt = fd_lua_optdtype(L, after, FD_F32);
    if (next) *next = after + 1;
    fd_tensor *t = fd_lua_newtensor(L);
    if (fd_tensor_empty(t, dt, ndim, shape)) fd_lua_error(L);
    return t;
}

static int f_empty(lua_State *L)
{
    new_from_shape_args(L, 1, NULL);
    return 1;
}

static int f_zeros(lua_State *L)
{
    fd_tensor *t = new_from_shape_args(L, 1, NULL);
    fd_tensor_fill_(t, 0);
    return 1;
}

static int f_ones(lua_State *L)
{
    fd_tensor *t = new_from_shape_args(L, 1, NULL);
    fd_tensor_fill_(t, 1);
    return 1;
}

/* fada.full(shape, value, [dtype]) */
static int f_full(lua_State *L)
{
    int64_t shape[FD_MAX_DIMS];
    int after;
    int ndim = fd_lua_checkshape(L, 1, shape, &after);
    double v = luaL_checknumber(L, after);
    fd_dtype dt = fd_lua_optdtype(L, after + 1, FD_F32);
    fd_tensor *t = fd_lua_newtensor(L);
    if (fd_tensor_empty(t, dt, ndim, shape)) return fd_lua_error(L);
    fd_tensor_fill_(t, v);
    return 1;
}

/* Same-shape tensors: fada.zeros_like(x, [dtype]) etc. */
static int like(lua_State *L, double value, int fill)
{
    fd_tensor *x = fd_lua_checktensor(L, 1);
    fd_dtype dt = fd_lua_optdtype(L, 2, x->dtype);
    fd_tensor *t = fd_lua_newtensor(L);
    if (fd_tensor_empty_as(t, x, dt)) return fd_lua_error(L);
    if (fill) fd_tensor_fill_(t, value);
    return 1;
}
static int f_empty_like(lua_State *L) { return like(L, 0, 0); }
static int f_zeros_like(lua_State *L) { return like(L, 0, 1); }
static int f_ones_like(lua_State *L) { return like(L, 1, 1); }

/* fada.arange([start,] stop, [step], [dtype]): [start, stop) like torch; an
 * integer-only call gives i64, as torch does. */
static int f_arange(lua_State *L)
{
    int nnum = 0;
    while (nnum < 3 && lua_type(L, nnum + 1) == LUA_TNUMBER) nnum++;
    if (nnum == 0) return luaL_argerror(L, 1, "number expected (arange([start,] stop [, step]))");
    double start = 0, stop, step = 1;
    bool all_int = true;
    for (int i = 1; i <= nnum; i++) all_int = all_int && lua_isinteger(L, i);
    if (nnum == 1) stop = lua_tonumber(L, 1);
    else {
        start = lua_tonumber(L, 1);
        stop = lua_tonumber(L, 2);
        if (nnum == 3) step = lua_tonumber(L, 3);
    }
    if (step == 0) return luaL_argerror(L, 3, "step must not be 0");
    double count = ceil((stop - start) / step);
    if (!(count >= 0)) count = 0;
    if (count > 1e15) return luaL_error(L, "arange: %f elements is too many", count);
    fd_dtype dt = fd_lua_optdtype(L, nnum + 1, all_int ? FD_I64 : FD_F32);
    int64_t n = (int64_t)count;
    fd_tensor *t = fd_lua_newtensor(L);
    if (fd_tensor_empty(t, dt, 1, &n)) return fd_lua_error(L);
    size_t es = fd_dtype_size(dt);
    char *d = fd_tensor_data(t);
    for (int64_t i = 0; i < n; i++) fd_store_f64(d + (size_t)i * es, dt, start + (double)i * step);
    return 1;
}

/* fada.linspace(start, stop, n, [dtype]): n points including both ends. */
static int f_linspace(lua_State *L)
{
    double a = luaL_checknumber(L, 1), b = luaL_checknumber(L, 2);
    int64_t n = check_int(L, 3, "count");
    if (n < 0) return luaL_argerror(L, 3, "count must be >= 0");
    fd_dtype dt = fd_lua_optdtype(L, 4, FD_F32);
    fd_tensor *t = fd_lua_newtensor(L);
    if (fd_tensor_empty(t, dt, 1, &n)) return fd_lua_error(L);
    size_t es = fd_dtype_size(dt);
    char *d = fd_tensor_data(t);
    for (int64_t i = 0; i < n; i++) {
        double v = n == 1 ? a : (i < n / 2 ? a + (b - a) * (double)i / (double)(n - 1)
                                           : b - (b - a) * (double)(n - 1 - i) / (double)(n - 1));
        fd_store_f64(d + (size_t)i * es, dt, v);
    }
    return 1;
}

/* fada.tensor{{1, 2}, {3, 4}} [, dtype]: the shape comes from the nesting;
 * every row of a level must have the same length. */
static void nested_shape(lua_State *L, int idx, int depth, int *ndim, int64_t *shape)
{
    if (lua_type(L, idx) != LUA_TTABLE) return;
    if (depth >= FD_MAX_DIMS) luaL_error(L, "tensor: nesting deeper than %d levels", FD_MAX_DIMS);
    shape[depth] = (int64_t)lua_rawlen(L, idx);
    *ndim = depth + 1;
    if (shape[depth] > 0) {
        lua_rawgeti(L, idx, 1);
        nested_shape(L, lua_gettop(L), depth + 1, ndim, shape);
        lua_pop(L, 1);
    }
}

static void nested_fill(lua_State *L, int idx, int depth, int ndim, const int64_t *shape, char **dst, fd_dtype dt,
                        int64_t *path)
{
    if (depth == ndim) {
        int t = lua_type(L, idx);
        double v;
        if (t == LUA_TNUMBER) v = lua_tonumber(L, idx);
        else if (t == LUA_TBOOLEAN) v = lua_toboolean(L, idx);
        else {
            luaL_error(L, "tensor: element at depth %d is a %s, expected a number (or ragged nesting)", depth,
                       luaL_typename(L, idx));
            return;
        }
        fd_store_f64(*dst, dt, v);
        *dst += fd_dtype_size(dt);
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE || (int64_t)lua_rawlen(L, idx) != shape[depth])
        luaL_error(L, "tensor: ragged nesting at depth %d: expected a table of %d entries, got %s of %d", depth + 1,
                   (int)shape[depth], luaL_typename(L, idx),
                   lua_type(L, idx) == LUA_TTABLE ? (int)lua_rawlen(L, idx) : 0);
    for (int64_t i = 1; i <= shape[depth]; i++) {
        path[depth] = i;
        lua_rawgeti(L, idx, (lua_Integer)i);
        nested_fill(L, lua_gettop(L), depth + 1, ndim, shape, dst, dt, path);
        lua_pop(L, 1);
    }
}

static int f_tensor(lua_State *L)
{
    int type = lua_type(L, 1);
    if (type != LUA_TTABLE && type != LUA_TNUMBER && type != LUA_TBOOLEAN)
        return luaL_argerror(L, 1, lua_pushfstring(L, "table or number expected, got %s", luaL_typename(L, 1)));
    int ndim = 0;
    int64_t shape[FD_MAX_DIMS], path[FD_MAX_DIMS];
    nested_shape(L, 1, 0, &ndim, shape);
    fd_dtype dt = fd_lua_optdtype(L, 2, FD_F32);
    /* Fill a scratch tensor first: a ragged table raises before anything is visible. */
    fd_tensor *t = fd_lua_newtensor(L);
    if (fd_tensor_empty(t, dt, ndim, shape)) return fd_lua_error(L);
    char *dst = fd_tensor_data(t);
    nested_fill(L, 1, 0, ndim, shape, &dst, dt, path);
    return 1;
}

static int f_is_tensor(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, FD_TENSOR_MT) != NULL);
    return 1;
}

/* ---- registration ----------------------------------------------------- */

void fd_open_tensor_create(lua_State *L, const fd_lua_tables *tb)
{
    static const luaL_Reg fns[] = {
        {"empty", f_empty},           {"zeros", f_zeros},         {"ones", f_ones},
        {"full", f_full},             {"empty_like", f_empty_like}, {"zeros_like", f_zeros_like},
        {"ones_like", f_ones_like},   {"arange", f_arange},       {"linspace", f_linspace},
        {"tensor", f_tensor},         {"is_tensor", f_is_tensor},   {NULL, NULL},
    };
    fd_lua_setfuncs(L, tb->fada, fns);
}
