/* Options of the I/O binding files (lua_image.c, lua_audio.c, lua_video.c)
 * beyond the shared getters of fd_lua.h (fd_lua_opt_int, ...). */
#ifndef FD_LUA_IO_H
#define FD_LUA_IO_H

#include "runtime/lua/fd_lua.h"

/* opts.range: '01' / '0,1' (FD_RANGE_01, the default) or '-11' / '-1,1'. */
int fd_lua_opt_range(lua_State *L, int arg);

#endif
