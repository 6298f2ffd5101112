/* Audio decoding (libsndfile, else FFmpeg) to mono f32, and WAV writing. */
#include <errno.h>
#include <math.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/fd_audio.h"
#include "runtime/io/fd_io.h"

/* ---- mono f32 accumulation: downmix by mean, then resample ------------ */

typedef struct mono_sink {
    float *data;
    size_t n, cap;
    int in_rate, out_rate;
    SwrContext *swr; /* NULL when the rates match */
    float *mix;      /* scratch: one chunk downmixed */
    size_t mix_cap;
} mono_sink;

static int sink_reserve(mono_sink *s, size_t more)
{
    if (s->n + more <= s->cap) return FD_OK;
    size_t cap = s->cap ? s->cap : 1 << 16;
    while (cap < s->n + more) cap *= 2;
    float *p = realloc(s->data, cap * sizeof *p);
    if (!p) return fd_fail("audio: out of memory holding %zu samples", s->n + more);
    s->data = p;
    s->cap = cap;
    return FD_OK;
}

static int sink_init(mono_sink *s, int in_rate, int out_rate)
{
    memset(s, 0, sizeof *s);
    s->in_rate = in_rate;
    s->out_rate = out_rate ? out_rate : in_rate;
    if (s->out_rate == in_rate) return FD_OK;
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    if (swr_alloc_set_opts2(&s->swr, &mono, AV_SAMPLE_FMT_FLT, s->out_rate, &mono, AV_SAMPLE_FMT_FLT, in_rate, 0, NULL) <
            0 ||
        swr_init(s->swr) < 0) {
        swr_free(&s->swr);
        return fd_fail("audio: cannot resample %d Hz to %d Hz", in_rate, s->out_rate);
    }
    return FD_OK;
}

static void sink_free(mono_sink *s)
{
    swr_free(&s->swr);
    free(s->data);
    free(s->mix);
    memset(s, 0, sizeof *s);
}

/* Pushes n mono samples (NULL, 0 flushes the resampler). */
static int sink_push_mono(mono_sink *s, const float *x, int n)
{
    if (!s->swr) {
        if (sink_reserve(s, (size_t)n)) return FD_ERR;
        memcpy(s->data + s->n, x, sizeof *x * (size_t)n);
        s->n += (size_t)n;
        return FD_OK;
    }
    int room = swr_get_out_samples(s->swr, n) + 16;
    for (;;) {
        if (sink_reserve(s, (size_t)room)) return FD_ERR;
        uint8_t *out = (uint8_t *)(s->data + s->n);
        const uint8_t *in = (const uint8_t *)x;
        int got = swr_convert(s->swr, &out, room, x ? &in : NULL, n);
        if (got < 0) return fd_fail("audio: resampling failed: %s", fd_av_err(got));
        s->n += (size_t)got;
        if (x || got == 0) return FD_OK;
    }
}

/* Pushes n interleaved frames of nch channels, averaged to mono. */
static int sink_push(mono_sink *s, const float *x, int n, int nch)
{
    if (nch == 1) return sink_push_mono(s, x, n);
    if ((size_t)n > s->mix_cap) {
        float *p = realloc(s->mix, sizeof *p * (size_t)n);
        if (!p) return fd_fail("audio: out of memory");
        s->mix = p;
        s->mix_cap = (size_t)n;
    }
    for (int i = 0; i < n; i++) {
        float acc = 0;
        for (int c = 0; c < nch; c++) acc += x[(size_t)i * nch + c];
        s->mix[i] = acc / (float)nch;
    }
    return sink_push_mono(s, s->mix, n);
}

/* The decoded sound as f32 [n]. Refuses what no recording holds: no samples at
 * all (a header without data) and non-finite ones (NaN or Inf would go on into
 * the features and the output's sound track). */
