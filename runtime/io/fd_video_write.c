/* MP4 (H.264 via libx264 + AAC) written frame by frame, and PNG sequences.
 *
 * Memory stays flat in the video's length: each frame is converted and sent
 * to the encoder at once, and the audio (held by reference, never copied) is
 * encoded in step with the video, so the muxer's interleaving queue holds
 * only the encoder's lookahead. The file is written under a temporary name
 * and renamed by close(); an error or an abandoned writer removes it. */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/fd_image.h"
#include "runtime/io/fd_io.h"
#include "runtime/io/fd_video.h"

struct fd_vwriter {
    char *path, tmp[4200];
    int png_sequence;
    AVFormatContext *oc;
    AVCodecContext *venc, *aenc;
    AVStream *vst, *ast;
    struct SwsContext *sws;
    AVFrame *vframe, *aframe;
    AVPacket *pkt;
    int width, height, enc_w, enc_h;
    AVRational fps;
    int64_t frames;
    fd_tensor audio;            /* contiguous f32 [N] view, or released */
    int64_t audio_pos, audio_n; /* samples sent to the encoder / total */
    int sample_rate;
    uint8_t *rgb;               /* one padded RGB24 frame */
    int header_written;
};

static void writer_free(fd_vwriter *w, int remove_tmp)
{
    if (!w) return;
    if (w->oc) {
        if (w->oc->pb) avio_closep(&w->oc->pb);
        avformat_free_context(w->oc);
    }
    if (remove_tmp && w->tmp[0]) remove(w->tmp);
    avcodec_free_context(&w->venc);
    avcodec_free_context(&w->aenc);
    sws_freeContext(w->sws);
    av_frame_free(&w->vframe);
    av_frame_free(&w->aframe);
    av_packet_free(&w->pkt);
    fd_tensor_release(&w->audio);
    free(w->rgb);
    free(w->path);
    free(w);
}

void fd_vwriter_abort(fd_vwriter *w) { writer_free(w, 1); }
int64_t fd_vwriter_frames(const fd_vwriter *w) { return w->frames; }

/* A printf pattern with exactly one integer conversion (%d or %0Nd). */
static int check_pattern(const char *p)
{
    int conversions = 0;
    for (; *p; p++) {
        if (*p != '%') continue;
        if (p[1] == '%') { p++; continue; }
        p++;
        if (*p == '0') p++;
        while (*p >= '0' && *p <= '9') p++;
        if (*p != 'd') return 0;
        conversions++;
    }
    return conversions == 1;
}

static int open_png_sequence(fd_vwriter *w, const char *path, const fd_vwriter_opts *o)
{
    if (!check_pattern(path))
        return fd_fail("video.writer: '%s': a PNG sequence needs a pattern with one %%d (e.g. 'dir/frame_%%05d.png')", path);
    if (o->audio) return fd_fail("video.writer: '%s': PNG sequences hold no audio; save it with fada.audio.save", path);
    char first[4200], tmp[4200];
    snprintf(first, sizeof first, path, 1);
    if (fd_io_temp_name("video.writer", first, tmp, sizeof tmp)) return FD_ERR; /* the directory is writable */
    w->png_sequence = 1;
    return FD_OK;
}

