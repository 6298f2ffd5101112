/* fada.frames_to_float: decoded video frames (u8, channels last, as the
 * video reader returns them) to model input (float, channels first, in
 * [0, 1] or [-1, 1]) in one pass, stacking a list on the way. The data
 * loader does this for every batch; the generic permute + to + mul + sub
 * chain costs four passes over the batch and was ~10x slower.
 *
 *   local x = fada.frames_to_float(u8)                 -- [..., H, W, C] -> f32 [..., C, H, W] in [0, 1]
 *   local b = fada.frames_to_float({a, b, c}, {range = '-1,1'})   -- [3, ..., C, H, W]
 */
#include <string.h>

#include "runtime/lua/fd_lua.h"

/* out[n][c][y][x] = in[n][y][x][c] * scale + bias for n frames of h*w*ch. */
static void hwc_to_chw(float *restrict out, const uint8_t *restrict in, int64_t n, int64_t hw, int ch, float scale,
                       float bias)
{
#pragma omp parallel for schedule(static) if (n * hw * ch > (1 << 18))
    for (int64_t f = 0; f < n; f++) {
        const uint8_t *src = in + f * hw * ch;
        float *dst = out + f * hw * ch;
        for (int c = 0; c < ch; c++) {
            float *d = dst + (int64_t)c * hw;
            for (int64_t p = 0; p < hw; p++) d[p] = (float)src[p * ch + c] * scale + bias;
        }
    }
}

static int l_frames_to_float(lua_State *L)
{
    int is_list = lua_istable(L, 1) && !fd_lua_totensor(L, 1);
    int count = is_list ? (int)luaL_len(L, 1) : 1;
    if (count < 1) return luaL_argerror(L, 1, "an empty list of frames");
    float scale = 1.0f / 255.0f, bias = 0.0f;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "range");
        const char *r = lua_isnil(L, -1) ? "0,1" : luaL_checkstring(L, -1);
        if (!strcmp(r, "-1,1") || !strcmp(r, "-11")) scale = 2.0f / 255.0f, bias = -1.0f;
        else if (strcmp(r, "0,1") && strcmp(r, "01"))
            return luaL_argerror(L, 2, lua_pushfstring(L, "range must be '0,1' or '-1,1', got '%s'", r));
        lua_pop(L, 1);
    }
    /* the first tensor fixes the shape; every other must match */
    if (is_list) lua_rawgeti(L, 1, 1);
    else lua_pushvalue(L, 1);
    fd_tensor *first = fd_lua_checktensor(L, -1);
    if (first->dtype != FD_U8 || first->ndim < 3)
        return luaL_error(L, "frames_to_float: frames must be u8 [..., H, W, C], got %s %s",
                          fd_dtype_name(first->dtype), FD_SHAPE_STR(first));
    int nd = first->ndim;
    int64_t shape[FD_MAX_DIMS];
    memcpy(shape, first->shape, sizeof(int64_t) * (size_t)nd);
    lua_pop(L, 1);
    int64_t ch = shape[nd - 1], hw = shape[nd - 3] * shape[nd - 2];
    int64_t per = 1; /* frames per tensor */
    for (int d = 0; d < nd - 3; d++) per *= shape[d];
    int out_nd = nd + (is_list ? 1 : 0);
    if (out_nd > FD_MAX_DIMS) return luaL_error(L, "frames_to_float: too many dimensions (%d)", out_nd);
    int64_t oshape[FD_MAX_DIMS];
    int k = 0;
    if (is_list) oshape[k++] = count;
    for (int d = 0; d < nd - 3; d++) oshape[k++] = shape[d];
    oshape[k++] = ch, oshape[k++] = shape[nd - 3], oshape[k++] = shape[nd - 2];
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_tensor_empty(out, FD_F32, out_nd, oshape)) return fd_lua_error(L);
    float *o = fd_tensor_data(out);
    for (int i = 1; i <= count; i++) {
        if (is_list) lua_rawgeti(L, 1, i);
        else lua_pushvalue(L, 1);
        fd_tensor *t = fd_lua_checktensor(L, -1);
        int same = t->dtype == FD_U8 && t->ndim == nd && !memcmp(t->shape, shape, sizeof(int64_t) * (size_t)nd);
        if (!same)
            return luaL_error(L, "frames_to_float: frames %d is %s %s, frames 1 was u8 %s", i,
                              fd_dtype_name(t->dtype), FD_SHAPE_STR(t), FD_SHAPE_STR(first));
        fd_tensor tmp = {0};
        const fd_tensor *src = t;
        if (!fd_tensor_is_contiguous(t)) {
            if (fd_tensor_contiguous(&tmp, t)) return fd_lua_error(L);
            src = &tmp;
        }
        hwc_to_chw(o + (int64_t)(i - 1) * per * hw * ch, fd_tensor_data(src), per, hw, (int)ch, scale, bias);
        fd_tensor_release(&tmp);
        lua_pop(L, 1);
    }
    return 1;
}

void fd_open_frames(lua_State *L, const fd_lua_tables *t)
{
    lua_pushcfunction(L, l_frames_to_float);
    lua_setfield(L, t->fada, "frames_to_float");
}
