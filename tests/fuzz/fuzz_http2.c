/*
 * HTTP/2 through net/http (nghttp2 under the project's stream layer):
 * the client preface is given, the fuzzer writes the frames after it
 * (SETTINGS, HEADERS with HPACK, CONTINUATION, DATA, RST_STREAM,
 * WINDOW_UPDATE, PING, GOAWAY, ...). Answers include streams left open and
 * deferred ones, so resets and flow control meet live streams. Byte 0
 * picks the chunking and the answers.
 */
#include "tests/fuzz/fuzz_http_driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_http_run(SL_HTTP_PROTO_H2, preface, sizeof preface - 1, data, size);
    return 0;
}