static int sink_finish(mono_sink *s, fd_tensor *out, const char *what)
{
    if (s->swr && sink_push_mono(s, NULL, 0)) return FD_ERR;
    if (s->n == 0)
        return fd_fail("audio: '%s': the file holds no samples (a header without sound data); give a recording with "
                       "sound", what);
    for (size_t i = 0; i < s->n; i++)
        if (!isfinite(s->data[i]))
            return fd_fail("audio: '%s': sample %zu (at %.3f s) is %s: the file is corrupt or not a recording", what, i,
                           (double)i / s->out_rate, isnan(s->data[i]) ? "NaN" : "infinite");
    if (fd_tensor_empty(out, FD_F32, 1, (int64_t[]){(int64_t)s->n})) return FD_ERR;
    if (s->n) memcpy(fd_tensor_data(out), s->data, s->n * sizeof(float));
    return FD_OK;
}

/* ---- libsndfile -------------------------------------------------------- */

static int check_format(const char *what, int channels, int rate, int sample_rate)
{
    if (channels < 1 || channels > FD_AUDIO_MAX_CHANNELS)
        return fd_fail("audio: '%s': %d channels (1..%d supported)", what, channels, FD_AUDIO_MAX_CHANNELS);
    if (rate < 1 || rate > FD_AUDIO_MAX_RATE)
        return fd_fail("audio: '%s': sample rate %d Hz out of range (1..%d)", what, rate, FD_AUDIO_MAX_RATE);
    if (sample_rate < 0 || sample_rate > FD_AUDIO_MAX_RATE)
        return fd_fail("audio: requested sample rate %d Hz out of range (0 = the file's, else 1..%d)", sample_rate,
                       FD_AUDIO_MAX_RATE);
    return FD_OK;
}

/* libsndfile's reason for refusing a file that exists, in words that say what
 * was wrong with it: two of its texts mislead. Its MPEG reader reports
 * SFE_BAD_FILE, "File does not exist or is not a regular file", when mpg123
 * cannot open the stream; SFE_SF_INFO_INCOMPLETE calls a header without a
 * sample rate, channels or format an "Internal error". */
static const char *sndfile_reason(const char *text)
{
    static _Thread_local char buf[256];
    if (!strncmp(text, "File does not exist or is not a regular file", 44))
        return "it looks like MPEG audio, but the MP3 decoder (mpg123) cannot open it: truncated, or not MP3";
    if (strstr(text, "SF_INFO struct incomplete"))
        return "the header declares no usable sample rate, channel count or format";
    snprintf(buf, sizeof buf, "%s", text);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '.' || buf[n - 1] == ' ' || buf[n - 1] == '\n')) buf[--n] = 0;
    return buf;
}

static int decode_sndfile(SNDFILE *sf, const SF_INFO *info, const char *what, fd_tensor *out, int sample_rate)
{
    enum { CHUNK = 8192 };
    mono_sink s;
    if (check_format(what, info->channels, info->samplerate, sample_rate)) return FD_ERR;
    if (sink_init(&s, info->samplerate, sample_rate)) return FD_ERR;
    float *buf = malloc(sizeof *buf * CHUNK * (size_t)info->channels);
    int r = buf ? FD_OK : fd_fail("audio: out of memory");
    /* Reads until the data ends, whatever the header claims: a truncated
     * file yields what it holds, and a forged frame count costs nothing. */
    sf_count_t got;
    while (r == FD_OK && (got = sf_readf_float(sf, buf, CHUNK)) > 0) r = sink_push(&s, buf, (int)got, info->channels);
    if (r == FD_OK && sf_error(sf) != SF_ERR_NO_ERROR)
        r = fd_fail("audio: '%s': corrupt data: %s", what, sf_strerror(sf));
    if (r == FD_OK) r = sink_finish(&s, out, what);
    free(buf);
    sink_free(&s);
    return r;
}

typedef struct mem_file {
    const uint8_t *buf;
    sf_count_t n, pos;
} mem_file;

static sf_count_t mem_len(void *u) { return ((mem_file *)u)->n; }
static sf_count_t mem_seek(sf_count_t off, int whence, void *u)
{
    mem_file *m = u;
    sf_count_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? m->pos : m->n;
    sf_count_t p = base + off;
    if (p < 0 || p > m->n) return -1;
    return m->pos = p;
}
static sf_count_t mem_read(void *dst, sf_count_t count, void *u)
{
    mem_file *m = u;
    if (count > m->n - m->pos) count = m->n - m->pos;
    if (count <= 0) return 0;
    memcpy(dst, m->buf + m->pos, (size_t)count);
    m->pos += count;
    return count;
}
static sf_count_t mem_write(const void *p, sf_count_t c, void *u) { (void)p, (void)c, (void)u; return 0; }
static sf_count_t mem_tell(void *u) { return ((mem_file *)u)->pos; }

