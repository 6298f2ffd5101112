/* fada.set_num_threads, fada.memory, fada.versions, fada.cpu, fada.clock, fada.mkdir. */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "runtime/core/fd_runtime.h"
#include "runtime/lua/fd_lua.h"

static int f_set_num_threads(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 1 || n > 1024) return luaL_argerror(L, 1, lua_pushfstring(L, "thread count must be 1..1024, got %I", n));
    fd_set_num_threads((int)n);
    return 0;
}

static int f_get_num_threads(lua_State *L)
{
    lua_pushinteger(L, fd_get_num_threads());
    return 1;
}

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

/* fada.memory() -> {live = bytes, pooled = bytes, peak = bytes, pool_limit, pool_hits, pool_misses} */
static int f_memory(lua_State *L)
{
    fd_memory_stats st;
    fd_memory_get_stats(&st);
    lua_createtable(L, 0, 6);
    set_int(L, "live", (lua_Integer)st.live_bytes);
    set_int(L, "pooled", (lua_Integer)st.pooled_bytes);
    set_int(L, "peak", (lua_Integer)st.peak_live_bytes);
    set_int(L, "pool_limit", (lua_Integer)st.pool_limit);
    set_int(L, "pool_hits", (lua_Integer)st.pool_hits);
    set_int(L, "pool_misses", (lua_Integer)st.pool_misses);
    return 1;
}

/* fada.set_pool_limit(bytes): 0 turns the pool off */
static int f_set_pool_limit(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 0) return luaL_argerror(L, 1, "pool limit must be >= 0 bytes");
    fd_memory_set_pool_limit((size_t)n);
    return 0;
}

static int f_trim_memory(lua_State *L)
{
    fd_memory_trim();
    return 0;
}

static int f_versions(lua_State *L)
{
    char buf[2048];
    fd_versions(buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

static int f_cpu(lua_State *L)
{
    const fd_cpu_features *c = fd_cpu();
    lua_createtable(L, 0, 8);
    lua_pushboolean(L, c->avx2), lua_setfield(L, -2, "avx2");
    lua_pushboolean(L, c->fma), lua_setfield(L, -2, "fma");
    lua_pushboolean(L, c->f16c), lua_setfield(L, -2, "f16c");
    lua_pushboolean(L, c->avx512f), lua_setfield(L, -2, "avx512f");
    lua_pushboolean(L, c->avx512bw), lua_setfield(L, -2, "avx512bw");
    lua_pushboolean(L, c->avx512vl), lua_setfield(L, -2, "avx512vl");
    lua_pushboolean(L, c->avx512bf16), lua_setfield(L, -2, "avx512bf16");
    lua_pushboolean(L, c->amx_bf16), lua_setfield(L, -2, "amx_bf16");
    lua_pushstring(L, c->brand), lua_setfield(L, -2, "brand");
    lua_pushinteger(L, fd_num_cores()), lua_setfield(L, -2, "cores");
    return 1;
}

/* fada.clock(): monotonic wall-clock seconds (os.clock is CPU time, which
 * counts every thread). */
static int f_clock(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec * 1e-9);
    return 1;
}

/* Makes one folder: 0, or the errno of why not. A folder already there is
 * fine; anything else there is ENOTDIR. */
static int make_folder(const char *dir)
{
    if (mkdir(dir, 0777) == 0) return 0;
    int err = errno;
    struct stat st;
    if (stat(dir, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    return err;
}

/* Makes dir[0..n) and every missing folder above it, as mkdir -p (no shell,
 * so any path is safe); raises "mkdir: 'path': why" naming the folder that failed. */
static void make_folders(lua_State *L, const char *path, size_t n)
{
    if (n == 0) luaL_error(L, "mkdir: empty path");
    char *dir = (char *)lua_newuserdatauv(L, n + 1, 0);
    memcpy(dir, path, n);
    dir[n] = '\0';
    for (size_t i = 1; i <= n; i++) {
        if (i < n && (dir[i] != '/' || dir[i - 1] == '/')) continue;
        dir[i] = '\0';
        int err = make_folder(dir);
        if (err == ENOTDIR) luaL_error(L, "mkdir: '%s': '%s' is there and is not a folder", path, dir);
        if (err) luaL_error(L, "mkdir: '%s': cannot make '%s': %s", path, dir, strerror(err));
        if (i < n) dir[i] = '/';
    }
    lua_pop(L, 1);
}

/* fada.mkdir(dir): the folder and its missing parents */
static int f_mkdir(lua_State *L)
{
    size_t n;
    const char *path = luaL_checklstring(L, 1, &n);
    make_folders(L, path, n);
    return 0;
}

/* fada.mkdir_parent(file): the folder a file is about to be written into
 * (none for a bare name) */
static int f_mkdir_parent(lua_State *L)
{
    size_t n;
    const char *path = luaL_checklstring(L, 1, &n);
    while (n > 0 && path[n - 1] != '/') n--;
    if (n > 0) make_folders(L, path, n);
    return 0;
}

void fd_open_runtime(lua_State *L, const fd_lua_tables *tb)
{
    static const luaL_Reg fns[] = {
        {"set_num_threads", f_set_num_threads}, {"get_num_threads", f_get_num_threads},
        {"memory", f_memory},                   {"set_pool_limit", f_set_pool_limit},
        {"trim_memory", f_trim_memory},         {"versions", f_versions},
        {"cpu", f_cpu},                         {"clock", f_clock},
        {"mkdir", f_mkdir},                     {"mkdir_parent", f_mkdir_parent},
        {NULL, NULL},
    };
    fd_lua_setfuncs(L, tb->fada, fns);
    lua_pushliteral(L, FADA_VERSION);
    lua_setfield(L, tb->fada, "version");
}
