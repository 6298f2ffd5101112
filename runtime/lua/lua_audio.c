/* fada.audio: load any audio to mono f32, write WAV, spectrogram and log-mel.
 *
 *   local x, sr = fada.audio.load('speech.mp3', {sample_rate = 16000})  -- f32 [N]
 *   fada.audio.save('out.wav', x, sr, {bits = 16})                    -- x [N] or [C, N]
 *   local m = fada.audio.log_mel(x, {sample_rate = sr, n_fft = 400, hop = 160, n_mels = 80})
 *                                                                    -- f32 [n_mels, frames]
 * Mel convention: torchaudio's MelSpectrogram (htk scale and no filter norm
 * by default; mel_scale = 'slaney', norm = 'slaney' for librosa's), then
 * log(max(mel, floor)). */
#include "runtime/io/fd_audio.h"
#include "runtime/io/fd_mel.h"
#include "runtime/lua/fd_lua_io.h"

static int l_load(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int rate = (int)fd_lua_opt_int(L, 2, "sample_rate", 0);
    int file_rate = 0;
    const char *used = NULL;
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_audio_load(out, path, rate, &file_rate, &used)) return fd_lua_error(L);
    lua_pushinteger(L, rate ? rate : file_rate);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, file_rate);
    lua_setfield(L, -2, "file_sample_rate");
    lua_pushstring(L, used);
    lua_setfield(L, -2, "decoder");
    return 3;
}

/* save(path, samples [N] or [C, N], sample_rate, [{bits = 16}]) */
static int l_save(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    fd_tensor *x = fd_lua_checktensor(L, 2);
    int rate = (int)luaL_checkinteger(L, 3);
    int bits = (int)fd_lua_opt_int(L, 4, "bits", 16);
    if (fd_audio_save_wav(path, x, rate, bits)) return fd_lua_error(L);
    return 0;
}

static fd_mel_opts check_mel_opts(lua_State *L, int arg)
{
    if (!lua_isnoneornil(L, arg)) luaL_checktype(L, arg, LUA_TTABLE);
    fd_mel_opts o = {
        .sample_rate = (int)fd_lua_opt_int(L, arg, "sample_rate", 0),
        .n_fft = (int)fd_lua_opt_int(L, arg, "n_fft", 400),
        .hop = (int)fd_lua_opt_int(L, arg, "hop", 0),
        .win_length = (int)fd_lua_opt_int(L, arg, "win_length", 0),
        .window = fd_lua_opt_str(L, arg, "window", "hann"),
        .center = fd_lua_opt_bool(L, arg, "center", 1),
        .power = fd_lua_opt_num(L, arg, "power", 2.0),
        .n_mels = (int)fd_lua_opt_int(L, arg, "n_mels", 80),
        .fmin = fd_lua_opt_num(L, arg, "fmin", 0.0),
        .fmax = fd_lua_opt_num(L, arg, "fmax", 0.0),
        .mel_scale = fd_lua_opt_str(L, arg, "mel_scale", "htk"),
        .norm = fd_lua_opt_str(L, arg, "norm", "none"),
        .log = fd_lua_opt_str(L, arg, "log", "ln"),
        .floor = fd_lua_opt_num(L, arg, "floor", 1e-10),
    };
    fd_mel_defaults(&o);
    return o;
}

static int l_spectrogram(lua_State *L)
{
    fd_tensor *x = fd_lua_checktensor(L, 1);
    fd_mel_opts o = check_mel_opts(L, 2);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_spectrogram(out, x, &o)) return fd_lua_error(L);
    return 1;
}

static int l_mel_filters(lua_State *L)
{
    fd_mel_opts o = check_mel_opts(L, 1);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_mel_filters(out, &o)) return fd_lua_error(L);
    return 1;
}

static int l_log_mel(lua_State *L)
{
    fd_tensor *x = fd_lua_checktensor(L, 1);
    fd_mel_opts o = check_mel_opts(L, 2);
    fd_tensor *out = fd_lua_newtensor(L);
    if (fd_log_mel(out, x, &o)) return fd_lua_error(L);
    return 1;
}

void fd_open_audio(lua_State *L, const fd_lua_tables *t)
{
    static const luaL_Reg fns[] = {{"load", l_load},
                                   {"save", l_save},
                                   {"spectrogram", l_spectrogram},
                                   {"mel_filters", l_mel_filters},
                                   {"log_mel", l_log_mel},
                                   {NULL, NULL}};
    lua_newtable(L);
    fd_lua_setfuncs(L, -1, fns);
    lua_setfield(L, t->fada, "audio");
}
