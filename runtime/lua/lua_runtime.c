/* fada.set_num_threads, fada.memory, fada.versions, fada.cpu, fada.clock. */
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

void fd_open_runtime(lua_State *L, const fd_lua_tables *tb)
{
    static const luaL_Reg fns[] = {
        {"set_num_threads", f_set_num_threads}, {"get_num_threads", f_get_num_threads},
        {"memory", f_memory},                   {"set_pool_limit", f_set_pool_limit},
        {"trim_memory", f_trim_memory},         {"versions", f_versions},
        {"cpu", f_cpu},                         {"clock", f_clock},
        {NULL, NULL},
    };
    fd_lua_setfuncs(L, tb->fada, fns);
    lua_pushliteral(L, FADA_VERSION);
    lua_setfield(L, tb->fada, "version");
}
