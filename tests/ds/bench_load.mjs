// Load driver for bench/ds.sh: the same Durable Streams work against any
// server (sluice or the Node reference server), over HTTP/1.1 keep-alive.
//   node bench_load.mjs append  BASE STREAMS SECONDS CONCURRENCY SIZE
//   node bench_load.mjs sse     BASE CONNS RATE SECONDS
//   node bench_load.mjs catchup BASE MIB
// BASE is the stream URL prefix (e.g. http://127.0.0.1:8080/v1/stream).
// Prints one JSON line.
import http from "node:http";

const [mode, base, ...args] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 4096 });
const tag = `${process.pid}-${Date.now()}`;

function request(method, url, headers, body) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

async function create(name, ctype = "text/plain") {
  const r = await request("PUT", `${base}/${name}`, { "content-type": ctype });
  if (r.status !== 201 && r.status !== 200) throw new Error(`PUT ${name}: ${r.status}`);
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function append() {
  const [streams, seconds, conc, size] = args.map(Number);
  const names = [];
  for (let i = 0; i < streams; i++) names.push(`bench-append-${tag}-${i}`);
  for (let i = 0; i < names.length; i += 64) await Promise.all(names.slice(i, i + 64).map((n) => create(n)));
  const body = Buffer.alloc(size, 120);
  let done = 0, errors = 0, next = 0;
  const lat = [];
  const end = performance.now() + seconds * 1000;
  async function worker() {
    while (performance.now() < end) {
      const name = names[next++ % names.length];
      const t0 = performance.now();
      const r = await request("POST", `${base}/${name}`, { "content-type": "text/plain" }, body).catch(() => ({ status: 0 }));
      if (r.status === 204 || r.status === 200) {
        done++;
        lat.push(performance.now() - t0);
      } else errors++;
    }
  }
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conc }, worker));
  const s = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  console.log(JSON.stringify({ mode, streams, concurrency: conc, size, appends: done, errors,
    appends_per_s: Math.round(done / s), ack_p50_ms: pct(lat, 50), ack_p99_ms: pct(lat, 99) }));
}

async function sse() {
  const [conns, rate, seconds] = args.map(Number);
  const name = `bench-sse-${tag}`;
  await create(name);
  const lat = [];
  let delivered = 0, opened = 0;
  const readers = [];
  await new Promise((resolve, reject) => {
    for (let i = 0; i < conns; i++) {
      const req = http.get(`${base}/${name}?offset=now&live=sse`, { agent }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`SSE ${res.statusCode}`));
        res.setEncoding("utf8");
        let buf = "";
        res.on("data", (s) => {
          buf += s;
          let k;
          while ((k = buf.indexOf("\n\n")) >= 0) {
            const ev = buf.slice(0, k);
            buf = buf.slice(k + 2);
            if (!ev.startsWith("event: data")) continue;
            const now = performance.now();
            for (const line of ev.split("\n")) {
              if (!line.startsWith("data:")) continue;
              for (const m of line.slice(5).matchAll(/t=([0-9.]+);/g)) {
                lat.push(now - Number(m[1]));
                delivered++;
              }
            }
          }
        });
        if (++opened === conns) resolve();
      });
      req.on("error", reject);
      readers.push(req);
    }
  });
  await new Promise((r) => setTimeout(r, 500));
  const interval = 1000 / rate;
  const end = performance.now() + seconds * 1000;
  let sent = 0, t = performance.now();
  while (performance.now() < end) {
    const body = `t=${performance.now().toFixed(3)};`;
    request("POST", `${base}/${name}`, { "content-type": "text/plain" }, body).catch(() => {});
    sent++;
    t += interval;
    const wait = t - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await new Promise((r) => setTimeout(r, 1000));
  for (const r of readers) r.destroy();
  lat.sort((a, b) => a - b);
  console.log(JSON.stringify({ mode, conns, rate, seconds, sent, delivered, expected: sent * conns,
    p50_ms: pct(lat, 50), p99_ms: pct(lat, 99), max_ms: lat[lat.length - 1] ?? null }));
}

async function catchup() {
  const [mib] = args.map(Number);
  const name = `bench-catchup-${tag}`;
  await create(name, "application/octet-stream");
  const chunk = Buffer.alloc(64 * 1024, 97);
  for (let i = 0; i < mib * 16; i += 16)
    await Promise.all(Array.from({ length: Math.min(16, mib * 16 - i) }, () =>
      request("POST", `${base}/${name}`, { "content-type": "application/octet-stream" }, chunk)));
  let offset = "-1", bytes = 0, responses = 0;
  const t0 = performance.now();
  for (;;) {
    const r = await request("GET", `${base}/${name}?offset=${offset}`, {});
    bytes += r.body.length;
    responses++;
    offset = r.headers["stream-next-offset"];
    if (r.headers["stream-up-to-date"] === "true") break;
  }
  const s = (performance.now() - t0) / 1000;
  console.log(JSON.stringify({ mode, mib, bytes, responses, seconds: s, mb_per_s: +(bytes / 1e6 / s).toFixed(1) }));
}

await ({ append, sse, catchup })[mode]();
process.exit(0);
