/* Tensors in Lua: the userdata, creation, views, copies, element access. */
#include <math.h>
#include <string.h>

#include "runtime/lua/fd_lua.h"

/* ---- the userdata ----------------------------------------------------- */

/* Lua's collector sees only the small userdata, not the buffers behind it.
 * When C has handed out more than max(64 MiB, what was live after the last
 * collection) since then, a full collection runs before the next tensor is
 * made, so loops that drop large tensors stay bounded (torch7 does the same
 * with its heap-tracking hook). */
#define GC_MIN_STEP ((uint64_t)64 << 20)
static uint64_t gc_mark_acquired, gc_threshold = GC_MIN_STEP;

static void nudge_collector(lua_State *L)
{
    fd_memory_stats st;
    fd_memory_get_stats(&st);
    if (st.acquired_bytes - gc_mark_acquired < gc_threshold) return;
    lua_gc(L, LUA_GCCOLLECT);
    fd_memory_get_stats(&st);
    gc_mark_acquired = st.acquired_bytes;
    gc_threshold = st.live_bytes > GC_MIN_STEP ? st.live_bytes : GC_MIN_STEP;
}

fd_tensor *fd_lua_newtensor(lua_State *L)
{
    nudge_collector(L);
    fd_tensor *t = lua_newuserdatauv(L, sizeof *t, 0);
    memset(t, 0, sizeof *t);
    luaL_setmetatable(L, FD_TENSOR_MT);
    return t;
}

void fd_lua_pushview(lua_State *L, const fd_tensor *src)
{
    fd_tensor *t = fd_lua_newtensor(L);
    fd_tensor_view_of(t, src);
}

/* A blocked tensor becomes NCHW in place: the userdata keeps its identity
 * (autograd and user code hold it) and its storage's version, so saved-tensor
 * checks see no write. */
static fd_tensor *unblock_in_place(lua_State *L, fd_tensor *t)
{
    if (!t->block) return t;
    fd_tensor plain;
    if (fd_tensor_unblock(&plain, t)) fd_lua_error(L);
    plain.storage->version = t->storage->version;
    fd_tensor_release(t);
    *t = plain;
    return t;
}

fd_tensor *fd_lua_totensor(lua_State *L, int arg)
{
    fd_tensor *t = luaL_testudata(L, arg, FD_TENSOR_MT);
    return t && t->storage ? unblock_in_place(L, t) : NULL;
}

fd_tensor *fd_lua_checktensor_any(lua_State *L, int arg)
{
    fd_tensor *t = luaL_testudata(L, arg, FD_TENSOR_MT);
    if (!t) {
        const char *got = luaL_typename(L, arg);
        luaL_argerror(L, arg, lua_pushfstring(L, "tensor expected, got %s", got));
    }
    if (!t->storage) luaL_argerror(L, arg, "attempt to use a released tensor");
    return t;
}

fd_tensor *fd_lua_checktensor(lua_State *L, int arg)
{
    return unblock_in_place(L, fd_lua_checktensor_any(L, arg));
}

int fd_lua_error(lua_State *L)
{
    return luaL_error(L, "%s", fd_error_message());
}

void fd_lua_setfuncs(lua_State *L, int index, const luaL_Reg *fns)
{
    index = lua_absindex(L, index);
    for (; fns->name; fns++) {
        lua_pushcfunction(L, fns->func);
        lua_setfield(L, index, fns->name);
    }
}

/* __gc and __close: one idempotent release. */
static int t_release(lua_State *L)
{
    fd_tensor *t = luaL_checkudata(L, 1, FD_TENSOR_MT);
    fd_tensor_release(t);
    return 0;
}

/* ---- argument helpers ------------------------------------------------- */

static int64_t check_int(lua_State *L, int arg, const char *what)
{
    int isint;
    lua_Integer v = lua_tointegerx(L, arg, &isint);
    if (!isint) {
        if (lua_type(L, arg) == LUA_TNUMBER)
            luaL_argerror(L, arg, lua_pushfstring(L, "%s must be an integer, got %s", what, lua_tostring(L, arg)));
        luaL_argerror(L, arg, lua_pushfstring(L, "%s expected (an integer), got %s", what, luaL_typename(L, arg)));
    }
    return (int64_t)v;
}

