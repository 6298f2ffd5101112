/* Where the Lua half of the library lives (fd_lua_library_dir, declared in
 * fd_runtime.h): next to the executable or the shared object that holds this
 * code, or else the source tree the binary was built from. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/core/fd_runtime.h"

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