static int add_video_stream(fd_vwriter *w, const fd_vwriter_opts *o)
{
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    if (!codec) return fd_fail("video.writer: this FFmpeg has no libx264 encoder");
    w->vst = avformat_new_stream(w->oc, NULL);
    w->venc = avcodec_alloc_context3(codec);
    if (!w->vst || !w->venc) return fd_fail("video.writer: out of memory");
    AVCodecContext *c = w->venc;
    c->width = w->enc_w;
    c->height = w->enc_h;
    c->time_base = av_inv_q(w->fps);
    c->framerate = w->fps;
    c->pix_fmt = AV_PIX_FMT_YUV420P;
    c->gop_size = 250;
    /* What swscale's RGB -> YUV uses by default: BT.601, limited range. */
    c->colorspace = AVCOL_SPC_SMPTE170M;
    c->color_primaries = AVCOL_PRI_SMPTE170M;
    c->color_trc = AVCOL_TRC_SMPTE170M;
    c->color_range = AVCOL_RANGE_MPEG;
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    char crf[16];
    snprintf(crf, sizeof crf, "%d", o->crf);
    av_opt_set(c->priv_data, "crf", crf, 0);
    if (av_opt_set(c->priv_data, "preset", o->preset ? o->preset : "medium", 0) < 0)
        return fd_fail("video.writer: unknown x264 preset '%s'", o->preset);
    int e = avcodec_open2(c, codec, NULL);
    if (e < 0) return fd_fail("video.writer: cannot open libx264: %s", fd_av_err(e));
    if ((e = avcodec_parameters_from_context(w->vst->codecpar, c)) < 0)
        return fd_fail("video.writer: %s", fd_av_err(e));
    w->vst->time_base = c->time_base;
    w->vst->avg_frame_rate = w->fps;
    w->vframe = av_frame_alloc();
    if (!w->vframe) return fd_fail("video.writer: out of memory");
    w->vframe->format = c->pix_fmt;
    w->vframe->width = c->width;
    w->vframe->height = c->height;
    if (av_frame_get_buffer(w->vframe, 0) < 0) return fd_fail("video.writer: out of memory");
    w->sws = sws_getContext(w->enc_w, w->enc_h, AV_PIX_FMT_RGB24, w->enc_w, w->enc_h, AV_PIX_FMT_YUV420P,
                            SWS_BILINEAR | SWS_ACCURATE_RND, NULL, NULL, NULL);
    w->rgb = malloc((size_t)w->enc_w * w->enc_h * 3);
    if (!w->sws || !w->rgb) return fd_fail("video.writer: out of memory");
    return FD_OK;
}

static int add_audio_stream(fd_vwriter *w, const fd_vwriter_opts *o)
{
    const fd_tensor *a = o->audio;
    if (!fd_dtype_is_float(a->dtype) || a->ndim != 1)
        return fd_fail("video.writer: audio must be mono float samples [N], got %s %s", fd_dtype_name(a->dtype),
                       FD_SHAPE_STR(a));
    if (o->sample_rate < 1) return fd_fail("video.writer: audio needs sample_rate, got %d", o->sample_rate);
    /* Contiguous f32 samples are kept by reference (a view, no copy): 10
     * minutes at 16 kHz are 38 MB the caller already holds. */
    fd_tensor f32 = {0};
    if (a->dtype == FD_F32) fd_tensor_view_of(&f32, a);
    else if (fd_tensor_to_dtype(&f32, a, FD_F32)) return FD_ERR;
    int r = fd_tensor_contiguous(&w->audio, &f32);
    fd_tensor_release(&f32);
    if (r) return FD_ERR;
    w->audio_n = w->audio.shape[0];
    w->sample_rate = o->sample_rate;
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_AAC);
    if (!codec) return fd_fail("video.writer: this FFmpeg has no AAC encoder");
    const int *rates = codec->supported_samplerates;
    int ok = !rates;
    for (; rates && *rates; rates++) ok |= *rates == o->sample_rate;
    if (!ok) return fd_fail("video.writer: AAC cannot hold %d Hz audio (use 16000, 22050, 24000, 44100, 48000, ...)",
                            o->sample_rate);
    w->ast = avformat_new_stream(w->oc, NULL);
    w->aenc = avcodec_alloc_context3(codec);
    if (!w->ast || !w->aenc) return fd_fail("video.writer: out of memory");
    AVCodecContext *c = w->aenc;
    c->sample_fmt = AV_SAMPLE_FMT_FLTP;
    c->sample_rate = o->sample_rate;
    c->bit_rate = o->audio_bitrate > 0 ? o->audio_bitrate : 128000;
    av_channel_layout_default(&c->ch_layout, 1);
    c->time_base = (AVRational){1, o->sample_rate};
    if (w->oc->oformat->flags & AVFMT_GLOBALHEADER) c->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    int e = avcodec_open2(c, codec, NULL);
    if (e < 0) return fd_fail("video.writer: cannot open the AAC encoder: %s", fd_av_err(e));
    if ((e = avcodec_parameters_from_context(w->ast->codecpar, c)) < 0)
        return fd_fail("video.writer: %s", fd_av_err(e));
    w->ast->time_base = c->time_base;
    w->aframe = av_frame_alloc();
    if (!w->aframe) return fd_fail("video.writer: out of memory");
    w->aframe->format = c->sample_fmt;
    w->aframe->nb_samples = c->frame_size;
    av_channel_layout_copy(&w->aframe->ch_layout, &c->ch_layout);
    if (av_frame_get_buffer(w->aframe, 0) < 0) return fd_fail("video.writer: out of memory");
    return FD_OK;
}

