/* The module `fada`: opens every binding file (lua_*.c) into one table, then loads the
 * Lua half of the library (lua/fada/lib.lua), found by fd_lua_library_dir
 * (runtime/core/fd_library_dir.c) next to the executable or the shared object
 * that holds this code. */
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "runtime/core/fd_runtime.h"
#include "runtime/lua/fd_lua.h"

/* Every runtime/lua/lua_<name>.c and ops/lua/lua_<name>.c defines
 * fd_open_<name>; CMake lists them in the generated fd_openers.h, so adding a
 * binding file needs no edit here. */
#include "fd_openers.h"

static const fd_lua_opener openers[] = {FD_OPENERS};

/* package.path = <dir>/?.lua;<dir>/?/init.lua;<old path> */
static void add_to_package_path(lua_State *L, const char *dir)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    const char *old = lua_tostring(L, -1);
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, old ? old : "");
    lua_setfield(L, -3, "path");
    lua_pop(L, 2);
}

int luaopen_fada(lua_State *L)
{
    fd_runtime_init();
    lua_newtable(L); /* fada */
    int fada = lua_gettop(L);
    luaL_newmetatable(L, FD_TENSOR_MT);
    int meta = lua_gettop(L);
    lua_newtable(L);
    int methods = lua_gettop(L);
    lua_pushvalue(L, methods);
    lua_setfield(L, meta, "__index");
    lua_pushliteral(L, "Tensor");
    lua_setfield(L, meta, "__name");
    fd_lua_tables tables = {fada, meta, methods};
    for (size_t i = 0; i < sizeof openers / sizeof openers[0]; i++) openers[i](L, &tables);
    lua_pushvalue(L, methods);
    lua_setfield(L, fada, "Tensor"); /* fada.Tensor: the method table, for extending from Lua */
    lua_settop(L, fada);

    /* Lua submodules say `local fada = require 'fada'` and must get this table. */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_pushvalue(L, fada);
    lua_setfield(L, -2, "fada");
    lua_pop(L, 2);

    char dir[PATH_MAX];
    if (!fd_lua_library_dir(dir, sizeof dir))
        return luaL_error(L, "fada: cannot find the Lua library (lua/fada/lib.lua) next to the executable "
                             "or in %s; reinstall fadalua", FADA_SOURCE_LUA_DIR);
    lua_pushstring(L, dir);
    lua_setfield(L, fada, "library_dir");
    add_to_package_path(L, dir);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "fada.lib");
    lua_call(L, 1, 0);
    lua_settop(L, fada);
    return 1;
}
