/* Reading frames from any container FFmpeg opens: demux, decode, convert
 * (and optionally resize) to packed RGB/RGBA/gray with libswscale. */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/io/fd_image.h"
#include "runtime/io/fd_io.h"
#include "runtime/io/fd_video.h"

struct fd_vreader {
    const char *op; /* "video", or "image" for a still picture: the word messages start with */
    char *path;
    AVFormatContext *fmt;
    AVCodecContext *dec;
    struct SwsContext *sws;
    AVPacket *pkt;
    AVFrame *frame;
    fd_av_watchdog watchdog; /* fd_vreader is heap-allocated: the callback's pointer stays valid */
    int stream, eof_sent, channels, out_w, out_h, area, frames, bad_packets, read_error;
};

void fd_vreader_close(fd_vreader *r)
{
    if (!r) return;
    sws_freeContext(r->sws);
    av_frame_free(&r->frame);
    av_packet_free(&r->pkt);
    avcodec_free_context(&r->dec);
    avformat_close_input(&r->fmt);
    free(r->path);
    free(r);
}

static int auto_channels(enum AVPixelFormat f)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(f);
    if (!d) return 3;
    if (d->flags & AV_PIX_FMT_FLAG_ALPHA) return 4;
    if (d->nb_components == 1 && !(d->flags & AV_PIX_FMT_FLAG_PAL)) return 1;
    return 3;
}

int fd_vreader_open(fd_vreader **out, const char *path, const fd_vreader_opts *opts)
{
    *out = NULL;
    const char *op = opts->op ? opts->op : "video";
    fd_av_quiet();
    /* An image-sequence pattern ("dir/f_%03d.png") is no file: FFmpeg checks it. */
    if (!strchr(path, '%') && fd_io_check_input(op, path, NULL)) return FD_ERR;
    if ((opts->width > 0) != (opts->height > 0) || opts->width < 0 || opts->height < 0 ||
        opts->width > FD_IMAGE_MAX_SIDE || opts->height > FD_IMAGE_MAX_SIDE)
        return fd_fail("%s: '%s': output size %dx%d: give both width and height (1..%d) or neither", op, path,
                       opts->width, opts->height, FD_IMAGE_MAX_SIDE);
    if (opts->max_pixels < 0 || opts->max_pixels > FD_IMAGE_MAX_PIXELS)
        return fd_fail("%s: '%s': max_pixels %lld out of range (0 = the default %lld, else 1..%lld)", op, path,
                       (long long)opts->max_pixels, (long long)FD_IMAGE_DEFAULT_MAX_PIXELS,
                       (long long)FD_IMAGE_MAX_PIXELS);
    int64_t max_pixels = opts->max_pixels ? opts->max_pixels : FD_IMAGE_DEFAULT_MAX_PIXELS;
    fd_vreader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        return fd_fail("%s: out of memory", op);
    }
    r->op = op;
    int e = fd_av_open_input(&r->fmt, path, &r->watchdog);
    if (e < 0) {
        fd_vreader_close(r);
        return fd_fail("%s: '%s': cannot open: %s", op, path, fd_av_input_err(e));
    }
    if ((e = avformat_find_stream_info(r->fmt, NULL)) < 0) {
        fd_fail("%s: '%s': cannot read stream info: %s", op, path, fd_av_input_err(e));
        goto fail;
    }
    const AVCodec *codec = NULL;
    r->stream = av_find_best_stream(r->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r->stream < 0 || !codec) {
        fd_fail("%s: '%s': no decodable video or picture stream", op, path);
        goto fail;
    }
    AVCodecParameters *par = r->fmt->streams[r->stream]->codecpar;
    if (par->width <= 0 || par->height <= 0) {
        /* FFmpeg's log says why (a refused size, missing data); its codes do not */
        const char *why = fd_av_logged();
        fd_fail("%s: '%s': the %s stream has no picture size%s%s%s: corrupt, too large, or not a picture or video", op,
                path, codec->name, *why ? " (FFmpeg: " : "", why, *why ? ")" : "");
        goto fail;
    }
    if (fd_io_check_pixels(op, path, par->width, par->height, max_pixels)) goto fail;
    r->dec = avcodec_alloc_context3(codec);
    if (!r->dec || avcodec_parameters_to_context(r->dec, par) < 0) {
        fd_fail("%s: '%s': cannot set up the %s decoder", op, path, codec->name);
        goto fail;
    }
    r->dec->max_pixels = max_pixels; /* a stream that grows past the limit later is refused by the decoder */
    r->dec->thread_count = 2;
    if (opts->lowres > 0) r->dec->lowres = opts->lowres < codec->max_lowres ? opts->lowres : codec->max_lowres;
    if ((e = avcodec_open2(r->dec, codec, NULL)) < 0) {
        fd_fail("%s: '%s': cannot open the %s decoder: %s", op, path, codec->name, fd_av_input_err(e));
        goto fail;
    }
    r->pkt = av_packet_alloc();
    r->frame = av_frame_alloc();
    if (!r->pkt || !r->frame) {
        fd_fail("%s: out of memory", op);
        goto fail;
    }
    r->channels = opts->channels ? opts->channels : auto_channels(r->dec->pix_fmt);
    if (r->channels != 1 && r->channels != 3 && r->channels != 4) {
        fd_fail("%s: channels must be 1, 3 or 4, got %d", op, r->channels);
        goto fail;
    }
    r->out_w = opts->width ? opts->width : par->width;
    r->out_h = opts->height ? opts->height : par->height;
    r->area = opts->area;
    *out = r;
    return FD_OK;
