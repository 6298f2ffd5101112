/* fada.clock(): a monotonic wall clock in seconds. os.clock() counts the CPU
 * time of every OpenMP thread, so it cannot time a parallel op or a progress
 * bar; this can. */
#include <time.h>

#include "fd_lua.h"

static int l_clock(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
    return 1;
}

void fd_open_clock(lua_State *L, const fd_lua_tables *t)
{
    lua_pushcfunction(L, l_clock);
    lua_setfield(L, t->fada, "clock");
}
