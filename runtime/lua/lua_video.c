/* fada.video: a frame-by-frame MP4 (or PNG sequence) writer and a frame
 * reader for anything FFmpeg opens.
 *
 *   local w = fada.video.writer('out.mp4', {fps = 25, width = 128, height = 128,
 *                                           audio = samples, sample_rate = 16000, crf = 18})
 *   for i = 1, n do w:write(frame) end     -- u8 [H, W, 3] or float [3, H, W] in [0, 1]
 *   w:close()                              -- renames the finished file into place
 *   local w = fada.video.writer('dir/frame_%05d.png', {fps = 25, width = 64, height = 64})
 *
 *   local r = fada.video.reader('in.mp4', {dtype = 'f32', width = 256, height = 256})
 *   for frame, t in r:frames() do ... end   -- or r:next(), r:read_all()
 *   local samples, sr = r:audio({sample_rate = 16000})
 */
#include <stdlib.h>
#include <string.h>

#include "runtime/io/fd_audio.h"
#include "runtime/io/fd_image.h"
#include "runtime/io/fd_video.h"
#include "runtime/lua/fd_lua_io.h"

#define WRITER_MT "fada.video.Writer"
#define READER_MT "fada.video.Reader"

/* ---- writer -------------------------------------------------------------- */

typedef struct lwriter {
    fd_vwriter *w; /* NULL once closed or dropped */
    int range;
} lwriter;

static lwriter *check_writer(lua_State *L)
{
    lwriter *lw = luaL_checkudata(L, 1, WRITER_MT);
    if (!lw->w) luaL_error(L, "video.writer: the writer is closed");
    return lw;
}

static int l_writer(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    const char *fmt = fd_lua_opt_str(L, 2, "format", NULL);
    size_t n = strlen(path);
    fd_vwriter_opts o = {
        .fps = fd_lua_opt_num(L, 2, "fps", 25),
        .width = (int)fd_lua_opt_int(L, 2, "width", 0),
        .height = (int)fd_lua_opt_int(L, 2, "height", 0),
        .crf = (int)fd_lua_opt_int(L, 2, "crf", 18),
        .preset = fd_lua_opt_str(L, 2, "preset", "medium"),
        .pad = fd_lua_opt_bool(L, 2, "pad", 0),
        .sample_rate = (int)fd_lua_opt_int(L, 2, "sample_rate", 0),
        .audio_bitrate = (int)fd_lua_opt_int(L, 2, "audio_bitrate", 128000),
        .png_sequence = fmt ? !strcmp(fmt, "png") : n > 4 && !strcasecmp(path + n - 4, ".png"),
    };
    if (fmt && strcmp(fmt, "png") && strcmp(fmt, "mp4")) luaL_argerror(L, 2, "format must be 'mp4' or 'png'");
    lua_getfield(L, 2, "audio");
    if (!lua_isnil(L, -1)) o.audio = fd_lua_checktensor(L, -1);
    lua_pop(L, 1);
    int range = fd_lua_opt_range(L, 2);
    lwriter *lw = lua_newuserdatauv(L, sizeof *lw, 0);
    lw->w = NULL;
    lw->range = range;
    luaL_setmetatable(L, WRITER_MT);
    if (fd_vwriter_open(&lw->w, path, &o)) return fd_lua_error(L);
    return 1;
}

static int w_write(lua_State *L)
{
    lwriter *lw = check_writer(L);
    fd_tensor *frame = fd_lua_checktensor(L, 2);
    if (fd_vwriter_write(lw->w, frame, lw->range)) {
        /* a failed writer leaves nothing behind */
        fd_vwriter_abort(lw->w);
        lw->w = NULL;
        return fd_lua_error(L);
    }
    lua_settop(L, 1);
    return 1;
}

static int w_close(lua_State *L)
{
    lwriter *lw = luaL_checkudata(L, 1, WRITER_MT);
    if (!lw->w) return 0; /* idempotent */
    fd_vwriter *w = lw->w;
    lw->w = NULL;
    if (fd_vwriter_close(w)) return fd_lua_error(L);
    return 0;
}

/* __gc, and __close on an error exit: drop the unfinished file. A
 * to-be-closed writer leaving its scope normally is closed properly. */
