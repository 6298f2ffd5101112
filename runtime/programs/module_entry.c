/* Entry point of fada.so, for stock lua5.4: `require 'fada'`. Lua's own
 * symbols come from the host interpreter, so this library must not link
 * liblua (Debian's lua5.4 carries its own copy). */
#include "runtime/lua/fd_lua.h"

int luaopen_fada(lua_State *L);

/* The core's luaopen_fada lives in the static library; referencing it here
 * pulls it into the shared object. */
int (*const fd_module_entry)(lua_State *) = luaopen_fada;
