/*
 * HTTP/1.x through net/http: the request parser (http-parser plus the
 * header store and request framing), pipelining and held-back input,
 * chunked bodies, and the response and streaming framing. Byte 0 picks the
 * chunking and the answers; bit 0 of it also chooses between forcing
 * HTTP/1 and sniffing the protocol (the cleartext port's path).
 */
#include "tests/fuzz/fuzz_http_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    sl_http_proto_t proto = (data[0] & 1) ? SL_HTTP_PROTO_AUTO : SL_HTTP_PROTO_HTTP1;
    fz_http_run(proto, NULL, 0, data, size);
    return 0;
}