int fd_lua_checkshape(lua_State *L, int arg, int64_t *shape, int *next)
{
    int ndim = 0;
    if (lua_istable(L, arg) && !luaL_testudata(L, arg, FD_TENSOR_MT)) {
        int n = (int)lua_rawlen(L, arg);
        if (n > FD_MAX_DIMS)
            luaL_argerror(L, arg, lua_pushfstring(L, "a shape has at most %d dims, got %d", FD_MAX_DIMS, n));
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, arg, i);
            int isint;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint)
                luaL_argerror(L, arg, lua_pushfstring(L, "shape entry %d must be an integer, got %s", i,
                                                      luaL_typename(L, -1)));
            if (v < 0) luaL_argerror(L, arg, lua_pushfstring(L, "shape entry %d is negative (%d)", i, (int)v));
            shape[ndim++] = v;
            lua_pop(L, 1);
        }
        if (next) *next = arg + 1;
        return ndim;
    }
    while (lua_type(L, arg + ndim) == LUA_TNUMBER) {
        if (ndim == FD_MAX_DIMS)
            luaL_argerror(L, arg + ndim, lua_pushfstring(L, "a shape has at most %d dims", FD_MAX_DIMS));
        int64_t v = check_int(L, arg + ndim, "size");
        if (v < 0) luaL_argerror(L, arg + ndim, lua_pushfstring(L, "size is negative (%I)", (lua_Integer)v));
        shape[ndim] = v;
        ndim++;
    }
    if (next) *next = arg + ndim;
    return ndim;
}

fd_dtype fd_lua_optdtype(lua_State *L, int arg, fd_dtype def)
{
    if (lua_isnoneornil(L, arg)) return def;
    const char *name = luaL_checkstring(L, arg);
    fd_dtype dt;
    if (fd_dtype_from_name(name, &dt)) luaL_argerror(L, arg, fd_error_message());
    return dt;
}

int fd_lua_checkdim(lua_State *L, int arg, int ndim)
{
    int64_t d = check_int(L, arg, "dim");
    if (d == 0 || d > ndim || d < -ndim)
        luaL_argerror(L, arg, lua_pushfstring(L, "dim %I out of range for a tensor of %d dims (1..%d or -%d..-1)",
                                              (lua_Integer)d, ndim, ndim, ndim));
    return (int)(d > 0 ? d - 1 : ndim + d);
}

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

/* ---- facts ------------------------------------------------------------ */

