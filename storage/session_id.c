/*
 * Session id validation. See session_id.h.
 */
#include "storage/session_id.h"

#include "runtime/limits.h"

static bool id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool sl_session_id_valid(const char *id, size_t len)
{
    if (len == 0 || len > SL_SESSION_ID_MAX || id[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++)
        if (!id_char((unsigned char)id[i]))
            return false;
    return true;
}