int fd_vwriter_open(fd_vwriter **out, const char *path, const fd_vwriter_opts *o)
{
    *out = NULL;
    fd_av_quiet();
    fd_av_clear_reason();
    if (!(o->fps > 0) || o->fps > 1000) return fd_fail("video.writer: '%s': fps %g out of range (0, 1000]", path, o->fps);
    if (o->width < 1 || o->height < 1 || o->width > 16384 || o->height > 16384)
        return fd_fail("video.writer: '%s': size %dx%d (width x height) out of range", path, o->width, o->height);
    if (o->crf < 0 || o->crf > 51) return fd_fail("video.writer: '%s': crf %d out of range 0..51", path, o->crf);
    fd_vwriter *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return fd_fail("video.writer: out of memory");
    }
    w->width = o->width, w->height = o->height;
    w->fps = av_d2q(o->fps, 100000);
    if (o->png_sequence) {
        if (open_png_sequence(w, path, o)) goto fail;
        *out = w;
        return FD_OK;
    }
    /* yuv420p stores chroma at half resolution: both sides must be even. */
    if ((o->width | o->height) & 1) {
        if (!o->pad) {
            fd_fail("video.writer: '%s': size %dx%d is odd; H.264 yuv420p needs even width and height (pass pad = true "
                    "to repeat the last row/column)", path, o->width, o->height);
            goto fail;
        }
    }
    w->enc_w = o->width + (o->width & 1), w->enc_h = o->height + (o->height & 1);
    if (fd_io_temp_name("video.writer", path, w->tmp, sizeof w->tmp)) {
        w->tmp[0] = 0;
        goto fail;
    }
    int e = avformat_alloc_output_context2(&w->oc, NULL, "mp4", w->tmp);
    if (e < 0 || !w->oc) {
        fd_fail("video.writer: '%s': cannot make an MP4 muxer: %s", path, fd_av_err(e));
        goto fail;
    }
    w->pkt = av_packet_alloc();
    if (!w->pkt) {
        fd_fail("video.writer: out of memory");
        goto fail;
    }
    if (add_video_stream(w, o)) goto fail;
    if (o->audio && add_audio_stream(w, o)) goto fail;
    if ((e = avio_open(&w->oc->pb, w->tmp, AVIO_FLAG_WRITE)) < 0) {
        fd_fail("video.writer: '%s': cannot create '%s': %s", path, w->tmp, fd_av_err(e));
        goto fail;
    }
    AVDictionary *mux = NULL;
    av_dict_set(&mux, "movflags", "+faststart", 0); /* the index first: playable while downloading */
    e = avformat_write_header(w->oc, &mux);
    av_dict_free(&mux);
    if (e < 0) {
        fd_fail("video.writer: '%s': cannot write the MP4 header: %s", path, fd_av_err(e));
        goto fail;
    }
    w->header_written = 1;
    *out = w;
    return FD_OK;
fail:
    writer_free(w, 1);
    return FD_ERR;
}

/* Sends one frame (NULL flushes) and writes every packet that comes out. */
static int encode(fd_vwriter *w, AVCodecContext *c, AVStream *st, AVFrame *frame)
{
    int e = avcodec_send_frame(c, frame);
    if (e < 0) return fd_fail("video.writer: '%s': encoding failed: %s", w->path, fd_av_err(e));
    for (;;) {
        e = avcodec_receive_packet(c, w->pkt);
        if (e == AVERROR(EAGAIN) || e == AVERROR_EOF) return FD_OK;
        if (e < 0) return fd_fail("video.writer: '%s': encoding failed: %s", w->path, fd_av_err(e));
        av_packet_rescale_ts(w->pkt, c->time_base, st->time_base);
        w->pkt->stream_index = st->index;
        e = av_interleaved_write_frame(w->oc, w->pkt); /* takes the packet's data */
        if (e < 0) return fd_fail("video.writer: '%s': write failed: %s", w->path, fd_av_err(e));
    }
}

/* Encodes audio up to sample `until` in whole encoder frames (all of it,
 * with a short last frame, when final). */
