/* What every file loader and writer shares: checking a path before opening
 * it, reading a whole (bounded) file, writing through a temporary name that
 * is renamed only when the output is complete, and FFmpeg error strings.
 *
 * Messages follow "op: 'path': reason", so a Lua error names both. */
#ifndef FD_IO_H
#define FD_IO_H

#include <stddef.h>
#include <stdint.h>

/* Fails (naming op and path) unless path is an existing, readable regular
 * file of at least one byte; *size gets its length. */
int fd_io_check_input(const char *op, const char *path, size_t *size);

/* Reads the whole of path into a malloc'd buffer (caller frees) after
 * fd_io_check_input; refuses files above max_bytes. */
int fd_io_read_file(const char *op, const char *path, size_t max_bytes, uint8_t **buf, size_t *n);

/* A temporary name beside path ("dir/.name.tmp-<pid>-<n>") into tmp[n], after
 * checking that the directory exists and is writable, so that an
 * unwritable output fails before any work is done. */
int fd_io_temp_name(const char *op, const char *path, char *tmp, size_t n);
/* Renames tmp over path (fails naming both); removes tmp on failure. */
int fd_io_commit(const char *op, const char *tmp, const char *path);

/* Refuses (naming op and path, the size, the limit and what to do) a
 * picture of w x h pixels above max_pixels (0: FD_IMAGE_DEFAULT_MAX_PIXELS)
 * or with a side above FD_IMAGE_MAX_SIDE (fd_image.h). */
int fd_io_check_pixels(const char *op, const char *path, int64_t w, int64_t h, int64_t max_pixels);

/* FFmpeg's reason for a failure that returned `code`, in a thread-local
 * buffer: the first error FFmpeg logged on this thread since
 * fd_av_clear_reason() (its own words: "Picture size 60000x60000 is
 * invalid"), else the text of the code. fd_av_logged() is that logged error
 * alone ("" when none). */
const char *fd_av_err(int code);
/* The same about an input file: without a logged reason, EIO and ENOMEM are
 * worded as what they mean for a file read (it ends early; it asks for more
 * memory than FFmpeg allocates), not as "Input/output error" and "Cannot
 * allocate memory". */
const char *fd_av_input_err(int code);
const char *fd_av_logged(void);
/* Forgets the logged reason: call when an operation starts (fd_av_open_input does). */
void fd_av_clear_reason(void);
/* Silences FFmpeg's stderr logging once (errors come back as codes, and its
 * log lines are kept for fd_av_err); FADA_AV_LOG=1 in the environment keeps
 * its warnings on stderr for debugging. */
void fd_av_quiet(void);

/* A watchdog for FFmpeg: an AVFormatContext made by fd_av_open_input gives
 * up (AVERROR_EXIT) once no progress was reported for FD_AV_STALL_SECONDS,
 * so a pathological input cannot hang a loader. Call fd_av_progress after
 * each decoded frame or packet. */
#define FD_AV_STALL_SECONDS 30
struct AVFormatContext;
typedef struct fd_av_watchdog {
    int64_t deadline_us;
} fd_av_watchdog;
int fd_av_open_input(struct AVFormatContext **fmt, const char *path, fd_av_watchdog *wd);
void fd_av_progress(fd_av_watchdog *wd);

#endif
