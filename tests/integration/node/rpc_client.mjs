// msgpack-RPC client for sluice's integration tests, written against the
// @msgpack/msgpack package over a plain net.Socket (TCP or unix socket).
//
// Usage: node rpc_client.mjs ADDR SESSION
//   ADDR is HOST:PORT or unix:PATH (as in sluiced's ready file).
//
// It publishes (str and bin data), publishes a batch, subscribes from seq 1,
// waits for every event, publishes one live event, provokes one error,
// unsubscribes and reads the session's stats, then prints one JSON line
// with what it saw; tests/integration/test_rpc_node.py asserts on it. Any
// protocol surprise or the overall deadline exits non-zero.

import net from "node:net";
import { encode, decodeMultiStream } from "@msgpack/msgpack";

const DEADLINE_MS = 15000;

const [addr, session] = process.argv.slice(2);
if (!addr || !session) {
  console.error("usage: node rpc_client.mjs HOST:PORT|unix:PATH SESSION");
  process.exit(2);
}

const deadline = setTimeout(() => {
  console.error(`rpc_client: not done within ${DEADLINE_MS} ms`);
  process.exit(3);
}, DEADLINE_MS);

function connect(address) {
  if (address.startsWith("unix:")) {
    return net.createConnection({ path: address.slice(5) });
  }
  const i = address.lastIndexOf(":");
  return net.createConnection({ host: address.slice(0, i), port: Number(address.slice(i + 1)) });
}

// One connection: requests are matched to responses by msgid; every
// message is also logged in arrival order so ordering can be checked.
class Rpc {
  constructor(socket) {
    this.socket = socket;
    this.nextId = 1;
    this.pending = new Map();
    this.log = [];
    this.events = [];
    this.waiters = [];
    this.closed = false;
  }

  async readLoop() {
    for await (const msg of decodeMultiStream(this.socket)) {
      this.handle(msg);
    }
    this.closed = true;
    for (const [, p] of this.pending) p.reject(new Error("connection closed"));
  }

  handle(msg) {
    if (!Array.isArray(msg)) throw new Error(`not an array: ${JSON.stringify(msg)}`);
    if (msg[0] === 1 && msg.length === 4) {
      this.log.push({ kind: "response", msgid: msg[1] });
      const p = this.pending.get(msg[1]);
      if (!p) throw new Error(`response to unknown msgid ${msg[1]}`);
      this.pending.delete(msg[1]);
      p.resolve({ error: msg[2], result: msg[3] });
    } else if (msg[0] === 2 && msg.length === 3) {
      this.log.push({ kind: "notification", method: msg[1], sub: msg[2][0] });
      if (msg[1] === "event") this.events.push(msg[2]);
      this.waiters = this.waiters.filter((w) => !w());
    } else {
      throw new Error(`unexpected message ${JSON.stringify(msg)}`);
    }
  }

  call(method, params) {
    const msgid = this.nextId++;
    const p = new Promise((resolve, reject) => this.pending.set(msgid, { resolve, reject }));
    this.socket.write(encode([0, msgid, method, params]));
    return p.then((r) => ({ ...r, msgid }));
  }

  async ok(method, params) {
    const r = await this.call(method, params);
    if (r.error !== null) throw new Error(`${method}: error ${JSON.stringify(r.error)}`);
    return r.result;
  }

  waitEvents(sub, count) {
    const done = () => this.events.filter((e) => e[0] === sub).length >= count;
    return new Promise((resolve) => {
      const check = () => (done() ? (resolve(), true) : false);
      if (!check()) this.waiters.push(check);
    });
  }
}

function describe(ev) {
  const [sub, sess, seq, type, data] = ev;
  const isStr = typeof data === "string";
  const bytes = isStr ? Buffer.from(data, "utf8") : Buffer.from(data);
  return { sub, session: sess, seq, type, kind: isStr ? "str" : "bin", data_hex: bytes.toString("hex") };
}

async function main() {
  const socket = connect(addr);
  await new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const rpc = new Rpc(socket);
  const reading = rpc.readLoop();
  const out = {};
  out.publish = [
    await rpc.ok("publish", [session, "message", "h\u00e9llo \u2713"]),
    await rpc.ok("publish", [session, "bin", new Uint8Array([0, 255, 13, 10, 0x80])]),
  ];
  out.batch = await rpc.ok("publish_batch", [session, [["a", "x\r\ny"], ["b", new Uint8Array([1, 2, 3])]]]);
  const before = rpc.log.length;
  const sub = await rpc.call("subscribe", [session, 1]);
  if (sub.error !== null) throw new Error(`subscribe: ${JSON.stringify(sub.error)}`);
  out.sub_id = sub.result;
  out.first_after_subscribe = rpc.log[before];
  await rpc.waitEvents(sub.result, 4);
  out.live_seq = await rpc.ok("publish", [session, "live", "tail\u0000"]);
  await rpc.waitEvents(sub.result, 5);
  out.events = rpc.events.map(describe);
  out.error = (await rpc.call("publish", [".bad", "message", "x"])).error;
  out.unknown = (await rpc.call("no_such_method", [])).error;
  out.unsubscribe = await rpc.ok("unsubscribe", [sub.result]);
  const st = await rpc.ok("session", [session]);
  out.stats = { id: st.id, events: st.events, bytes: st.bytes, last_seq: st.last_seq, subscribers: st.subscribers };
  out.notifications = rpc.log.filter((m) => m.kind === "notification").length;
  console.log(JSON.stringify(out));
  clearTimeout(deadline);
  socket.destroy();
  reading.catch(() => {}); // the read loop ends with the socket; nothing is left to read
}

main().catch((e) => {
  console.error(`rpc_client: ${e.stack || e}`);
  process.exit(1);
});
