/* fada.image: PNG (libpng) and everything FFmpeg decodes, resize, crop.
 *
 *   local x = fada.image.load('face.png')                     -- f32 [C, H, W] in [0, 1]
 *   local x = fada.image.load('face.jpg', {range = '-1,1', channels = 3})
 *   local u = fada.image.load('face.png', {dtype = 'u8'})     -- u8 [H, W, C]
 *   fada.image.save('out.png', x, {bits = 16})                -- or {palette = true}
 *   local y = fada.image.resize(x, 256, 256, 'area')          -- to H = 256, W = 256
 *   local c = fada.image.crop(x, top, left, h, w)             -- a view; top/left 1-based
 */
#include <string.h>

#include "fd_image.h"
#include "fd_lua_io.h"

/* An fd_image owned by a Lua userdata, so an error between decoding and
 * converting frees it through __gc. */
static int img_gc(lua_State *L)
{
    fd_image_free(lua_touserdata(L, 1));
    return 0;
}

static fd_image *push_image(lua_State *L)
{
    fd_image *img = lua_newuserdatauv(L, sizeof *img, 0);
    memset(img, 0, sizeof *img);
    if (luaL_newmetatable(L, "fada.image.buffer")) {
        lua_pushcfunction(L, img_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return img;
}

static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    fd_dtype dt = FD_F32;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "dtype");
        dt = fd_lua_optdtype(L, -1, FD_F32);
        lua_pop(L, 1);
    }
    int range = fd_lua_opt_range(L, 2);
    int channels = (int)fd_lua_opt_int(L, 2, "channels", 0);
    if (channels != 0 && channels != 1 && channels != 3 && channels != 4)
        luaL_argerror(L, 2, "channels must be 1, 3 or 4");
    fd_image *img = push_image(L);
    if (fd_image_load(path, img)) return fd_lua_error(L);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_image_to_tensor(out, img, dt, range, channels)) return fd_lua_error(L);
    fd_image_free(img);
    return 1;
}

static int l_save(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    fd_tensor *t = fd_lua_checktensor(L, 2);
    size_t n = strlen(path);
    if (n < 4 || strcasecmp(path + n - 4, ".png") != 0)
        return luaL_error(L, "image.save: '%s': only PNG is written; use a .png name", path);
    int range = fd_lua_opt_range(L, 3);
    int bits = (int)fd_lua_opt_int(L, 3, "bits", 8);
    int palette = fd_lua_opt_bool(L, 3, "palette", 0);
    fd_image *img = push_image(L);
    if (fd_image_from_tensor(img, t, range, bits) || fd_png_save(path, img, palette)) return fd_lua_error(L);
    fd_image_free(img);
    return 0;
}

/* resize(t, h, w, [mode = 'bilinear']) */
static int l_resize(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    int64_t h = luaL_checkinteger(L, 2), w = luaL_checkinteger(L, 3);
    const char *mode = luaL_optstring(L, 4, "bilinear");
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_image_resize(out, t, h, w, mode)) return fd_lua_error(L);
    return 1;
}

/* crop(t, top, left, h, w): rows top..top+h-1, columns left..left+w-1
 * (1-based) of u8 [H, W, C] or float [..., H, W], as a view. */
static int l_crop(lua_State *L)
{
    fd_tensor *t = fd_lua_checktensor(L, 1);
    int64_t top = luaL_checkinteger(L, 2), left = luaL_checkinteger(L, 3);
    int64_t h = luaL_checkinteger(L, 4), w = luaL_checkinteger(L, 5);
    int hwc = t->dtype == FD_U8;
    if (hwc ? t->ndim != 3 : t->ndim < 2)
        return luaL_error(L, "image.crop: expected u8 [H, W, C] or float [..., H, W], got %s %s", fd_dtype_name(t->dtype),
                          FD_SHAPE_STR(t));
    int hd = hwc ? 0 : t->ndim - 2;
    int64_t H = t->shape[hd], W = t->shape[hd + 1];
    if (top < 1 || left < 1 || h < 1 || w < 1 || top - 1 + h > H || left - 1 + w > W)
        return luaL_error(L, "image.crop: rows %d..%d, columns %d..%d outside an image of %dx%d (W x H) %s", (int)top,
                          (int)(top + h - 1), (int)left, (int)(left + w - 1), (int)W, (int)H, FD_SHAPE_STR(t));
    fd_tensor *out = fd_lua_newtensor(L);
    fd_tensor_view_of(out, t);
    if (fd_view_narrow(out, hd, top - 1, h) || fd_view_narrow(out, hd + 1, left - 1, w)) return fd_lua_error(L);
    return 1;
}

void fd_open_image(lua_State *L, const fd_lua_tables *t)
{
    static const luaL_Reg fns[] = {
        {"load", l_load}, {"save", l_save}, {"resize", l_resize}, {"crop", l_crop}, {NULL, NULL}};
    lua_newtable(L);
    fd_lua_setfuncs(L, -1, fns);
    lua_setfield(L, t->fada, "image");
}
