/*
 * spiral/error.h — the one error enum of the public API.
 *
 * Every fallible spiral function returns an `int`: 0 (SP_OK) on success, a
 * negative SP_E* code on failure; results come back through out-parameters.
 * The table is an X-macro (libuv's UV_ERRNO_MAP) so the enum and the strings
 * can never disagree.  Codes are never renumbered: append new ones at the end.
 */
#ifndef SPIRAL_ERROR_H
#define SPIRAL_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

#define SP_ERRNO_MAP(X)                                                    \
    X(NOMEM,    -1,  "out of memory")                                      \
    X(INVAL,    -2,  "invalid argument")                                   \
    X(IO,       -3,  "input/output error")                                 \
    X(CONFIG,   -4,  "invalid scenario")                                   \
    X(NOTFOUND, -5,  "not found")                                          \
    X(RANGE,    -6,  "value out of range")                                 \
    X(STATE,    -7,  "operation not valid in this state")                  \
    X(HDF5,     -8,  "HDF5 library error")                                 \
    X(INTERRUPTED, -9, "interrupted")                                      \
    X(MODEL,    -10, "model invariant violated")                           \
    X(EXISTS,   -11, "already exists")

enum sp_error {
    SP_OK = 0,
#define SP_ERR_ENUM_(name, code, text) SP_E##name = (code),
    SP_ERRNO_MAP(SP_ERR_ENUM_)
#undef SP_ERR_ENUM_
};

/* A static, human-readable description of `code` ("unknown error" if none). */
const char *sp_strerror(int code);

/* The enum name of `code` without the prefix, e.g. "NOMEM". */
const char *sp_err_name(int code);

#ifdef __cplusplus
}
#endif
#endif
