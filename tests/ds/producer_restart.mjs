// An idempotent producer (@durable-streams/client) appends N JSON messages
// to a new stream while two live readers (SSE and long-poll) follow it; the
// server is killed and restarted in the middle by the caller, who watches
// stdout for the line "HALF". Retries are the client's own (its fetch
// backoff on refused connections and 5xx). Prints one JSON line of results.
// Usage: node producer_restart.mjs BASE_URL STREAM_NAME N
import { DurableStream, IdempotentProducer } from "@durable-streams/client";

const [base, name, nArg] = process.argv.slice(2);
const N = Number(nArg || 10000);
const url = `${base}/v1/stream/${name}`;
const backoffOptions = { initialDelay: 50, maxDelay: 500, multiplier: 1.5 };

const handle = await DurableStream.create({ url, contentType: "application/json", backoffOptions });

async function follow(live) {
  const seen = [];
  const res = await handle.stream({ offset: "-1", live, json: true });
  for await (const item of res.jsonStream()) seen.push(item.i);
  return { seen, closed: res.streamClosed };
}

const readers = [follow("sse"), follow("long-poll")];
const producer = new IdempotentProducer(handle, "restart-producer", {
  epoch: 0,
  lingerMs: 2,
  maxInFlight: 4,
  maxBatchBytes: 4096,
  onError: (e) => console.error("producer error:", e && e.message),
});

for (let i = 0; i < N; i++) {
  producer.append(JSON.stringify({ i }));
  if (i === N / 2) {
    await producer.flush();
    console.log("HALF");
  }
  if (i % 100 === 99) await new Promise((r) => setTimeout(r, 1));
}
await producer.close();

function summary(seen) {
  const set = new Set(seen);
  let ordered = true;
  for (let k = 1; k < seen.length; k++) if (seen[k] <= seen[k - 1]) ordered = false;
  return { count: seen.length, distinct: set.size, ordered, first: seen[0], last: seen[seen.length - 1] };
}

const [sse, lp] = await Promise.all(readers);
const check = await handle.stream({ offset: "-1", live: false, json: true });
const all = await check.json();
console.log(JSON.stringify({
  sse: { ...summary(sse.seen), closed: sse.closed },
  longpoll: { ...summary(lp.seen), closed: lp.closed },
  catchup: summary(all.map((x) => x.i)),
}));