int fd_audio_decode_memory(fd_tensor *out, const char *what, const uint8_t *buf, size_t n, int sample_rate,
                           int *file_rate)
{
    fd_tensor_release(out);
    SF_VIRTUAL_IO io = {mem_len, mem_seek, mem_read, mem_write, mem_tell};
    mem_file m = {buf, (sf_count_t)n, 0};
    SF_INFO info = {0};
    SNDFILE *sf = sf_open_virtual(&io, SFM_READ, &info, &m);
    if (!sf) return fd_fail("audio: '%s': %s", what, sndfile_reason(sf_strerror(NULL)));
    int r = decode_sndfile(sf, &info, what, out, sample_rate);
    if (file_rate) *file_rate = info.samplerate;
    sf_close(sf);
    return r;
}

/* ---- FFmpeg ------------------------------------------------------------ */

/* Converts any decoded frame to interleaved float of its own layout and rate;
 * the sink then averages and resamples, as for libsndfile. */
static int decode_ffmpeg(const char *path, fd_tensor *out, int sample_rate, int *file_rate)
{
    AVFormatContext *fmt = NULL;
    AVCodecContext *dec = NULL;
    SwrContext *conv = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc();
    float *buf = NULL;
    int buf_cap = 0, r = FD_ERR, nch = 0, rate = 0, bad = 0, frames = 0;
    mono_sink s = {0};
    fd_av_quiet();
    fd_av_watchdog watchdog;
    int e = pkt && frame ? fd_av_open_input(&fmt, path, &watchdog) : AVERROR(ENOMEM);
    if (e < 0) { fd_fail("%s", fd_av_input_err(e)); goto done; }
    if ((e = avformat_find_stream_info(fmt, NULL)) < 0) { fd_fail("%s", fd_av_input_err(e)); goto done; }
    const AVCodec *codec = NULL;
    int stream = av_find_best_stream(fmt, AVMEDIA_TYPE_AUDIO, -1, -1, &codec, 0);
    if (stream < 0 || !codec) { fd_fail("no decodable audio stream"); goto done; }
    /* what the stream declares, not only what its frames say: FFmpeg takes a FLAC's
     * rate from its frame headers, the reference decoder refuses STREAMINFO's 0 Hz */
    const AVCodecParameters *par = fmt->streams[stream]->codecpar;
    int declared = par->sample_rate;
    if (par->codec_id == AV_CODEC_ID_FLAC && par->extradata_size >= 34)
        declared = par->extradata[10] << 12 | par->extradata[11] << 4 | par->extradata[12] >> 4;
    if (declared <= 0) {
        fd_fail("audio: '%s': the stream declares a sample rate of %d Hz (%s header)", path, declared,
                par->codec_id == AV_CODEC_ID_FLAC ? "FLAC STREAMINFO" : "codec");
        goto done;
    }
    dec = avcodec_alloc_context3(codec);
    if (!dec || avcodec_parameters_to_context(dec, fmt->streams[stream]->codecpar) < 0) {
        fd_fail("cannot set up the %s decoder", codec->name);
        goto done;
    }
    if ((e = avcodec_open2(dec, codec, NULL)) < 0) {
        fd_fail("cannot open the %s decoder: %s", codec->name, fd_av_input_err(e));
        goto done;
    }
    fd_av_clear_reason(); /* from here on, what FFmpeg logs is about this stream's packets */
    int eof = 0;
    while (!eof || e != AVERROR_EOF) {
        e = avcodec_receive_frame(dec, frame);
        if (e == AVERROR(EAGAIN)) {
            if (eof) break;
            int re = av_read_frame(fmt, pkt);
            if (re < 0) {
                avcodec_send_packet(dec, NULL);
                eof = 1;
            } else {
                if (pkt->stream_index == stream && avcodec_send_packet(dec, pkt) < 0) bad++;
                av_packet_unref(pkt);
            }
            continue;
        }
        if (e == AVERROR_EOF) break;
        if (e < 0) { fd_fail("decoding failed: %s", fd_av_input_err(e)); goto done; }
        int fch = frame->ch_layout.nb_channels;
        if (!conv) {
            nch = fch, rate = frame->sample_rate;
            if (check_format(path, nch, rate, sample_rate) || sink_init(&s, rate, sample_rate)) goto done;
            AVChannelLayout layout = {0}; /* av_channel_layout_copy uninits its destination first */
            if (frame->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) av_channel_layout_default(&layout, nch);
            else av_channel_layout_copy(&layout, &frame->ch_layout);
            e = swr_alloc_set_opts2(&conv, &layout, AV_SAMPLE_FMT_FLT, rate, &layout, frame->format, rate, 0, NULL);
            av_channel_layout_uninit(&layout);
            if (e < 0 || swr_init(conv) < 0) { fd_fail("cannot convert its sample format"); goto done; }
        } else if (fch != nch || frame->sample_rate != rate) {
            fd_fail("the stream changes from %d channels at %d Hz to %d at %d Hz", nch, rate, fch, frame->sample_rate);
            goto done;
        }
        if (frame->nb_samples > buf_cap) {
            float *p = realloc(buf, sizeof *p * (size_t)frame->nb_samples * (size_t)nch);
            if (!p) { fd_fail("out of memory"); goto done; }
            buf = p, buf_cap = frame->nb_samples;
        }
        uint8_t *dst = (uint8_t *)buf;
        int got = swr_convert(conv, &dst, buf_cap, (const uint8_t **)frame->extended_data, frame->nb_samples);
        av_frame_unref(frame);
        if (got < 0) { fd_fail("sample conversion failed: %s", fd_av_err(got)); goto done; }
        if (sink_push(&s, buf, got, nch)) goto done;
        frames++;
        fd_av_progress(&watchdog);
    }
    if (!conv) {
        const char *why = fd_av_logged();
        if (bad) fd_fail("corrupt stream: no audio decoded (%d bad packet%s%s%s)", bad, bad == 1 ? "" : "s",
                         *why ? ": " : "", why);
        else fd_fail("the audio stream is empty%s%s", *why ? ": " : "", why);
        goto done;
    }
    /* AAC and friends pad the last frame; MP4's edit list gives the true
     * length. Trim that padding (never pad, and only by a little, since
     * some containers merely estimate durations). */
    AVStream *st = fmt->streams[stream];
    if (st->duration > 0 && st->duration != AV_NOPTS_VALUE) {
        if (s.swr && sink_push_mono(&s, NULL, 0)) goto done; /* flush before measuring */
        swr_free(&s.swr);
        size_t want = (size_t)(st->duration * av_q2d(st->time_base) * s.out_rate + 0.5);
        if (want < s.n && s.n - want <= (size_t)s.out_rate / 10) s.n = want;
    }
    if (sink_finish(&s, out, path)) goto done;
    if (file_rate) *file_rate = rate;
    r = FD_OK;
done:
    sink_free(&s);
    free(buf);
    swr_free(&conv);
    avcodec_free_context(&dec);
    avformat_close_input(&fmt);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    return r;
}

