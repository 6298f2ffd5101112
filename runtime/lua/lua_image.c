/* fada.image: PNG (libpng) and everything FFmpeg decodes, resize, crop.
 *
 *   local x = fada.image.load('face.png')                     -- f32 [C, H, W] in [0, 1]
 *   local x = fada.image.load('face.jpg', {range = '-1,1', channels = 3})
 *   local u = fada.image.load('face.png', {dtype = 'u8'})     -- u8 [H, W, C]
 *   local p, info = fada.image.load('big.jpg', {channels = 3, size = 256, fit = 'crop'}) -- [3, 256, 256]:
 *     the centred square, area-averaged as it decodes; info.width/height/crop say what was cut
 *   fada.image.load('huge.png', {max_pixels = 200e6})         -- past the 67.1-megapixel default
 *   fada.image.save('out.png', x, {bits = 16})                -- or {palette = true}
 *   local y = fada.image.resize(x, 256, 256, 'area')          -- to H = 256, W = 256
 *   local c = fada.image.crop(x, top, left, h, w)             -- a view; top/left 1-based
 */
#include <string.h>

#include "runtime/io/fd_image.h"
#include "runtime/lua/fd_lua_io.h"

/* An fd_image owned by a Lua userdata, so an error between making and
 * saving it frees it through __gc. */
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

/* opts.size: S (square) or {h, w}; 0, 0 when absent. */
static void opt_size(lua_State *L, int arg, int64_t *h, int64_t *w)
{
    *h = *w = 0;
    if (!lua_istable(L, arg)) return;
    int t = lua_getfield(L, arg, "size");
    if (t == LUA_TNUMBER && lua_isinteger(L, -1)) {
        *h = *w = lua_tointeger(L, -1);
    } else if (t == LUA_TTABLE && lua_rawlen(L, -1) == 2) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        if (!lua_isinteger(L, -2) || !lua_isinteger(L, -1)) luaL_argerror(L, arg, "size must be S or {h, w} integers");
        *h = lua_tointeger(L, -2), *w = lua_tointeger(L, -1);
        lua_pop(L, 2);
    } else if (t != LUA_TNIL) {
        luaL_argerror(L, arg, "size must be S or {h, w} integers");
    }
    lua_pop(L, 1);
}

/* load(path, [opts]) -> tensor, info. opts: dtype, range, channels,
 * max_pixels, size = S | {h, w}, fit = 'crop' | 'stretch', resize = 'area' |
 * 'bilinear' (default: area when shrinking), draft (JPEG at 1/2..1/8 scale
 * when resizing down; approximate). info: width, height, channels, bits of
 * the file, and crop = {top, left, h, w} (1-based) of the window used. */
static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    fd_image_load_opts o = {.dtype = FD_F32, .area = -1};
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "dtype");
        o.dtype = fd_lua_optdtype(L, -1, FD_F32);
        lua_pop(L, 1);
    }
    o.range = fd_lua_opt_range(L, 2);
    o.channels = (int)fd_lua_opt_int(L, 2, "channels", 0);
    if (o.channels != 0 && o.channels != 1 && o.channels != 3 && o.channels != 4)
        luaL_argerror(L, 2, "channels must be 1, 3 or 4");
    o.max_pixels = fd_lua_opt_int(L, 2, "max_pixels", 0);
    opt_size(L, 2, &o.h, &o.w);
    const char *fit = fd_lua_opt_str(L, 2, "fit", "stretch");
    if (strcmp(fit, "crop") && strcmp(fit, "stretch")) luaL_argerror(L, 2, "fit must be 'crop' or 'stretch'");
    o.crop = !strcmp(fit, "crop");
    const char *resize = fd_lua_opt_str(L, 2, "resize", NULL);
    if (resize && strcmp(resize, "area") && strcmp(resize, "bilinear"))
        luaL_argerror(L, 2, "resize must be 'area' or 'bilinear'");
    if (resize) o.area = !strcmp(resize, "area");
    o.draft = fd_lua_opt_bool(L, 2, "draft", 0);
    fd_image_load_info info;
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_image_load(out, path, &o, &info)) return fd_lua_error(L);
    lua_createtable(L, 0, 5);
    lua_pushinteger(L, info.width);
    lua_setfield(L, -2, "width");
    lua_pushinteger(L, info.height);
    lua_setfield(L, -2, "height");
    lua_pushinteger(L, info.channels);
    lua_setfield(L, -2, "channels");
    lua_pushinteger(L, info.bits);
    lua_setfield(L, -2, "bits");
    lua_createtable(L, 4, 0);
    const int64_t crop[4] = {info.top + 1, info.left + 1, info.crop_h, info.crop_w};
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, crop[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "crop");
    return 2;
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
