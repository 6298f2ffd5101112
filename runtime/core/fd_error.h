/* Errors of the C core: a status code plus a message for people.
 *
 * Core functions return 0 on success and FD_ERR on failure, after writing a
 * message with fd_fail(). Only the Lua binding turns that message into a Lua
 * error (fd_lua_error), after the core has freed what it held. The message
 * buffer is thread-local, so worker threads may fail without racing. */
#ifndef FD_ERROR_H
#define FD_ERROR_H

#define FD_OK 0
#define FD_ERR (-1)

/* Formats the message (printf style) and returns FD_ERR, so a failing
 * function can `return fd_fail("conv2d: ...", ...);`. */
int fd_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The message of the last failure on this thread ("" if none). */
const char *fd_error_message(void);

#endif
