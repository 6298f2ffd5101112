/* The module `fada`: opens every binding file (lua_*.c) into one table, then loads the
 * Lua half of the library (lua/fada/lib.lua), found next to the executable or
 * the shared object that holds this code. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fd_lua.h"
#include "fd_runtime.h"

/* Every runtime/lua_<name>.c and ops/lua_<name>.c defines fd_open_<name>;
 * CMake lists them in the generated fd_openers.h, so adding a binding file
 * needs no edit here. */
#include "fd_openers.h"

static const fd_lua_opener openers[] = {FD_OPENERS};

static int file_exists(const char *path)
{
    return access(path, R_OK) == 0;
}

/* Tries, relative to the directory of `binary`: ./lua (build tree),
 * ../share/fadalua/lua (installed), ../lua (a build dir inside the source). */
static int lua_dir_near(const char *binary, char *out, size_t n)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", binary);
    char *slash = strrchr(dir, '/');
    if (!slash) return 0;
    *slash = '\0';
    static const char *candidates[] = {"/lua", "/../share/fadalua/lua", "/../lua"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++) {
        char probe[PATH_MAX + 64];
        snprintf(probe, sizeof probe, "%s%s/fada/lib.lua", dir, candidates[i]);
        if (file_exists(probe)) {
            snprintf(out, n, "%s%s", dir, candidates[i]);
            return 1;
        }
    }
    return 0;
}

int fd_lua_library_dir(char *out, size_t n)
{
    Dl_info info;
    char exe[PATH_MAX];
    /* The object holding this function: fada.so inside stock lua5.4, or the fadalua executable. */
    if (dladdr((void *)fd_lua_library_dir, &info) && info.dli_fname && strchr(info.dli_fname, '/')) {
        char real[PATH_MAX];
        if (realpath(info.dli_fname, real) && lua_dir_near(real, out, n)) return 1;
    }
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        if (lua_dir_near(exe, out, n)) return 1;
    }
    /* Last resort: the source tree this binary was built from. */
    snprintf(out, n, "%s", FADA_SOURCE_LUA_DIR);
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/fada/lib.lua", out);
    return file_exists(probe);
}

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