int fd_audio_load(fd_tensor *out, const char *path, int sample_rate, int *file_rate, const char **used)
{
    fd_tensor_release(out);
    if (fd_io_check_input("audio", path, NULL)) return FD_ERR;
    if (sample_rate < 0 || sample_rate > FD_AUDIO_MAX_RATE)
        return fd_fail("audio: '%s': requested sample rate %d Hz out of range (0 = the file's, else 1..%d)", path,
                       sample_rate, FD_AUDIO_MAX_RATE);
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    char sf_reason[256];
    if (sf) {
        int r = decode_sndfile(sf, &info, path, out, sample_rate);
        sf_close(sf);
        if (file_rate) *file_rate = info.samplerate;
        if (used) *used = "libsndfile";
        return r; /* libsndfile knew the format: its verdict stands */
    }
    snprintf(sf_reason, sizeof sf_reason, "%s", sndfile_reason(sf_strerror(NULL)));
    if (decode_ffmpeg(path, out, sample_rate, file_rate) == FD_OK) {
        if (used) *used = "ffmpeg";
        return FD_OK;
    }
    char av_reason[512];
    snprintf(av_reason, sizeof av_reason, "%s", fd_error_message());
    if (!strncmp(av_reason, "audio: ", 7)) return FD_ERR; /* already a full message */
    return fd_fail("audio: '%s': cannot decode: neither libsndfile nor FFmpeg reads sound from it (libsndfile: %s; "
                   "FFmpeg: %s); if it plays elsewhere, convert it: ffmpeg -i '%s' -ac 1 out.wav",
                   path, sf_reason, av_reason, path);
}