/* t:size() -> {2, 3}; t:size(d) -> n */
static int m_size(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor_any(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        int d = fd_lua_checkdim(L, 2, t->ndim);
        lua_pushinteger(L, t->shape[d]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int m_stride(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, t->stride[fd_lua_checkdim(L, 2, t->ndim)]);
        return 1;
    }
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->stride[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int m_dim(lua_State *L)
{
    lua_pushinteger(L, fd_lua_checktensor_any(L, 1)->ndim);
    return 1;
}

static int m_numel(lua_State *L)
{
    lua_pushinteger(L, fd_tensor_numel(fd_lua_checktensor_any(L, 1)));
    return 1;
}

static int m_dtype(lua_State *L)
{
    lua_pushstring(L, fd_dtype_name(fd_lua_checktensor_any(L, 1)->dtype));
    return 1;
}

static int m_is_contiguous(lua_State *L)
{
    lua_pushboolean(L, fd_tensor_is_contiguous(fd_lua_checktensor(L, 1)));
    return 1;
}

static int m_storage_offset(lua_State *L)
{
    lua_pushinteger(L, fd_lua_checktensor(L, 1)->offset);
    return 1;
}

/* The storage's write counter: caches (and autograd's saved tensors) compare it. */
static int m_version(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)fd_lua_checktensor_any(L, 1)->storage->version);
    return 1;
}

static int m_is_released(lua_State *L)
{
    fd_tensor *t = luaL_checkudata(L, 1, FD_TENSOR_MT);
    lua_pushboolean(L, t->storage == NULL);
    return 1;
}

/* true when both views share one storage */
static int m_is_same_storage(lua_State *L)
{
    lua_pushboolean(L, fd_lua_checktensor(L, 1)->storage == fd_lua_checktensor(L, 2)->storage);
    return 1;
}

/* ---- views ------------------------------------------------------------ */

/* Pushes a view of arg 1 and returns its header for a view op to modify. */
static fd_tensor *push_view(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    fd_tensor *v = fd_lua_newtensor(L);
    fd_tensor_view_of(v, src);
    return v;
}

/* A shape that may hold -1 (view, reshape, expand), as a table at arg 2 or
 * integers from arg 2 on; returns ndim. */
static int view_shape(lua_State *L, int64_t *shape)
{
    int ndim = 0;
    if (lua_istable(L, 2)) {
        ndim = (int)lua_rawlen(L, 2);
        if (ndim > FD_MAX_DIMS) return luaL_argerror(L, 2, "too many dims");
        for (int i = 0; i < ndim; i++) {
            lua_rawgeti(L, 2, i + 1);
            shape[i] = check_int(L, lua_gettop(L), "size");
            lua_pop(L, 1);
        }
        return ndim;
    }
    int top = lua_gettop(L);
    if (top - 1 > FD_MAX_DIMS) return luaL_argerror(L, 2, "too many dims");
    for (int i = 2; i <= top; i++) shape[ndim++] = check_int(L, i, "size");
    return ndim;
}

static int m_view(lua_State *L)
{
    int64_t shape[FD_MAX_DIMS];
    int ndim = view_shape(L, shape);
    fd_tensor *v = push_view(L);
    if (fd_view_reshape(v, ndim, shape)) return fd_lua_error(L);
    return 1;
}

/* reshape: a view when the strides allow it, else a contiguous copy. */
static int m_reshape(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int64_t shape[FD_MAX_DIMS];
    int ndim = view_shape(L, shape);
    fd_tensor *v = fd_lua_newtensor(L);
    fd_tensor_view_of(v, src);
    if (fd_view_reshape(v, ndim, shape) == FD_OK) return 1;
    fd_tensor_release(v); /* not viewable: copy, then view the copy */
    if (fd_tensor_clone(v, src)) return fd_lua_error(L);
    if (fd_view_reshape(v, ndim, shape)) return fd_lua_error(L);
    return 1;
}

static int m_narrow(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int d = fd_lua_checkdim(L, 2, src->ndim);
    int64_t start = check_int(L, 3, "start"), len = check_int(L, 4, "length");
    fd_tensor *v = push_view(L);
    if (fd_view_narrow(v, d, start - 1, len)) return fd_lua_error(L);
    return 1;
}

static int m_select(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int d = fd_lua_checkdim(L, 2, src->ndim);
    int64_t i = check_int(L, 3, "index");
    if (i < 0) i += src->shape[d] + 1; /* -1 is the last */
    fd_tensor *v = push_view(L);
    if (fd_view_select(v, d, i - 1)) return fd_lua_error(L);
    return 1;
}

static int m_transpose(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int a = fd_lua_checkdim(L, 2, src->ndim), b = fd_lua_checkdim(L, 3, src->ndim);
    fd_tensor *v = push_view(L);
    fd_view_transpose(v, a, b);
    return 1;
}

/* t:t(): transpose of a matrix */
static int m_t(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    if (src->ndim != 2)
        return luaL_error(L, "t: expects a 2-d tensor, got %d dims %s; use transpose(d1, d2)", src->ndim,
                          FD_SHAPE_STR(src));
    fd_tensor *v = push_view(L);
    fd_view_transpose(v, 0, 1);
    return 1;
}

static int m_permute(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int perm[FD_MAX_DIMS], n = 0;
    if (lua_istable(L, 2)) {
        n = (int)lua_rawlen(L, 2);
        for (int i = 0; i < n && i < FD_MAX_DIMS; i++) {
            lua_rawgeti(L, 2, i + 1);
            perm[i] = fd_lua_checkdim(L, lua_gettop(L), src->ndim);
            lua_pop(L, 1);
        }
    } else {
        n = lua_gettop(L) - 1;
        for (int i = 0; i < n && i < FD_MAX_DIMS; i++) perm[i] = fd_lua_checkdim(L, i + 2, src->ndim);
    }
    if (n != src->ndim)
        return luaL_error(L, "permute: %d dims given for a tensor of %d dims %s", n, src->ndim, FD_SHAPE_STR(src));
    fd_tensor *v = push_view(L);
    if (fd_view_permute(v, perm)) return fd_lua_error(L);
    return 1;
}

static int m_expand(lua_State *L)
{
    fd_lua_checktensor(L, 1);
    int64_t shape[FD_MAX_DIMS];
    int ndim;
    fd_tensor *other = luaL_testudata(L, 2, FD_TENSOR_MT) ? fd_lua_checktensor(L, 2) : NULL; /* expand_as */
    if (other) {
        ndim = other->ndim;
        memcpy(shape, other->shape, sizeof(int64_t) * (size_t)ndim);
    } else {
        ndim = view_shape(L, shape);
    }
    fd_tensor *v = push_view(L);
    if (fd_view_expand(v, ndim, shape)) return fd_lua_error(L);
    return 1;
}

static int m_squeeze(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int d = lua_isnoneornil(L, 2) ? -1 : fd_lua_checkdim(L, 2, src->ndim);
    fd_tensor *v = push_view(L);
    if (fd_view_squeeze(v, d)) return fd_lua_error(L);
    return 1;
}

static int m_unsqueeze(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int d = fd_lua_checkdim(L, 2, src->ndim + 1);
    fd_tensor *v = push_view(L);
    if (fd_view_unsqueeze(v, d)) return fd_lua_error(L);
    return 1;
}

static int m_contiguous(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_tensor_contiguous(out, src)) return fd_lua_error(L);
    return 1;
}

