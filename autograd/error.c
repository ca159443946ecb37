/* The thread-local last error: a code and a message. Nothing here allocates. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define TG_ERRMSG_MAX 1024

static _Thread_local int err_code;
static _Thread_local char err_msg[TG_ERRMSG_MAX];

const char *tg_last_error(void) { return err_msg; }

int tg_last_status(void) { return err_code; }

void tg_error_clear(void)
{
    err_code = TG_OK;
    err_msg[0] = '\0';
}

int tg_set_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof err_msg, fmt, ap);
    va_end(ap);
    err_code = code;
    return code;
}

void tg_error_prefix(const char *prefix)
{
    size_t p = strlen(prefix), m = strlen(err_msg);
    if (p >= sizeof err_msg)
        return;
    if (p + m >= sizeof err_msg)
        m = sizeof err_msg - p - 1;
    memmove(err_msg + p, err_msg, m);
    memcpy(err_msg, prefix, p);
    err_msg[p + m] = '\0';
}

const char *tg_status_name(int code)
{
    switch (code) {
    case TG_OK: return "TG_OK";
    case TG_ERR_NULL: return "TG_ERR_NULL";
    case TG_ERR_SHAPE: return "TG_ERR_SHAPE";
    case TG_ERR_DTYPE: return "TG_ERR_DTYPE";
    case TG_ERR_ARG: return "TG_ERR_ARG";
    case TG_ERR_NOMEM: return "TG_ERR_NOMEM";
    case TG_ERR_OVERFLOW: return "TG_ERR_OVERFLOW";
    case TG_ERR_GRAD: return "TG_ERR_GRAD";
    case TG_ERR_GRADCHECK: return "TG_ERR_GRADCHECK";
    case TG_ERR_IO: return "TG_ERR_IO";
    case TG_ERR_FORMAT: return "TG_ERR_FORMAT";
    default: return "TG_ERR_UNKNOWN";
    }
}