/* ---- WAV out ------------------------------------------------------------ */

int fd_audio_save_wav(const char *path, const fd_tensor *samples, int sample_rate, int bits)
{
    int sub = bits == 16 ? SF_FORMAT_PCM_16 : bits == 24 ? SF_FORMAT_PCM_24 : bits == 32 ? SF_FORMAT_FLOAT : 0;
    if (!sub) return fd_fail("audio.save: bits must be 16, 24 (PCM) or 32 (float), got %d", bits);
    if (sample_rate < 1 || sample_rate > FD_AUDIO_MAX_RATE)
        return fd_fail("audio.save: sample rate %d Hz out of range", sample_rate);
    if (!fd_dtype_is_float(samples->dtype) || (samples->ndim != 1 && samples->ndim != 2))
        return fd_fail("audio.save: samples must be float [N] or [C, N], got %s %s", fd_dtype_name(samples->dtype),
                       FD_SHAPE_STR(samples));
    int64_t nch = samples->ndim == 2 ? samples->shape[0] : 1, n = samples->shape[samples->ndim - 1];
    if (nch < 1 || nch > FD_AUDIO_MAX_CHANNELS)
        return fd_fail("audio.save: %lld channels in %s (1..%d)", (long long)nch, FD_SHAPE_STR(samples),
                       FD_AUDIO_MAX_CHANNELS);
    char tmp[4200];
    if (fd_io_temp_name("audio.save", path, tmp, sizeof tmp)) return FD_ERR;
    /* [C, N] -> interleaved [N, C] f32 */
    fd_tensor view = {0}, inter = {0};
    fd_tensor_view_of(&view, samples);
    if (samples->ndim == 1) fd_view_unsqueeze(&view, 0);
    fd_view_transpose(&view, 0, 1);
    int r = fd_tensor_empty(&inter, FD_F32, 2, (int64_t[]){n, nch});
    if (r == FD_OK) r = fd_tensor_copy_(&inter, &view);
    fd_tensor_release(&view);
    if (r) return FD_ERR;
    SF_INFO info = {.samplerate = sample_rate, .channels = (int)nch, .format = SF_FORMAT_WAV | sub};
    SNDFILE *sf = sf_open(tmp, SFM_WRITE, &info);
    if (!sf) {
        fd_tensor_release(&inter);
        return fd_fail("audio.save: '%s': %s", path, sf_strerror(NULL));
    }
    sf_count_t wrote;
    if (bits == 32) {
        wrote = sf_writef_float(sf, fd_tensor_data(&inter), n);
    } else {
        /* libsndfile reads PCM as v / 2^(bits-1) but writes floats as
         * x * (2^(bits-1) - 1): quantise here with the reader's scale, so
         * a save/load round trip is within half a step (and clips). */
        float *x = fd_tensor_data(&inter);
        int32_t *q = (int32_t *)x; /* in place: same size */
        double scale = bits == 16 ? 32768.0 : 8388608.0;
        for (int64_t i = 0, m = n * nch; i < m; i++) {
            double v = nearbyint((double)x[i] * scale);
            v = v != v ? 0 : v < -scale ? -scale : v > scale - 1 ? scale - 1 : v;
            q[i] = (int32_t)v * (int32_t)(bits == 16 ? 65536 : 256);
        }
        wrote = sf_writef_int(sf, q, n);
    }
    int err = sf_error(sf);
    int closed = sf_close(sf);
    fd_tensor_release(&inter);
    if (wrote != n || err || closed) {
        remove(tmp);
        return fd_fail("audio.save: '%s': write failed after %lld of %lld frames", path, (long long)wrote, (long long)n);
    }
    return fd_io_commit("audio.save", tmp, path);
}
