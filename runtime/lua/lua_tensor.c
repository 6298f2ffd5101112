/* Tensors in Lua: the userdata, its facts and in-place writes (creation:
 * lua_tensor_create.c, views and copies: lua_tensor_views.c, element
 * access: lua_tensor_elements.c). */
#include <string.h>

#include "runtime/lua/fd_lua_tensor.h"

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

/* ---- registration ----------------------------------------------------- */

void fd_open_tensor(lua_State *L, const fd_lua_tables *tb)
{
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
        {"copy", m_copy},
        {"fill", m_fill},
        {"zero", m_zero},
        {"release", m_release},
        {NULL, NULL},
    };
    fd_lua_setfuncs(L, tb->methods, methods);
    lua_pushcfunction(L, t_release);
    lua_setfield(L, tb->meta, "__gc");
    lua_pushcfunction(L, t_release);
    lua_setfield(L, tb->meta, "__close");
}