static int w_gc(lua_State *L)
{
    lwriter *lw = luaL_checkudata(L, 1, WRITER_MT);
    if (lw->w) fd_vwriter_abort(lw->w);
    lw->w = NULL;
    return 0;
}

static int w_tbc(lua_State *L)
{
    if (!lua_isnoneornil(L, 2)) return w_gc(L);
    return w_close(L);
}

static int w_frames(lua_State *L)
{
    lwriter *lw = check_writer(L);
    lua_pushinteger(L, fd_vwriter_frames(lw->w));
    return 1;
}

/* ---- reader -------------------------------------------------------------- */

typedef struct lreader {
    fd_vreader *r;
    fd_dtype dtype;
    int range;
    int ended;
} lreader;

static lreader *check_reader(lua_State *L)
{
    lreader *lr = luaL_checkudata(L, 1, READER_MT);
    if (!lr->r) luaL_error(L, "video.reader: the reader is closed");
    return lr;
}

static int l_reader(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    fd_dtype dt = FD_U8;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "dtype");
        dt = fd_lua_optdtype(L, -1, FD_U8);
        lua_pop(L, 1);
    }
    const char *resize = fd_lua_opt_str(L, 2, "resize", "bilinear");
    if (strcmp(resize, "bilinear") && strcmp(resize, "area")) luaL_argerror(L, 2, "resize must be 'bilinear' or 'area'");
    fd_vreader_opts o = {
        .width = (int)fd_lua_opt_int(L, 2, "width", 0),
        .height = (int)fd_lua_opt_int(L, 2, "height", 0),
        .channels = (int)fd_lua_opt_int(L, 2, "channels", 3),
        .area = !strcmp(resize, "area"),
        .max_pixels = fd_lua_opt_int(L, 2, "max_pixels", 0),
    };
    int range = fd_lua_opt_range(L, 2);
    lreader *lr = lua_newuserdatauv(L, sizeof *lr, 1);
    memset(lr, 0, sizeof *lr);
    lr->dtype = dt;
    lr->range = range;
    luaL_setmetatable(L, READER_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* the path, for :audio() */
    if (fd_vreader_open(&lr->r, path, &o)) return fd_lua_error(L);
    return 1;
}

/* Pushes the next frame (converted to the reader's dtype) and its time, or
 * nothing at the end. */
static int push_next(lua_State *L, lreader *lr)
{
    if (lr->ended) return 0;
    fd_tensor *u8 = fd_lua_newtensor(L);
    double pts;
    int got = fd_vreader_next(lr->r, u8, &pts);
    if (got < 0) return fd_lua_error(L);
    if (got == 0) {
        lr->ended = 1;
        lua_pop(L, 1);
        return 0;
    }
    if (lr->dtype != FD_U8) {
        fd_image view = {.width = (int)u8->shape[1], .height = (int)u8->shape[0], .channels = (int)u8->shape[2],
                         .bits = 8, .data = fd_tensor_data(u8)};
        fd_tensor *f = fd_lua_newtensor(L);
        if (fd_image_to_tensor(f, &view, lr->dtype, lr->range, 0)) return fd_lua_error(L);
        lua_remove(L, -2);
    }
    lua_pushnumber(L, pts);
    return 2;
}

static int r_next(lua_State *L)
{
    lreader *lr = check_reader(L);
    int n = push_next(L, lr);
    if (n == 0) lua_pushnil(L);
    return n ? n : 1;
}

static int r_iter(lua_State *L) { return r_next(L); }

/* for frame, t in r:frames() do ... end */
static int r_frames(lua_State *L)
{
    check_reader(L);
    lua_pushcfunction(L, r_iter);
    lua_pushvalue(L, 1);
    return 2;
}

