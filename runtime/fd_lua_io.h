/* Option parsing shared by the I/O binding files (lua_image.c, lua_audio.c,
 * lua_video.c). Options come as a table at `arg` (absent or nil = defaults). */
#ifndef FD_LUA_IO_H
#define FD_LUA_IO_H

#include "fd_lua.h"

/* opts.<key> as an integer / number / string / boolean, or def. */
lua_Integer fd_lua_opt_int(lua_State *L, int arg, const char *key, lua_Integer def);
double fd_lua_opt_num(lua_State *L, int arg, const char *key, double def);
const char *fd_lua_opt_str(lua_State *L, int arg, const char *key, const char *def);
int fd_lua_opt_bool(lua_State *L, int arg, const char *key, int def);
/* opts.range: '01' / '0,1' (FD_RANGE_01, the default) or '-11' / '-1,1'. */
int fd_lua_opt_range(lua_State *L, int arg);

#endif
