/*
 * error.c — strings for the error enum.  The table lives in spiral/error.h.
 */
#include "spiral/error.h"

const char *sp_strerror(int code)
{
    switch (code) {
    case SP_OK: return "success";
#define SP_ERR_STR_(name, c, text) case SP_E##name: return text;
    SP_ERRNO_MAP(SP_ERR_STR_)
#undef SP_ERR_STR_
    }
    return "unknown error";
}

const char *sp_err_name(int code)
{
    switch (code) {
    case SP_OK: return "OK";
#define SP_ERR_NAME_(name, c, text) case SP_E##name: return #name;
    SP_ERRNO_MAP(SP_ERR_NAME_)
#undef SP_ERR_NAME_
    }
    return "UNKNOWN";
}