/* t:blocked(): t in the blocked layout (nChw8c, fd_tensor.block), which
 * conv2d and group_norm keep from call to call; t itself when it already is.
 * Any other use turns it back into NCHW (fd_lua_checktensor). */
static int m_blocked(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor_any(L, 1);
    if (src->block) {
        lua_settop(L, 1);
        return 1;
    }
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_tensor_block(out, src)) return fd_lua_error(L);
    return 1;
}

static int m_is_blocked(lua_State *L)
{
    lua_pushboolean(L, fd_lua_checktensor_any(L, 1)->block != 0);
    return 1;
}

static int m_clone(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_tensor_clone(out, src)) return fd_lua_error(L);
    return 1;
}

/* t:to('bf16'): a converted copy (the tensor itself when already that dtype). */
static int m_to(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    fd_dtype dt = fd_lua_optdtype(L, 2, src->dtype);
    if (dt == src->dtype) {
        lua_settop(L, 1);
        return 1;
    }
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_tensor_to_dtype(out, src, dt)) return fd_lua_error(L);
    return 1;
}

/* ---- in-place --------------------------------------------------------- */

/* dst:copy(src): broadcasts src, converts dtype; returns dst */
static int m_copy(lua_State *L)
{
    fd_tensor *dst = fd_lua_checktensor(L, 1), *src = fd_lua_checktensor(L, 2);
    if (fd_tensor_copy_(dst, src)) return fd_lua_error(L);
    lua_settop(L, 1);
    return 1;
}

static int m_fill(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    double v = lua_isboolean(L, 2) ? lua_toboolean(L, 2) : luaL_checknumber(L, 2);
    fd_tensor_fill_(t, v);
    lua_settop(L, 1);
    return 1;
}

static int m_zero(lua_State *L)
{
    fd_tensor_fill_(fd_lua_checktensor(L, 1), 0);
    lua_settop(L, 1);
    return 1;
}

