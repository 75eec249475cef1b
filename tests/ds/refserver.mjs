// Starts the Node reference server (@durable-streams/server) and prints its URL.
// Usage: node refserver.mjs PORT [DATA_DIR] [LONG_POLL_MS]
import { DurableStreamTestServer } from "@durable-streams/server";

const port = Number(process.argv[2] || 0);
const dataDir = process.argv[3] || undefined;
const longPollTimeout = Number(process.argv[4] || 30000);
const server = new DurableStreamTestServer({ port, dataDir, longPollTimeout, compression: false });
const url = await server.start();
console.log(url);
process.on("SIGTERM", async () => {
  await server.stop();
  process.exit(0);
});
