/* Tensors in Lua: views (view, reshape, narrow, select, transpose, permute,
 * expand, squeeze, unsqueeze) and copies (contiguous, blocked, clone, to). */
#include <string.h>

#include "runtime/lua/fd_lua_tensor.h"

/* ---- views ------------------------------------------------------------ */

/* Pushes a view of arg 1 and returns its header for a view op to modify. */
static fd_tensor *push_view(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    fd_tensor *v = fd_lua_newtensor(L);
    fd_tensor_view_of(v, src);
    return v;
}

/* A shape that may hold -1 (view, reshape, expand), as a table at arg 2 or
 * integers from arg 2 on; returns ndim. */
static int view_shape(lua_State *L, int64_t *shape)
{
    int ndim = 0;
    if (lua_istable(L, 2)) {
        ndim = (int)lua_rawlen(L, 2);
        if (ndim > FD_MAX_DIMS) return luaL_argerror(L, 2, "too many dims");
        for (int i = 0; i < ndim; i++) {
            lua_rawgeti(L, 2, i + 1);
            shape[i] = check_int(L, lua_gettop(L), "size");
            lua_pop(L, 1);
        }
        return ndim;
    }
    int top = lua_gettop(L);
    if (top - 1 > FD_MAX_DIMS) return luaL_argerror(L, 2, "too many dims");
    for (int i = 2; i <= top; i++) shape[ndim++] = check_int(L, i, "size");
    return ndim;
}

static int m_view(lua_State *L)
{
    int64_t shape[FD_MAX_DIMS];
    int ndim = view_shape(L, shape);
    fd_tensor *v = push_view(L);
    if (fd_view_reshape(v, ndim, shape)) return fd_lua_error(L);
    return 1;
}

/* reshape: a view when the strides allow it, else a contiguous copy. */
static int m_reshape(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int64_t shape[FD_MAX_DIMS];
    int ndim = view_shape(L, shape);
    fd_tensor *v = fd_lua_newtensor(L);
    fd_tensor_view_of(v, src);
    if (fd_view_reshape(v, ndim, shape) == FD_OK) return 1;
    fd_tensor_release(v); /* not viewable: copy, then view the copy */
    if (fd_tensor_clone(v, src)) return fd_lua_error(L);
    if (fd_view_reshape(v, ndim, shape)) return fd_lua_error(L);
    return 1;
}

static int m_narrow(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int d = fd_lua_checkdim(L, 2, src->ndim);
    int64_t start = check_int(L, 3, "start"), len = check_int(L, 4, "length");
    fd_tensor *v = push_view(L);
    if (fd_view_narrow(v, d, start - 1, len)) return fd_lua_error(L);
    return 1;
}

static int m_select(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int d = fd_lua_checkdim(L, 2, src->ndim);
    int64_t i = check_int(L, 3, "index");
    if (i < 0) i += src->shape[d] + 1; /* -1 is the last */
    fd_tensor *v = push_view(L);
    if (fd_view_select(v, d, i - 1)) return fd_lua_error(L);
    return 1;
}

static int m_transpose(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int a = fd_lua_checkdim(L, 2, src->ndim), b = fd_lua_checkdim(L, 3, src->ndim);
    fd_tensor *v = push_view(L);
    fd_view_transpose(v, a, b);
    return 1;
}

/* t:t(): transpose of a matrix */
static int m_t(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    if (src->ndim != 2)
        return luaL_error(L, "t: expects a 2-d tensor, got %d dims %s; use transpose(d1, d2)", src->ndim,
                          FD_SHAPE_STR(src));
    fd_tensor *v = push_view(L);
    fd_view_transpose(v, 0, 1);
    return 1;
}

