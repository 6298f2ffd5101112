/* Tensors in Lua: element access (get, set, item, totable, tolist, #t). */
#include "runtime/lua/fd_lua_tensor.h"

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

void fd_open_tensor_elements(lua_State *L, const fd_lua_tables *tb)
{
    static const luaL_Reg methods[] = {
        {"get", m_get},
        {"set", m_set},
        {"item", m_item},
        {"totable", m_totable},
        {"tolist", m_tolist},
        {NULL, NULL},
    };
    fd_lua_setfuncs(L, tb->methods, methods);
    lua_pushcfunction(L, m_len);
    lua_setfield(L, tb->meta, "__len");
}