/* read_all() -> frames [N, H, W, C] (u8) or [N, C, H, W] (float), {t1, t2, ...} */
static int r_read_all(lua_State *L)
{
    lreader *lr = check_reader(L);
    lua_settop(L, 1);
    lua_newtable(L); /* 2: frames */
    lua_newtable(L); /* 3: times */
    int n = 0;
    while (push_next(L, lr) == 2) {
        n++;
        lua_rawseti(L, 3, n);
        lua_rawseti(L, 2, n);
    }
    if (n == 0) {
        lua_getiuservalue(L, 1, 1);
        return luaL_error(L, "video.reader: '%s': no frames left to read", lua_tostring(L, -1));
    }
    lua_rawgeti(L, 2, 1);
    fd_tensor *first = fd_lua_checktensor(L, -1);
    int64_t shape[FD_MAX_DIMS + 1] = {n};
    memcpy(shape + 1, first->shape, sizeof(int64_t) * (size_t)first->ndim);
    fd_tensor *all = fd_lua_newtensor(L);
    if (fd_tensor_empty(all, first->dtype, first->ndim + 1, shape)) return fd_lua_error(L);
    size_t bytes = (size_t)fd_tensor_numel(first) * fd_dtype_size(first->dtype);
    for (int i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        fd_tensor *f = fd_lua_checktensor(L, -1);
        if (fd_tensor_numel(f) * (int64_t)fd_dtype_size(f->dtype) != (int64_t)bytes)
            return luaL_error(L, "video.reader: frame %d is %s, frame 1 was %s (the stream changed size; pass width "
                                 "and height)", i, FD_SHAPE_STR(f), FD_SHAPE_STR(first));
        memcpy((char *)fd_tensor_data(all) + bytes * (size_t)(i - 1), fd_tensor_data(f), bytes);
        lua_pop(L, 1);
    }
    lua_pushvalue(L, 3);
    return 2;
}

static int r_info(lua_State *L)
{
    lreader *lr = check_reader(L);
    fd_vreader_info in;
    fd_vreader_get_info(lr->r, &in);
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, in.width), lua_setfield(L, -2, "width");
    lua_pushinteger(L, in.height), lua_setfield(L, -2, "height");
    lua_pushinteger(L, in.channels), lua_setfield(L, -2, "channels");
    lua_pushinteger(L, in.src_width), lua_setfield(L, -2, "source_width");
    lua_pushinteger(L, in.src_height), lua_setfield(L, -2, "source_height");
    lua_pushnumber(L, in.fps), lua_setfield(L, -2, "fps");
    lua_pushnumber(L, in.duration), lua_setfield(L, -2, "duration");
    lua_pushboolean(L, in.has_audio), lua_setfield(L, -2, "has_audio");
    lua_pushstring(L, in.codec), lua_setfield(L, -2, "codec");
    return 1;
}

/* audio([{sample_rate = n}]) -> mono f32 [N], sample rate */
static int r_audio(lua_State *L)
{
    luaL_checkudata(L, 1, READER_MT);
    lua_getiuservalue(L, 1, 1);
    const char *path = lua_tostring(L, -1);
    int rate = (int)fd_lua_opt_int(L, 2, "sample_rate", 0), file_rate = 0;
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_audio_load(out, path, rate, &file_rate, NULL)) return fd_lua_error(L);
    lua_pushinteger(L, rate ? rate : file_rate);
    return 2;
}

static int r_close(lua_State *L)
{
    lreader *lr = luaL_checkudata(L, 1, READER_MT);
    fd_vreader_close(lr->r);
    lr->r = NULL;
    return 0;
}

void fd_open_video(lua_State *L, const fd_lua_tables *t)
{
    static const luaL_Reg wmethods[] = {{"write", w_write}, {"close", w_close}, {"frames", w_frames}, {NULL, NULL}};
    static const luaL_Reg rmethods[] = {{"next", r_next},   {"frames", r_frames}, {"read_all", r_read_all},
                                        {"info", r_info},   {"audio", r_audio},   {"close", r_close},
                                        {NULL, NULL}};
    luaL_newmetatable(L, WRITER_MT);
    lua_newtable(L);
    fd_lua_setfuncs(L, -1, wmethods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, w_gc), lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, w_tbc), lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    luaL_newmetatable(L, READER_MT);
    lua_newtable(L);
    fd_lua_setfuncs(L, -1, rmethods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, r_close), lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, r_close), lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    static const luaL_Reg fns[] = {{"writer", l_writer}, {"reader", l_reader}, {NULL, NULL}};
    lua_newtable(L);
    fd_lua_setfuncs(L, -1, fns);
    lua_setfield(L, t->fada, "video");
}