static int m_permute(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int perm[FD_MAX_DIMS], n = 0;
    if (lua_istable(L, 2)) {
        n = (int)lua_rawlen(L, 2);
        for (int i = 0; i < n && i < FD_MAX_DIMS; i++) {
            lua_rawgeti(L, 2, i + 1);
            perm[i] = fd_lua_checkdim(L, lua_gettop(L), src->ndim);
            lua_pop(L, 1);
        }
    } else {
        n = lua_gettop(L) - 1;
        for (int i = 0; i < n && i < FD_MAX_DIMS; i++) perm[i] = fd_lua_checkdim(L, i + 2, src->ndim);
    }
    if (n != src->ndim)
        return luaL_error(L, "permute: %d dims given for a tensor of %d dims %s", n, src->ndim, FD_SHAPE_STR(src));
    fd_tensor *v = push_view(L);
    if (fd_view_permute(v, perm)) return fd_lua_error(L);
    return 1;
}

static int m_expand(lua_State *L)
{
    fd_lua_checktensor(L, 1);
    int64_t shape[FD_MAX_DIMS];
    int ndim;
    fd_tensor *other = luaL_testudata(L, 2, FD_TENSOR_MT) ? fd_lua_checktensor(L, 2) : NULL; /* expand_as */
    if (other) {
        ndim = other->ndim;
        memcpy(shape, other->shape, sizeof(int64_t) * (size_t)ndim);
    } else {
        ndim = view_shape(L, shape);
    }
    fd_tensor *v = push_view(L);
    if (fd_view_expand(v, ndim, shape)) return fd_lua_error(L);
    return 1;
}

static int m_squeeze(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int d = lua_isnoneornil(L, 2) ? -1 : fd_lua_checkdim(L, 2, src->ndim);
    fd_tensor *v = push_view(L);
    if (fd_view_squeeze(v, d)) return fd_lua_error(L);
    return 1;
}

static int m_unsqueeze(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    int d = fd_lua_checkdim(L, 2, src->ndim + 1);
    fd_tensor *v = push_view(L);
    if (fd_view_unsqueeze(v, d)) return fd_lua_error(L);
    return 1;
}

static int m_contiguous(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_tensor_contiguous(out, src)) return fd_lua_error(L);
    return 1;
}

/* t:blocked(): t in the blocked layout (nChw8c, fd_tensor.block), which
 * conv2d and group_norm keep from call to call; t itself when it already is.
 * Any other use turns it back into NCHW (fd_lua_checktensor). */
static int m_blocked(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor_any(L, 1);
    if (src->block) {
        lua_settop(L, 1);
        return 1;
    }
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_tensor_block(out, src)) return fd_lua_error(L);
    return 1;
}

static int m_is_blocked(lua_State *L)
{
    lua_pushboolean(L, fd_lua_checktensor_any(L, 1)->block != 0);
    return 1;
}

static int m_clone(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_tensor_clone(out, src)) return fd_lua_error(L);
    return 1;
}

/* t:to('bf16'): a converted copy (the tensor itself when already that dtype). */
static int m_to(lua_State *L)
{
    fd_tensor *src = fd_lua_checktensor(L, 1);
    fd_dtype dt = fd_lua_optdtype(L, 2, src->dtype);
    if (dt == src->dtype) {
        lua_settop(L, 1);
        return 1;
    }
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_tensor_to_dtype(out, src, dt)) return fd_lua_error(L);
    return 1;
}

/* ---- registration ----------------------------------------------------- */

void fd_open_tensor_views(lua_State *L, const fd_lua_tables *tb)
{
    static const luaL_Reg methods[] = {
        {"view", m_view},
        {"reshape", m_reshape},
        {"narrow", m_narrow},
        {"select", m_select},
        {"transpose", m_transpose},
        {"t", m_t},
        {"permute", m_permute},
        {"expand", m_expand},
        {"expand_as", m_expand},
        {"squeeze", m_squeeze},
        {"unsqueeze", m_unsqueeze},
        {"contiguous", m_contiguous},
        {"blocked", m_blocked},
        {"is_blocked", m_is_blocked},
        {"clone", m_clone},
        {"to", m_to},
        {NULL, NULL},
    };
    fd_lua_setfuncs(L, tb->methods, methods);
}
