/* What every binding file shares: tensors as Lua userdata, argument checks,
 * and raising the core's error message as a Lua error.
 *
 * A binding function follows "make the empty object first, then acquire":
 *
 *     static int l_exp(lua_State *L) {
 *         fd_tensor *x = fd_lua_checktensor(L, 1);
 *         fd_tensor *out = fd_lua_newtensor(L);   // pushed, still released
 *         if (fd_exp(out, x)) return fd_lua_error(L);
 *         return 1;
 *     }
 *
 * If the core fails it has already freed what it held; the empty userdata is
 * garbage and costs nothing. Never raise a Lua error while holding C memory
 * that Lua does not know about. */
#ifndef FD_LUA_H
#define FD_LUA_H

#include <lauxlib.h>
#include <lua.h>

#include "runtime/core/fd_tensor.h"

#define FD_TENSOR_MT "fada.Tensor"

/* Pushes a new tensor userdata (released state, metatable set) and returns
 * its header for the caller to fill. Also the point where the collector is
 * nudged when C memory has grown since the last collection. */
fd_tensor *fd_lua_newtensor(lua_State *L);
/* Pushes a view of t (takes a new reference; t is untouched). */
void fd_lua_pushview(lua_State *L, const fd_tensor *t);
/* The tensor at arg, or a "bad argument" error; raises "attempt to use a
 * released tensor" for a released one. A tensor in the blocked layout
 * (fd_tensor.block) is turned into NCHW in place first, so every op sees
 * strides that mean what they say. */
fd_tensor *fd_lua_checktensor(lua_State *L, int arg);
/* The same, leaving a blocked tensor blocked: for the ops that read that
 * layout (conv2d, group_norm) and for shape queries. */
fd_tensor *fd_lua_checktensor_any(lua_State *L, int arg);
/* The tensor at arg (NCHW, as fd_lua_checktensor), or NULL if it is not a (live) tensor. */
fd_tensor *fd_lua_totensor(lua_State *L, int arg);
/* Raises fd_error_message() as a Lua error. Does not return. */
int fd_lua_error(lua_State *L);

/* A shape given either as a table {2, 3} or as integers from arg on
 * (fada.zeros(2, 3)). Writes up to FD_MAX_DIMS dims, returns ndim, and sets
 * *next to the first argument after the shape. */
int fd_lua_checkshape(lua_State *L, int arg, int64_t *shape, int *next);
/* A dtype name at arg ("f32", "bf16", ...), or def when arg is none/nil. */
fd_dtype fd_lua_optdtype(lua_State *L, int arg, fd_dtype def);
/* A 1-based Lua dim (negative counts from the end: -1 is the last) as a
 * 0-based C dim for a tensor of ndim dims; errors name the function. */
int fd_lua_checkdim(lua_State *L, int arg, int ndim);

/* Options tables: opts.<key> of the table at `arg` (arg 0, none, nil or an
 * absent key: def). A value of the wrong type is an argument error naming the
 * key. A returned string or tensor stays alive in the table. */
lua_Integer fd_lua_opt_int(lua_State *L, int arg, const char *key, lua_Integer def);
double fd_lua_opt_num(lua_State *L, int arg, const char *key, double def);
const char *fd_lua_opt_str(lua_State *L, int arg, const char *key, const char *def);
int fd_lua_opt_bool(lua_State *L, int arg, const char *key, int def);
const fd_tensor *fd_lua_opt_tensor(lua_State *L, int arg, const char *key); /* or NULL */

/* The tables a binding file registers into (absolute stack indices):
 * `fada` (the module), `meta` (the Tensor metatable: operators, __gc...),
 * `methods` (its __index: t:size(), t:add(...)). Each binding file has one
 * opener, found by CMake and listed in the generated fd_openers.h (see
 * fd_module.c). */
typedef struct fd_lua_tables {
    int fada, meta, methods;
} fd_lua_tables;
typedef void (*fd_lua_opener)(lua_State *L, const fd_lua_tables *t);

/* Adds the functions of `fns` to the table at `index` (which may be negative). */
void fd_lua_setfuncs(lua_State *L, int index, const luaL_Reg *fns);

#endif
