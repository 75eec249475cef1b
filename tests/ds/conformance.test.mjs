// The Durable Streams conformance suite, run by vitest against the server
// named by DS_BASE_URL (a stream URL prefix, e.g. http://127.0.0.1:8080/v1/stream).
import { runConformanceTests } from "@durable-streams/server-conformance-tests";

const baseUrl = process.env.DS_BASE_URL;
if (!baseUrl) throw new Error("DS_BASE_URL is not set");

runConformanceTests({
  baseUrl,
  longPollTimeoutMs: Number(process.env.DS_LONG_POLL_MS || 1000),
});
