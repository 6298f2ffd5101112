/* Path checks, bounded whole-file reads and write-then-rename (fd_io.h). */
#include <errno.h>
#include <libavutil/error.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libavutil/time.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/core/fd_error.h"
#include "runtime/io/fd_image.h"
#include "runtime/io/fd_io.h"

int fd_io_check_input(const char *op, const char *path, size_t *size)
{
    struct stat st;
    if (!path || !*path) return fd_fail("%s: empty path", op);
    if (stat(path, &st) != 0) return fd_fail("%s: '%s': %s", op, path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return fd_fail("%s: '%s': is a directory, not a file", op, path);
    if (!S_ISREG(st.st_mode)) return fd_fail("%s: '%s': not a regular file", op, path);
    if (access(path, R_OK) != 0) return fd_fail("%s: '%s': %s", op, path, strerror(errno));
    if (st.st_size == 0) return fd_fail("%s: '%s': empty file (0 bytes)", op, path);
    if (size) *size = (size_t)st.st_size;
    return FD_OK;
}

int fd_io_read_file(const char *op, const char *path, size_t max_bytes, uint8_t **buf, size_t *n)
{
    size_t size;
    *buf = NULL;
    *n = 0;
    if (fd_io_check_input(op, path, &size)) return FD_ERR;
    if (size > max_bytes)
        return fd_fail("%s: '%s': file of %zu bytes is larger than the limit of %zu", op, path, size, max_bytes);
    FILE *f = fopen(path, "rb");
    if (!f) return fd_fail("%s: '%s': %s", op, path, strerror(errno));
    uint8_t *data = malloc(size);
    if (!data) {
        fclose(f);
        return fd_fail("%s: '%s': out of memory reading %zu bytes", op, path, size);
    }
    size_t got = fread(data, 1, size, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != size) {
        free(data);
        return fd_fail("%s: '%s': read %zu of %zu bytes", op, path, got, size);
    }
    *buf = data;
    *n = size;
    return FD_OK;
}

int fd_io_temp_name(const char *op, const char *path, char *tmp, size_t n)
{
    static atomic_uint counter;
    if (!path || !*path) return fd_fail("%s: empty output path", op);
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return fd_fail("%s: '%s': is a directory, not a file", op, path);
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (slash) {
        size_t len = (size_t)(slash - path);
        if (len == 0) len = 1; /* "/file" lives in "/" */
        if (len >= sizeof dir) return fd_fail("%s: '%s': path too long", op, path);
        memcpy(dir, path, len);
        dir[len] = 0;
    } else {
        strcpy(dir, ".");
    }
    if (stat(dir, &st) != 0) return fd_fail("%s: '%s': directory '%s': %s", op, path, dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return fd_fail("%s: '%s': '%s' is not a directory", op, path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return fd_fail("%s: '%s': directory '%s' is not writable: %s", op, path, dir, strerror(errno));
    const char *base = slash ? slash + 1 : path;
    int len = snprintf(tmp, n, "%s/.%s.tmp-%d-%u", dir, base, (int)getpid(), atomic_fetch_add(&counter, 1));
    if (len < 0 || (size_t)len >= n) return fd_fail("%s: '%s': path too long", op, path);
    return FD_OK;
}

int fd_io_commit(const char *op, const char *tmp, const char *path)
{
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return fd_fail("%s: '%s': cannot rename the finished file from '%s': %s", op, path, tmp, strerror(e));
    }
    return FD_OK;
}

/* FFmpeg's own words for a failure: the first error it logged on this thread
 * since fd_av_clear_reason. Its return codes alone mislead (a refused
 * picture size comes back as "Invalid argument" or "Device or resource
 * busy"); its log says what was wrong ("Picture size 60000x60000 is
 * invalid"). Messages logged by FFmpeg's own worker threads are not seen. */
static _Thread_local char av_reason[256];
static int av_log_forward; /* FADA_AV_LOG=1 */

static void av_log_capture(void *avcl, int level, const char *fmt, va_list vl)
{
    if (av_log_forward) {
        va_list copy;
        va_copy(copy, vl);
        av_log_default_callback(avcl, level, fmt, copy);
        va_end(copy);
    }
    if (level > AV_LOG_ERROR || av_reason[0]) return;
    vsnprintf(av_reason, sizeof av_reason, fmt, vl);
    size_t n = strlen(av_reason);
    while (n && (av_reason[n - 1] == '\n' || av_reason[n - 1] == ' ' || av_reason[n - 1] == '.')) av_reason[--n] = 0;
}

void fd_av_clear_reason(void) { av_reason[0] = 0; }

const char *fd_av_err(int code)
{
    static _Thread_local char buf[AV_ERROR_MAX_STRING_SIZE];
    if (av_reason[0]) return av_reason;
    av_strerror(code, buf, sizeof buf);
    return buf;
}

const char *fd_av_input_err(int code)
{
    if (av_reason[0]) return av_reason;
    /* two codes whose text ("Input/output error", "Cannot allocate memory")
     * FFmpeg returns about input files that are merely short or declare too much */
    if (code == AVERROR(EIO)) return "the data ends early (truncated) or cannot be read";
    if (code == AVERROR(ENOMEM))
        return "the file asks for more memory than FFmpeg allocates (too large, or corrupt sizes)";
    return fd_av_err(code);
}

const char *fd_av_logged(void) { return av_reason; }

/* FFmpeg talks on stderr about every damaged file; errors come back to us as
 * codes and through av_log_capture instead. FADA_AV_LOG=1 brings its
 * messages back for debugging. */
void fd_av_quiet(void)
{
    static int done;
    if (done) return;
    done = 1;
    const char *env = getenv("FADA_AV_LOG");
    av_log_forward = env && *env == '1';
    av_log_set_level(av_log_forward ? AV_LOG_WARNING : AV_LOG_QUIET);
    av_log_set_callback(av_log_capture);
}

/* The ffmpeg filter a refusal suggests: at most 2048 a side, aspect kept. */
#define SHRINK "scale=w=2048:h=2048:force_original_aspect_ratio=decrease"

int fd_io_check_pixels(const char *op, const char *path, int64_t w, int64_t h, int64_t max_pixels)
{
    int64_t limit = max_pixels > 0 ? max_pixels : FD_IMAGE_DEFAULT_MAX_PIXELS;
    if (w > FD_IMAGE_MAX_SIDE || h > FD_IMAGE_MAX_SIDE)
        return fd_fail("%s: '%s': %lld x %lld pixels: a side above %d is beyond what fada decodes; scale it down first "
                       "(ffmpeg -i '%s' -vf %s smaller.png)",
                       op, path, (long long)w, (long long)h, FD_IMAGE_MAX_SIDE, path, SHRINK);
    if (w * h <= limit) return FD_OK;
    const char *how = !strcmp(op, "video") ? "fada.video.reader(path, {max_pixels = N})"
                                           : "fada.image.load(path, {max_pixels = N})";
    return fd_fail("%s: '%s': %lld x %lld pixels (%.1f megapixels) is above the limit of %lld pixels (%.1f megapixels) "
                   "that bounds what decoding it may cost; scale it down first (ffmpeg -i '%s' -vf %s smaller.png), "
                   "or raise the limit with %s, N up to %lld",
                   op, path, (long long)w, (long long)h, (double)(w * h) / 1e6, (long long)limit, (double)limit / 1e6,
                   path, SHRINK, how, (long long)FD_IMAGE_MAX_PIXELS);
}

static int watchdog_fired(void *opaque)
{
    const fd_av_watchdog *wd = opaque;
    return av_gettime_relative() > wd->deadline_us;
}

void fd_av_progress(fd_av_watchdog *wd) { wd->deadline_us = av_gettime_relative() + (int64_t)FD_AV_STALL_SECONDS * 1000000; }

int fd_av_open_input(AVFormatContext **fmt, const char *path, fd_av_watchdog *wd)
{
    fd_av_clear_reason();
    fd_av_progress(wd);
    *fmt = avformat_alloc_context();
    if (!*fmt) return AVERROR(ENOMEM);
    (*fmt)->interrupt_callback = (AVIOInterruptCB){watchdog_fired, wd};
    return avformat_open_input(fmt, path, NULL, NULL); /* frees *fmt on failure */
}
