/* Option tables for the I/O bindings (fd_lua_io.h). Each getter leaves the
 * stack as it found it; a value of the wrong type is an argument error
 * naming the key. The string a getter returns stays alive in the table. */
#include <string.h>

#include "fd_image.h"
#include "fd_lua_io.h"

static int opt_push(lua_State *L, int arg, const char *key)
{
    if (!lua_istable(L, arg)) return 0;
    lua_getfield(L, arg, key);
    if (lua_isnil(L, -1)) {
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

int fd_lua_opt_range(lua_State *L, int arg)
{
    const char *r = fd_lua_opt_str(L, arg, "range", "01");
    if (!strcmp(r, "01") || !strcmp(r, "0,1")) return FD_RANGE_01;
    if (!strcmp(r, "-11") || !strcmp(r, "-1,1")) return FD_RANGE_PM1;
    return luaL_argerror(L, arg, lua_pushfstring(L, "option 'range' must be '0,1' or '-1,1', got '%s'", r));
}
