/* fadalua: a Lua 5.4 interpreter with the module `fada` preloaded.
 * (First cut: runs a script with its arguments; the full lua-like command
 * line and the REPL come next.) */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

int luaopen_fada(lua_State *L);

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

int main(int argc, char **argv)
{
    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "fadalua: cannot create a Lua state (out of memory)\n");
        return 1;
    }
    luaL_openlibs(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_fada);
    lua_setfield(L, -2, "fada");
    lua_pop(L, 1);
    lua_createtable(L, argc, 1);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - 1);
    }
    lua_setglobal(L, "arg");
    int status = 0;
    lua_pushcfunction(L, traceback);
    if (argc < 2) {
        fprintf(stderr, "usage: fadalua script.lua [args]\n");
        status = 1;
    } else if (luaL_loadfile(L, argv[1]) != LUA_OK || lua_pcall(L, 0, 0, 1) != LUA_OK) {
        fprintf(stderr, "fadalua: %s\n", lua_tostring(L, -1));
        status = 1;
    }
    lua_close(L);
    return status;
}
