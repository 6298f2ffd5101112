/* fada.decode_async: decodes a whole video (frames and audio) on a
 * background thread, so the data loader can decode the next batch's clips
 * while the current batch trains.
 *
 *   local job = fada.decode_async('clip.mp4', {width = 64, height = 64, sample_rate = 16000})
 *   job:ready()                          -- true once the thread has finished
 *   local frames, audio, fps = job:wait()  -- u8 [N, H, W, 3], f32 [n] (nil without an audio
 *                                          -- stream or without sample_rate), frames per second
 *
 * The job owns its results until wait() hands them over; __gc joins the
 * thread first, so a job dropped unwaited never leaves a thread behind.
 * Uses only the C core (fd_vreader, fd_audio_load), which is thread-safe:
 * the storage pool locks, error messages are thread-local. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/fd_audio.h"
#include "runtime/io/fd_video.h"
#include "runtime/lua/fd_lua.h"

#define JOB_MT "fada.DecodeJob"

typedef struct job {
    pthread_t thread;
    int started, joined;
    atomic_int done;
    char *path;
    fd_vreader_opts opts;
    int sample_rate;
    /* results, filled by the thread */
    fd_tensor frames; /* u8 [N, H, W, C] */
    fd_tensor audio;  /* f32 [n] or released */
    double fps;
    int failed;
    char error[512];
} job;

static int decode_frames(job *j)
{
    fd_vreader *r = NULL;
    if (fd_vreader_open(&r, j->path, &j->opts)) return FD_ERR;
    fd_vreader_info info;
    fd_vreader_get_info(r, &info);
    j->fps = info.fps;
    int has_audio = info.has_audio;
    /* frames into a growing array of headers, then one contiguous tensor */
    size_t cap = 64, n = 0;
    fd_tensor *list = calloc(cap, sizeof *list);
    int rc = list ? FD_OK : fd_fail("decode_async: out of memory");
    while (rc == FD_OK) {
        if (n == cap) {
            fd_tensor *grown = realloc(list, 2 * cap * sizeof *list);
            if (!grown) { rc = fd_fail("decode_async: out of memory"); break; }
            memset(grown + cap, 0, cap * sizeof *grown);
            list = grown, cap *= 2;
        }
        double pts;
        int got = fd_vreader_next(r, &list[n], &pts);
        if (got < 0) rc = FD_ERR;
        else if (got == 0) break;
        else n++;
    }
    fd_vreader_close(r);
    if (rc == FD_OK && n == 0) rc = fd_fail("decode_async: '%s' has no frames", j->path);
    if (rc == FD_OK) {
        int64_t shape[FD_MAX_DIMS] = {(int64_t)n};
        memcpy(shape + 1, list[0].shape, sizeof(int64_t) * (size_t)list[0].ndim);
        rc = fd_tensor_empty(&j->frames, FD_U8, list[0].ndim + 1, shape);
        size_t bytes = (size_t)fd_tensor_numel(&list[0]);
        for (size_t i = 0; rc == FD_OK && i < n; i++) {
            if ((size_t)fd_tensor_numel(&list[i]) != bytes) {
                rc = fd_fail("decode_async: '%s': frame %zu is %s, frame 1 was %s (the stream changed size; pass "
                             "width and height)", j->path, i + 1, FD_SHAPE_STR(&list[i]), FD_SHAPE_STR(&list[0]));
                fd_tensor_release(&j->frames);
                break;
            }
            memcpy((uint8_t *)fd_tensor_data(&j->frames) + i * bytes, fd_tensor_data(&list[i]), bytes);
        }
    }
    for (size_t i = 0; list && i < cap; i++) fd_tensor_release(&list[i]); /* unused entries are zero */
    free(list);
    if (rc == FD_OK && has_audio && j->sample_rate > 0) {
        int file_rate = 0;
        rc = fd_audio_load(&j->audio, j->path, j->sample_rate, &file_rate, NULL);
        if (rc) fd_tensor_release(&j->frames);
    }
    return rc;
}

static void *run(void *arg)
{
    job *j = arg;
    if (decode_frames(j)) {
        j->failed = 1;
        snprintf(j->error, sizeof j->error, "%s", fd_error_message());
    }
    atomic_store(&j->done, 1);
    return NULL;
}

static job *check_job(lua_State *L)
{
    return luaL_checkudata(L, 1, JOB_MT);
}

static void join(job *j)
{
    if (j->started && !j->joined) {
        pthread_join(j->thread, NULL);
        j->joined = 1;
    }
}

static int l_decode_async(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
    int w = 0, h = 0, sr = 0;
    if (lua_istable(L, 2)) {
        lua_getfield(L, 2, "width"), w = (int)luaL_optinteger(L, -1, 0), lua_pop(L, 1);
        lua_getfield(L, 2, "height"), h = (int)luaL_optinteger(L, -1, 0), lua_pop(L, 1);
        lua_getfield(L, 2, "sample_rate"), sr = (int)luaL_optinteger(L, -1, 0), lua_pop(L, 1);
    }
    if ((w > 0) != (h > 0) || w < 0 || h < 0 || sr < 0)
        return luaL_argerror(L, 2, lua_pushfstring(L, "width %d, height %d: give both or neither (and sample_rate "
                                                      ">= 0, got %d)", w, h, sr));
    job *j = lua_newuserdatauv(L, sizeof *j, 0);
    memset(j, 0, sizeof *j);
    luaL_setmetatable(L, JOB_MT);
    j->path = strdup(path);
    if (!j->path) return luaL_error(L, "decode_async: out of memory");
    j->opts = (fd_vreader_opts){.width = w, .height = h, .channels = 3, .area = 1};
    j->sample_rate = sr;
    if (pthread_create(&j->thread, NULL, run, j)) return luaL_error(L, "decode_async: cannot start a thread");
    j->started = 1;
    return 1;
}

static int j_ready(lua_State *L)
{
    job *j = check_job(L);
    lua_pushboolean(L, atomic_load(&j->done));
    return 1;
}

/* wait() -> frames, audio | nil, fps; raises the thread's error. */
static int j_wait(lua_State *L)
{
    job *j = check_job(L);
    if (!j->started) return luaL_error(L, "decode_async: the job was already waited for");
    join(j);
    j->started = 0; /* results handed over once */
    if (j->failed) return luaL_error(L, "%s", j->error);
    fd_tensor *f = fd_lua_newtensor(L);
    *f = j->frames; /* the userdata takes the reference */
    memset(&j->frames, 0, sizeof j->frames);
    if (j->audio.storage) {
        fd_tensor *a = fd_lua_newtensor(L);
        *a = j->audio;
        memset(&j->audio, 0, sizeof j->audio);
    } else {
        lua_pushnil(L);
    }
    lua_pushnumber(L, j->fps);
    return 3;
}

static int j_gc(lua_State *L)
{
    job *j = luaL_checkudata(L, 1, JOB_MT);
    join(j);
    fd_tensor_release(&j->frames);
    fd_tensor_release(&j->audio);
    free(j->path);
    j->path = NULL;
    return 0;
}

void fd_open_decode_async(lua_State *L, const fd_lua_tables *t)
{
    static const luaL_Reg methods[] = {{"ready", j_ready}, {"wait", j_wait}, {NULL, NULL}};
    luaL_newmetatable(L, JOB_MT);
    lua_newtable(L);
    fd_lua_setfuncs(L, -1, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, j_gc), lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_decode_async);
    lua_setfield(L, t->fada, "decode_async");
}