/* t:release(): frees the storage now (the same as leaving a `<close>` scope). */
static int m_release(lua_State *L)
{
    return t_release(L);
}

/* ---- elements --------------------------------------------------------- */

/* Reads 1-based indices from arg on (or one table of them) into a byte
 * offset; negative indices count from the end. */
static char *element_at(lua_State *L, fd_tensor *t, int arg, const char *op)
{
    int64_t off = t->offset;
    int n = lua_istable(L, arg) ? (int)lua_rawlen(L, arg) : 0;
    bool table = lua_istable(L, arg);
    int given = table ? n : 0;
    if (!table)
        while (given < t->ndim && lua_type(L, arg + given) == LUA_TNUMBER) given++;
    if (given != t->ndim)
        luaL_error(L, "%s: %d indices given for a tensor of %d dims %s", op, given, t->ndim, FD_SHAPE_STR(t));
    for (int d = 0; d < t->ndim; d++) {
        int64_t i;
        if (table) {
            lua_rawgeti(L, arg, d + 1);
            i = check_int(L, lua_gettop(L), "index");
            lua_pop(L, 1);
        } else {
            i = check_int(L, arg + d, "index");
        }
        int64_t z = i < 0 ? i + t->shape[d] : i - 1;
        if (i == 0 || z < 0 || z >= t->shape[d])
            luaL_error(L, "%s: index %I out of range for dim %d of size %I (indices are 1-based)", op,
                       (lua_Integer)i, d + 1, (lua_Integer)t->shape[d]);
        off += z * t->stride[d];
    }
    return (char *)t->storage->data + off * (int64_t)fd_dtype_size(t->dtype);
}

static void push_element(lua_State *L, const char *p, fd_dtype dt)
{
    switch (dt) {
    case FD_I32: lua_pushinteger(L, *(const int32_t *)p); break;
    case FD_I64: lua_pushinteger(L, *(const int64_t *)p); break;
    case FD_U8: lua_pushinteger(L, *(const uint8_t *)p); break;
    case FD_BOOL: lua_pushboolean(L, *p != 0); break;
    default: lua_pushnumber(L, fd_load_f64(p, dt));
    }
}

static void store_element(lua_State *L, int arg, char *p, fd_dtype dt)
{
    if (lua_isboolean(L, arg)) { fd_store_f64(p, dt, lua_toboolean(L, arg)); return; }
    if (dt == FD_I64 && lua_isinteger(L, arg)) { *(int64_t *)p = lua_tointeger(L, arg); return; }
    fd_store_f64(p, dt, luaL_checknumber(L, arg));
}

/* t:get(i, j, ...) */
static int m_get(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    push_element(L, element_at(L, t, 2, "get"), t->dtype);
    return 1;
}

/* t:set(i, j, ..., value) */
static int m_set(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    int top = lua_gettop(L);
    if (top != t->ndim + 2 && !(lua_istable(L, 2) && top == 3))
        return luaL_error(L, "set: expects %d indices and a value for a tensor of %d dims %s, got %d arguments",
                          t->ndim, t->ndim, FD_SHAPE_STR(t), top - 1);
    char *p = element_at(L, t, 2, "set");
    store_element(L, top, p, t->dtype);
    fd_tensor_bump_version(t);
    lua_settop(L, 1);
    return 1;
}

/* t:item(): the value of a one-element tensor */
static int m_item(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    if (fd_tensor_numel(t) != 1)
        return luaL_error(L, "item: the tensor %s has %I elements, expected 1", FD_SHAPE_STR(t),
                          (lua_Integer)fd_tensor_numel(t));
    int64_t off = t->offset;
    push_element(L, (char *)t->storage->data + off * (int64_t)fd_dtype_size(t->dtype), t->dtype);
    return 1;
}

