/* Message helpers shared by the nn file formats (see io.h). */
#include "io.h"

#include "../autograd/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int tg__io_fail(int code, const char *who, const char *label, const char *fmt, ...)
{
    char msg[896];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tg_set_error(code, "%s: %s: %s", who, label, msg);
}

const char *tg__io_errstr(int e, char *buf, size_t size)
{
    if (strerror_r(e, buf, size) != 0)
        snprintf(buf, size, "error %d", e);
    return buf;
}