static int encode_audio(fd_vwriter *w, int64_t until, int final)
{
    if (!w->aenc) return FD_OK;
    if (until > w->audio_n) until = w->audio_n;
    int fs = w->aenc->frame_size;
    const float *src = fd_tensor_data(&w->audio);
    while (w->audio_pos < until && (final || until - w->audio_pos >= fs)) {
        int n = (int)(until - w->audio_pos < fs ? until - w->audio_pos : fs);
        if (av_frame_make_writable(w->aframe) < 0) return fd_fail("video.writer: out of memory");
        w->aframe->nb_samples = n;
        memcpy(w->aframe->data[0], src + w->audio_pos, sizeof(float) * (size_t)n);
        w->aframe->pts = w->audio_pos;
        if (encode(w, w->aenc, w->ast, w->aframe)) return FD_ERR;
        w->audio_pos += n;
    }
    return FD_OK;
}

int fd_vwriter_write(fd_vwriter *w, const fd_tensor *frame, int range)
{
    fd_image img;
    fd_av_clear_reason();
    int64_t fh = frame->dtype == FD_U8 ? frame->shape[0] : frame->shape[frame->ndim - 2];
    int64_t fw = frame->dtype == FD_U8 ? frame->shape[1] : frame->shape[frame->ndim - 1];
    int64_t fc = frame->dtype == FD_U8 ? (frame->ndim == 3 ? frame->shape[2] : 1) : frame->shape[frame->ndim - 3];
    if (frame->ndim < 2 || fh != w->height || fw != w->width || fc != 3 ||
        (frame->dtype == FD_U8 && frame->ndim != 3))
        return fd_fail("video.writer: '%s': frame %s %s vs the writer's %dx%d: expected u8 [%d, %d, 3] or float [3, %d, %d]",
                       w->path, fd_dtype_name(frame->dtype), FD_SHAPE_STR(frame), w->width, w->height, w->height,
                       w->width, w->height, w->width);
    if (fd_image_from_tensor(&img, frame, range, 8)) return FD_ERR;
    if (w->png_sequence) {
        char name[4200];
        snprintf(name, sizeof name, w->path, (int)(w->frames + 1));
        int r = fd_png_save(name, &img, 0);
        fd_image_free(&img);
        if (r) return FD_ERR;
        w->frames++;
        return FD_OK;
    }
    /* into the padded RGB frame, repeating the last column and row */
    size_t row = (size_t)w->enc_w * 3;
    for (int y = 0; y < w->enc_h; y++) {
        const uint8_t *s = img.data + (size_t)(y < w->height ? y : w->height - 1) * w->width * 3;
        uint8_t *d = w->rgb + y * row;
        memcpy(d, s, (size_t)w->width * 3);
        if (w->enc_w > w->width) memcpy(d + (size_t)w->width * 3, s + (size_t)(w->width - 1) * 3, 3);
    }
    fd_image_free(&img);
    if (av_frame_make_writable(w->vframe) < 0) return fd_fail("video.writer: out of memory");
    const uint8_t *src[1] = {w->rgb};
    int stride[1] = {(int)row};
    sws_scale(w->sws, src, stride, 0, w->enc_h, w->vframe->data, w->vframe->linesize);
    w->vframe->pts = w->frames;
    if (encode(w, w->venc, w->vst, w->vframe)) return FD_ERR;
    w->frames++;
    /* the audio that plays during the frames written so far */
    int64_t until = (int64_t)((double)w->frames * w->sample_rate * w->fps.den / w->fps.num);
    return encode_audio(w, until, 0);
}

int fd_vwriter_close(fd_vwriter *w)
{
    fd_av_clear_reason();
    if (w->png_sequence) {
        writer_free(w, 0);
        return FD_OK;
    }
    int r = FD_OK;
    if (w->frames == 0) r = fd_fail("video.writer: '%s': no frames were written", w->path);
    if (!r) r = encode_audio(w, w->audio_n, 1);
    if (!r) r = encode(w, w->venc, w->vst, NULL);
    if (!r && w->aenc) r = encode(w, w->aenc, w->ast, NULL);
    if (!r) {
        int e = av_write_trailer(w->oc); /* +faststart rewrites the file with the index first */
        if (e < 0) r = fd_fail("video.writer: '%s': cannot finish the MP4: %s", w->path, fd_av_err(e));
    }
    if (!r) {
        int e = avio_closep(&w->oc->pb);
        if (e < 0) r = fd_fail("video.writer: '%s': write failed: %s", w->path, fd_av_err(e));
    }
    if (!r) r = fd_io_commit("video.writer", w->tmp, w->path);
    writer_free(w, r != FD_OK);
    return r;
}