static void push_nested(lua_State *L, const fd_tensor *t, int d, int64_t off)
{
    size_t es = fd_dtype_size(t->dtype);
    if (d == t->ndim) {
        push_element(L, (char *)t->storage->data + off * (int64_t)es, t->dtype);
        return;
    }
    lua_createtable(L, (int)t->shape[d], 0);
    for (int64_t i = 0; i < t->shape[d]; i++) {
        push_nested(L, t, d + 1, off + i * t->stride[d]);
        lua_rawseti(L, -2, (lua_Integer)(i + 1));
    }
}

/* t:totable(): nested Lua tables (a number for a 0-d tensor) */
static int m_totable(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    if (fd_tensor_numel(t) > 50000000)
        return luaL_error(L, "totable: %I elements is too many for Lua tables", (lua_Integer)fd_tensor_numel(t));
    luaL_checkstack(L, t->ndim + 4, "totable");
    push_nested(L, t, 0, t->offset);
    return 1;
}

/* t:tolist(): a flat Lua array of the elements in row-major order */
static int m_tolist(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    int64_t n = fd_tensor_numel(t);
    if (n > 50000000) return luaL_error(L, "tolist: %I elements is too many for a Lua table", (lua_Integer)n);
    lua_createtable(L, (int)n, 0);
    const int64_t *strides[1] = {t->stride};
    fd_walk w;
    fd_walk_init(&w, t->ndim, t->shape, 1, strides);
    if (w.empty) return 1;
    size_t es = fd_dtype_size(t->dtype);
    const char *base = fd_tensor_data(t);
    lua_Integer k = 1;
    do {
        for (int64_t i = 0; i < w.inner_len; i++) {
            push_element(L, base + (w.offset[0] + i * w.inner_stride[0]) * (int64_t)es, t->dtype);
            lua_rawseti(L, -2, k++);
        }
    } while (fd_walk_next(&w));
    return 1;
}

static int m_len(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    lua_pushinteger(L, t->ndim ? t->shape[0] : 0);
    return 1;
}

/* ---- registration ----------------------------------------------------- */

void fd_open_tensor(lua_State *L, const fd_lua_tables *tb)
{
    static const luaL_Reg fns[] = {
        {"empty", f_empty},           {"zeros", f_zeros},         {"ones", f_ones},
        {"full", f_full},             {"empty_like", f_empty_like}, {"zeros_like", f_zeros_like},
        {"ones_like", f_ones_like},   {"arange", f_arange},       {"linspace", f_linspace},
        {"tensor", f_tensor},         {"is_tensor", f_is_tensor},   {NULL, NULL},
    };
    static const luaL_Reg methods[] = {
        {"size", m_size},
        {"stride", m_stride},
        {"dim", m_dim},
        {"numel", m_numel},
        {"nelement", m_numel},
        {"dtype", m_dtype},
        {"is_contiguous", m_is_contiguous},
        {"storage_offset", m_storage_offset},
        {"version", m_version},
        {"is_released", m_is_released},
        {"is_same_storage", m_is_same_storage},
        {"view", m_view},
        {"reshape", m_reshape},
        {"narrow", m_narrow},
        {"select", m_select},
        {"transpose", m_transpose},
        {"t", m_t},
        {"permute", m_permute},
        {"expand", m_expand},
        {"expand_as", m_expand},
        {"squeeze", m_squeeze},
        {"unsqueeze", m_unsqueeze},
        {"contiguous", m_contiguous},
        {"blocked", m_blocked},
        {"is_blocked", m_is_blocked},
        {"clone", m_clone},
        {"to", m_to},
        {"copy", m_copy},
        {"fill", m_fill},
        {"zero", m_zero},
        {"release", m_release},
        {"get", m_get},
        {"set", m_set},
        {"item", m_item},
        {"totable", m_totable},
        {"tolist", m_tolist},
        {NULL, NULL},
    };
    fd_lua_setfuncs(L, tb->fada, fns);
    fd_lua_setfuncs(L, tb->methods, methods);
    lua_pushcfunction(L, t_release);
    lua_setfield(L, tb->meta, "__gc");
    lua_pushcfunction(L, t_release);
    lua_setfield(L, tb->meta, "__close");
    lua_pushcfunction(L, m_len);
    lua_setfield(L, tb->meta, "__len");
}