fail:
    fd_vreader_close(r);
    return FD_ERR;
}

void fd_vreader_get_info(const fd_vreader *r, fd_vreader_info *info)
{
    AVStream *st = r->fmt->streams[r->stream];
    memset(info, 0, sizeof *info);
    info->width = r->out_w;
    info->height = r->out_h;
    info->channels = r->channels;
    info->src_width = st->codecpar->width;
    info->src_height = st->codecpar->height;
    AVRational fr = st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate;
    info->fps = fr.num && fr.den ? av_q2d(fr) : 0;
    if (st->duration > 0 && st->duration != AV_NOPTS_VALUE) info->duration = st->duration * av_q2d(st->time_base);
    else if (r->fmt->duration > 0) info->duration = r->fmt->duration / (double)AV_TIME_BASE;
    info->has_audio = av_find_best_stream(r->fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0) >= 0;
    info->codec = r->dec->codec->name;
    info->max_lowres = r->dec->codec->max_lowres;
}

/* Converts r->frame into a new u8 [H, W, C] tensor. */
static int convert_frame(fd_vreader *r, fd_tensor *out)
{
    AVFrame *f = r->frame;
    if (f->width <= 0 || f->height <= 0 || f->width > FD_IMAGE_MAX_SIDE || f->height > FD_IMAGE_MAX_SIDE)
        return fd_fail("%s: '%s': decoded frame of %dx%d is out of range", r->op, r->path, f->width, f->height);
    static const enum AVPixelFormat fmts[] = {AV_PIX_FMT_NONE, AV_PIX_FMT_GRAY8, AV_PIX_FMT_NONE, AV_PIX_FMT_RGB24,
                                              AV_PIX_FMT_RGBA};
    /* No resize requested: follow the frame's own size (streams may change it). */
    int w = r->out_w, h = r->out_h;
    if (w == r->fmt->streams[r->stream]->codecpar->width && h == r->fmt->streams[r->stream]->codecpar->height &&
        (f->width != w || f->height != h))
        w = f->width, h = f->height;
    int flags = (r->area ? SWS_AREA : SWS_BILINEAR) | SWS_ACCURATE_RND;
    r->sws = sws_getCachedContext(r->sws, f->width, f->height, f->format, w, h, fmts[r->channels], flags, NULL, NULL,
                                  NULL);
    if (!r->sws)
        return fd_fail("%s: '%s': cannot convert %s frames to %s", r->op, r->path,
                       av_get_pix_fmt_name(f->format) ? av_get_pix_fmt_name(f->format) : "unknown",
                       av_get_pix_fmt_name(fmts[r->channels]));
    /* Honour the stream's matrix (BT.709 for HD video) and range (JPEG full
     * range), where the frame says which. */
    int cs = f->colorspace == AVCOL_SPC_UNSPECIFIED || f->colorspace == AVCOL_SPC_RGB ? SWS_CS_DEFAULT : f->colorspace;
    int *inv, *tab, src_range, dst_range, bri, con, sat;
    if (sws_getColorspaceDetails(r->sws, &inv, &src_range, &tab, &dst_range, &bri, &con, &sat) >= 0) {
        if (f->color_range == AVCOL_RANGE_JPEG) src_range = 1;
        sws_setColorspaceDetails(r->sws, sws_getCoefficients(cs), src_range, tab, dst_range, bri, con, sat);
    }
    if (fd_tensor_empty(out, FD_U8, 3, (int64_t[]){h, w, r->channels})) return FD_ERR;
    uint8_t *dst[4] = {fd_tensor_data(out)};
    int stride[4] = {w * r->channels};
    sws_scale(r->sws, (const uint8_t *const *)f->data, f->linesize, 0, f->height, dst, stride);
    return FD_OK;
}

