/* fada.ops.oplist() -> {{name=, suite=, gradcheck=, has_reference=}, ...}:
 * the op list (fd_oplist.h) as data for tests. Taking each kernel's address
 * here makes a missing fast or reference kernel a link error. */
#include "ops/fd_oplist.h"
#include "runtime/lua/fd_lua.h"

typedef void (*kernel)(void);

#define FD_OP_ROW(name, fwd, bwd, ref_fwd, ref_bwd, suite, gradcheck) \
    {#name, suite, gradcheck, {(kernel)fwd, (kernel)bwd, (kernel)ref_fwd, (kernel)ref_bwd}},
static const struct {
    const char *name, *suite, *gradcheck;
    kernel kernels[4];
} oplist[] = {FD_OPLIST(FD_OP_ROW)};
#undef FD_OP_ROW

static int l_oplist(lua_State *L)
{
    const int n = (int)(sizeof oplist / sizeof oplist[0]);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 4);
        lua_pushstring(L, oplist[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, oplist[i].suite);
        lua_setfield(L, -2, "suite");
        lua_pushstring(L, oplist[i].gradcheck);
        lua_setfield(L, -2, "gradcheck");
        int all = 1;
        for (int k = 0; k < 4; k++) all = all && oplist[i].kernels[k] != NULL;
        lua_pushboolean(L, all);
        lua_setfield(L, -2, "has_reference");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

void fd_open_oplist(lua_State *L, const fd_lua_tables *t)
{
    luaL_getsubtable(L, t->fada, "ops"); /* shared with other binding files: get or create */
    lua_pushcfunction(L, l_oplist);
    lua_setfield(L, -2, "oplist");
    lua_pop(L, 1);
}
