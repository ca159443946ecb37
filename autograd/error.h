/* Error codes and the library's thread-local "last error" message.
 * Every failing call records a code and a message that names the function or op
 * and every shape involved; docs/errors.md lists the codes and the formats. */
#ifndef TG_ERROR_H
#define TG_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* Functions that return int give 0 on success or one of these (all negative). */
enum tg_status {
    TG_OK = 0,
    TG_ERR_NULL = -1,      /* a required pointer argument was NULL */
    TG_ERR_SHAPE = -2,     /* shapes do not fit the op's rule */
    TG_ERR_DTYPE = -3,     /* unsupported or mismatched dtype */
    TG_ERR_ARG = -4,       /* a bad argument value (axis, stride, count, ...) */
    TG_ERR_NOMEM = -5,     /* an allocation failed */
    TG_ERR_OVERFLOW = -6,  /* a size computation would overflow */
    TG_ERR_GRAD = -7,      /* backward misuse: root needs no grad, not scalar, ... */
    TG_ERR_GRADCHECK = -8, /* tg_gradcheck found a mismatch */
    TG_ERR_IO = -9,        /* a file could not be read or written */
    TG_ERR_FORMAT = -10    /* a file is malformed, truncated or corrupt */
};

/* The message of the most recent failure on this thread ("" if none).
 * The string is owned by the library and valid until the next failing call. */
const char *tg_last_error(void);
/* The code of the most recent failure on this thread (TG_OK if none). */
int tg_last_status(void);
/* Forget the last error (status TG_OK, message ""). */
void tg_error_clear(void);
/* Record an error and return `code`. For custom ops and library code:
 * inside a shape rule or forward the message should only describe the
 * problem; tg_apply prefixes "tg_<op name>: ". */
int tg_set_error(int code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Puts `prefix` in front of the current message (e.g. "loading model: "),
 * keeping the code: for wrapping a failure with context. */
void tg_error_prefix(const char *prefix);
/* The short name of a status code ("TG_ERR_SHAPE"). */
const char *tg_status_name(int code);

#ifdef __cplusplus
}
#endif
#endif
