/* The image-range option of the I/O bindings (fd_lua_io.h); the other
 * option getters are shared by every binding (fd_lua_opts.c). */
#include <string.h>

#include "runtime/io/fd_image.h"
#include "runtime/lua/fd_lua_io.h"

int fd_lua_opt_range(lua_State *L, int arg)
{
    const char *r = fd_lua_opt_str(L, arg, "range", "01");
    if (!strcmp(r, "01") || !strcmp(r, "0,1")) return FD_RANGE_01;
    if (!strcmp(r, "-11") || !strcmp(r, "-1,1")) return FD_RANGE_PM1;
    return luaL_argerror(L, arg, lua_pushfstring(L, "option 'range' must be '0,1' or '-1,1', got '%s'", r));
}
