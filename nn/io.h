/* Internal to nn/: message helpers shared by the file readers and writers
 * (safetensors.c, idx.c). Not installed. */
#ifndef TG_NN_IO_H
#define TG_NN_IO_H

#include <stddef.h>

/* Records "who: label: message" with tg_set_error and returns code. */
int tg__io_fail(int code, const char *who, const char *label, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* strerror(e) without the static buffer (POSIX strerror_r), into buf. */
const char *tg__io_errstr(int e, char *buf, size_t size);

#endif