int fd_vreader_next(fd_vreader *r, fd_tensor *out, double *pts)
{
    fd_tensor_release(out);
    fd_av_clear_reason();
    fd_av_progress(&r->watchdog); /* each frame gets its own time budget */
    for (;;) {
        int e = avcodec_receive_frame(r->dec, r->frame);
        if (e == 0) {
            AVStream *st = r->fmt->streams[r->stream];
            int64_t ts = r->frame->best_effort_timestamp;
            int64_t start = st->start_time != AV_NOPTS_VALUE ? st->start_time : 0;
            double fps = av_q2d(st->avg_frame_rate.num ? st->avg_frame_rate : st->r_frame_rate);
            *pts = ts != AV_NOPTS_VALUE ? (ts - start) * av_q2d(st->time_base) : fps > 0 ? r->frames / fps : 0;
            int rc = convert_frame(r, out);
            av_frame_unref(r->frame);
            if (rc) return FD_ERR;
            r->frames++;
            return 1;
        }
        if (e == AVERROR_EOF) {
            if (r->frames == 0 && r->read_error)
                return fd_fail("%s: '%s': no frame decoded: %s (truncated or corrupt)", r->op, r->path,
                               fd_av_input_err(r->read_error));
            if (r->frames == 0) {
                char why[320] = "";
                size_t n = 0;
                if (r->bad_packets)
                    n = (size_t)snprintf(why, sizeof why, " (%d damaged packet%s)", r->bad_packets,
                                         r->bad_packets == 1 ? "" : "s");
                if (*fd_av_logged()) snprintf(why + n, sizeof why - n, " (FFmpeg: %s)", fd_av_logged());
                return fd_fail("%s: '%s': no frame could be decoded%s: truncated or corrupt", r->op, r->path, why);
            }
            return 0;
        }
        if (e != AVERROR(EAGAIN))
            return fd_fail("%s: '%s': decoding failed: %s", r->op, r->path, fd_av_input_err(e));
        if (r->eof_sent) return 0;
        for (;;) { /* feed one packet of our stream (or the end) */
            e = av_read_frame(r->fmt, r->pkt);
            if (e < 0) {
                if (e != AVERROR_EOF) r->read_error = e;
                avcodec_send_packet(r->dec, NULL);
                r->eof_sent = 1;
                break;
            }
            int ours = r->pkt->stream_index == r->stream;
            if (ours && avcodec_send_packet(r->dec, r->pkt) < 0) r->bad_packets++; /* skip a damaged packet */
            av_packet_unref(r->pkt);
            if (ours) break;
        }
    }
}
