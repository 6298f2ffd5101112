/* Path checks, bounded whole-file reads and write-then-rename (fd_io.h). */
#include <errno.h>
#include <libavutil/error.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libavutil/time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fd_error.h"
#include "fd_io.h"

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

const char *fd_av_err(int code)
{
    static _Thread_local char buf[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(code, buf, sizeof buf);
    return buf;
}

/* FFmpeg talks on stderr about every damaged file; errors come back to us as
 * codes instead. FADA_AV_LOG=1 brings its messages back for debugging. */
void fd_av_quiet(void)
{
    static int done;
    if (done) return;
    done = 1;
    const char *env = getenv("FADA_AV_LOG");
    av_log_set_level(env && *env == '1' ? AV_LOG_WARNING : AV_LOG_QUIET);
}

static int watchdog_fired(void *opaque)
{
    const fd_av_watchdog *wd = opaque;
    return av_gettime_relative() > wd->deadline_us;
}

void fd_av_progress(fd_av_watchdog *wd) { wd->deadline_us = av_gettime_relative() + (int64_t)FD_AV_STALL_SECONDS * 1000000; }

int fd_av_open_input(AVFormatContext **fmt, const char *path, fd_av_watchdog *wd)
{
    fd_av_progress(wd);
    *fmt = avformat_alloc_context();
    if (!*fmt) return AVERROR(ENOMEM);
    (*fmt)->interrupt_callback = (AVIOInterruptCB){watchdog_fired, wd};
    return avformat_open_input(fmt, path, NULL, NULL); /* frees *fmt on failure */
}
