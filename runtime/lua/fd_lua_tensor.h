/* What the tensor binding files (lua_tensor.c, lua_tensor_create.c,
 * lua_tensor_views.c, lua_tensor_elements.c) share: an integer argument. */
#ifndef FD_LUA_TENSOR_H
#define FD_LUA_TENSOR_H

#include "runtime/lua/fd_lua.h"

static inline int64_t check_int(lua_State *L, int arg, const char *what)
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

#endif
