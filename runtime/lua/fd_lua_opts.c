/* Options tables for every binding (declared in fd_lua.h). Each getter
 * leaves the stack as it found it. */
#include "runtime/lua/fd_lua.h"

/* Pushes opts.<key> and returns 1, or pushes nothing and returns 0. */
static int opt_push(lua_State *L, int arg, const char *key)
{
    if (arg == 0 || !lua_istable(L, arg)) return 0;
    if (lua_getfield(L, arg, key) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

static void opt_bad(lua_State *L, int arg, const char *key, const char *want)
{
    luaL_argerror(L, arg, lua_pushfstring(L, "option '%s' must be %s, got %s", key, want, luaL_typename(L, -1)));
}

lua_Integer fd_lua_opt_int(lua_State *L, int arg, const char *key, lua_Integer def)
{
    if (!opt_push(L, arg, key)) return def;
    int ok;
    lua_Integer v = lua_tointegerx(L, -1, &ok);
    if (!ok) opt_bad(L, arg, key, "an integer");
    lua_pop(L, 1);
    return v;
}

double fd_lua_opt_num(lua_State *L, int arg, const char *key, double def)
{
    if (!opt_push(L, arg, key)) return def;
    int ok;
    double v = lua_tonumberx(L, -1, &ok);
    if (!ok) opt_bad(L, arg, key, "a number");
    lua_pop(L, 1);
    return v;
}

const char *fd_lua_opt_str(lua_State *L, int arg, const char *key, const char *def)
{
    if (!opt_push(L, arg, key)) return def;
    if (lua_type(L, -1) != LUA_TSTRING) opt_bad(L, arg, key, "a string");
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

int fd_lua_opt_bool(lua_State *L, int arg, const char *key, int def)
{
    if (!opt_push(L, arg, key)) return def;
    if (!lua_isboolean(L, -1)) opt_bad(L, arg, key, "a boolean");
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

const fd_tensor *fd_lua_opt_tensor(lua_State *L, int arg, const char *key)
{
    if (!opt_push(L, arg, key)) return NULL;
    const fd_tensor *t = fd_lua_totensor(L, -1);
    if (!t) opt_bad(L, arg, key, "a tensor");
    lua_pop(L, 1);
    return t;
}
