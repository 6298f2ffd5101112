#include "runtime/core/fd_error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char error_message[1024];

int fd_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return FD_ERR;
}

const char *fd_error_message(void)
{
    return error_message;
}
