/*
 * Error names and the assertion failure path.
 */
#include "runtime/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sl_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case SL_EFULL: return "queue or buffer full";
    case SL_EPROTO: return "protocol error";
    case SL_ETOOBIG: return "exceeds limit";
    case SL_ECLOSED: return "closed";
    case SL_ENOMEM: return "allocation cap reached";
    case SL_EINVAL: return "invalid argument";
    case SL_ECORRUPT: return "corrupt data";
    case SL_ENOTFOUND: return "not found";
    case SL_EAGAIN: return "try again";
    case SL_EENDED: return "session closed";
    case SL_EFENCED: return "producer epoch fenced";
    case SL_EGAP: return "producer seq gap";
    case SL_ECONFLICT: return "conflicts with existing state";
    default: break;
    }
    if (err < 0 && err > -4096)
        return strerror(-err);
    return "unknown error";
}

void sl__assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "level=fatal msg=\"assertion failed\" expr=\"%s\" file=%s line=%d func=%s\n",
            expr, file, line, func);
    fflush(stderr);
    abort();
}
