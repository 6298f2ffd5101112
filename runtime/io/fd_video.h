/* Video through FFmpeg: a frame-by-frame reader (any container FFmpeg
 * reads; also the path for still images that are not PNG) and a
 * frame-by-frame MP4 writer (H.264 via libx264 + AAC), plus PNG sequences. */
#ifndef FD_VIDEO_H
#define FD_VIDEO_H

#include <stdint.h>

#include "runtime/core/fd_tensor.h"

/* ---- reading ---------------------------------------------------------- */
typedef struct fd_vreader fd_vreader;
typedef struct fd_vreader_opts {
    int width, height; /* output size; 0 = the source's (both or neither) */
    int channels;      /* 3 RGB, 4 RGBA, 1 gray; 0 = 3, or what a still image has */
    int area;          /* resize with area averaging (else bilinear) */
    int64_t max_pixels; /* refuse larger pictures (0: FD_IMAGE_DEFAULT_MAX_PIXELS, fd_image.h) */
    const char *op;     /* the word messages start with: "video" (NULL) or "image" */
    int lowres;         /* decode at 1/2^lowres of the size where the decoder can (JPEG: up to 3, in the DCT) */
} fd_vreader_opts;
typedef struct fd_vreader_info {
    int width, height, channels;   /* of the frames next() returns */
    int src_width, src_height;
    double fps, duration;          /* seconds; 0 when the container does not say */
    int has_audio;
    const char *codec;
    int max_lowres;                /* how far the decoder can shrink as it decodes (fd_vreader_opts.lowres) */
} fd_vreader_info;

int fd_vreader_open(fd_vreader **out, const char *path, const fd_vreader_opts *opts);
void fd_vreader_get_info(const fd_vreader *r, fd_vreader_info *info);
/* The next frame as u8 [H, W, C] into out, its time in seconds into *pts.
 * Returns 1 for a frame, 0 at the end, FD_ERR on error (message names the path). */
int fd_vreader_next(fd_vreader *r, fd_tensor *out, double *pts);
void fd_vreader_close(fd_vreader *r);

/* ---- writing ---------------------------------------------------------- */
typedef struct fd_vwriter fd_vwriter;
typedef struct fd_vwriter_opts {
    double fps;                /* frames per second (> 0) */
    int width, height;
    int crf;                   /* x264 constant rate factor, 0..51 (default 18) */
    const char *preset;        /* x264 preset (default "medium") */
    int pad;                   /* pad odd sizes by one edge pixel instead of refusing */
    const fd_tensor *audio;    /* optional mono f32 [N] samples (kept by reference) */
    int sample_rate;           /* of audio */
    int audio_bitrate;         /* bits per second (default 128000) */
    int png_sequence;          /* path is a printf pattern "dir/frame_%05d.png" */
} fd_vwriter_opts;

int fd_vwriter_open(fd_vwriter **out, const char *path, const fd_vwriter_opts *opts);
/* One frame: u8 [H, W, 3] or float [3, H, W] in range (FD_RANGE_01/PM1). */
int fd_vwriter_write(fd_vwriter *w, const fd_tensor *frame, int range);
/* Flushes, writes the index (+faststart) and renames into place. Frees w
 * whether it succeeds or not (on failure the temporary file is removed). */
int fd_vwriter_close(fd_vwriter *w);
/* Frees an unfinished writer and removes its temporary file. */
void fd_vwriter_abort(fd_vwriter *w);
int64_t fd_vwriter_frames(const fd_vwriter *w);

#endif
