#!/usr/bin/env node
// Reference SSE broadcaster: the publish/subscribe subset of sluice's HTTP
// API, written the way Node event-stream servers are commonly written today.
// It exists so that bench/ can compare sluiced against a fair, idiomatic
// peer on the same load.
//
//   POST /v1/sessions/{id}/events   body = data, ?type= or Sluice-Event-Type
//                                   -> 200 {"seq":N}
//   GET  /v1/sessions/{id}/events   SSE; Last-Event-ID or ?from=SEQ|live
//   PUT  /v1/sessions/{id}          create (201, or 200 if it existed)
//   DELETE /v1/sessions/{id}        204; ends the session's streams
//   GET  /v1/sessions/{id}          stats
//   GET  /health                    rss_bytes, open_fds, loop lag, counts
//
// One port serves HTTP/2 cleartext with prior knowledge and HTTP/1.1: the
// first bytes of each connection pick the protocol (the h2 preface starts
// with "PRI * HTTP/2.0"). Both protocols share one request handler through
// the http2 compatibility API, as an Express-style app would.
//
// The broadcast path is the common one: the SSE block is built once per
// event (a string), appended to an in-memory log, and written to each
// subscriber with res.write(). Like the servers it stands in for, it does not
// bound what a slow subscriber buffers (res.write's return value is ignored),
// and the log is bounded only by --log-max events per session (trimmed in
// batches, so it may briefly hold up to 1/8 more).
//
// No npm dependencies. Usage:
//   node server.js [--host 127.0.0.1] [--port 8090] [--ready-file FILE]
//                  [--log-max 100000] [--keepalive 15]
// With --port 0 it picks a free port; the bound address is printed as
// `ready http=HOST:PORT` on stdout and written as `http=HOST:PORT` to the
// ready file.
'use strict';

const http = require('node:http');
const http2 = require('node:http2');
const net = require('node:net');
const fs = require('node:fs');
const { monitorEventLoopDelay } = require('node:perf_hooks');

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 8090, readyFile: null, logMax: 100000, keepalive: 15 };
  const names = { '--host': 'host', '--port': 'port', '--ready-file': 'readyFile',
                  '--log-max': 'logMax', '--keepalive': 'keepalive' };
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    let v;
    const eq = a.indexOf('=');
    if (eq > 0) { v = a.slice(eq + 1); a = a.slice(0, eq); }
    if (a === '--help' || a === '-h') {
      process.stdout.write('usage: server.js [--host H] [--port P] [--ready-file F] ' +
                           '[--log-max N] [--keepalive S]\n');
      process.exit(0);
    }
    const key = names[a];
    if (!key) { console.error(`server.js: unknown flag ${a}`); process.exit(2); }
    if (v === undefined) v = argv[++i];
    if (v === undefined) { console.error(`server.js: ${a} needs a value`); process.exit(2); }
    opts[key] = (key === 'host' || key === 'readyFile') ? v : Number(v);
    if (key !== 'host' && key !== 'readyFile' && !Number.isFinite(opts[key])) {
      console.error(`server.js: ${a} needs a number`); process.exit(2);
    }
  }
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
const ID_RE = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const TYPE_RE = /^[A-Za-z0-9._:-]{1,64}$/;
const MAX_EVENT_BYTES = 1 << 20;

const sessions = new Map(); // id -> { seq, log: [{seq, block}], subs: Set<res> }
const stats = { published: 0, delivered: 0, connections: 0, streams: 0 };
const lag = monitorEventLoopDelay({ resolution: 10 });
lag.enable();

function sendJson(res, status, obj, headers) {
  const body = JSON.stringify(obj);
  res.writeHead(status, Object.assign({ 'content-type': 'application/json',
                                        'content-length': Buffer.byteLength(body) }, headers));
  res.end(body);
}

function sendError(res, status, code, message, headers) {
  sendJson(res, status, { error: code, message }, headers);
}

// The SSE wire form of one event, built once and shared by every subscriber.
function sseBlock(seq, type, data) {
  const lines = data.split(/\r\n|\r|\n/);
  let out = `id: ${seq}\nevent: ${type}\n`;
  for (const line of lines) out += `data: ${line}\n`;
  return out + '\n';
}

function getSession(id, create) {
  let s = sessions.get(id);
  if (!s && create) {
    s = { seq: 0, log: [], subs: new Set(), created: Date.now() };
    sessions.set(id, s);
  }
  return s;
}

function publish(s, type, data) {
  const seq = ++s.seq;
  const block = sseBlock(seq, type, data);
  s.log.push({ seq, block });
  // Trim in batches: shifting a 100k-entry array on every publish would be
  // O(n) per event, which no real server would ship.
  if (s.log.length > opts.logMax + Math.max(1024, opts.logMax >> 3)) {
    s.log.splice(0, s.log.length - opts.logMax);
  }
  for (const res of s.subs) res.write(block);
  stats.published++;
  stats.delivered += s.subs.size;
  return seq;
}

function handlePublish(req, res, id, url) {
  const type = url.searchParams.get('type') || req.headers['sluice-event-type'] || 'message';
  if (!TYPE_RE.test(type)) return sendError(res, 400, 'invalid_type', 'bad event type');
  const chunks = [];
  let size = 0;
  let tooBig = false;
  req.on('data', (c) => {
    size += c.length;
    if (size > MAX_EVENT_BYTES) tooBig = true; else chunks.push(c);
  });
  req.on('end', () => {
    if (tooBig) return sendError(res, 413, 'too_large', 'event too large');
    const s = getSession(id, true);
    const seq = publish(s, type, Buffer.concat(chunks).toString('utf8'));
    sendJson(res, 200, { seq });
  });
}

// First seq the subscriber wants: Last-Event-ID wins over ?from=, default live.
function startSeq(req, url, s) {
  const last = req.headers['last-event-id'];
  if (last !== undefined && /^\d+$/.test(last)) return Number(last) + 1;
  const from = url.searchParams.get('from');
  if (from !== null && /^\d+$/.test(from)) return Math.max(1, Number(from));
  return s.seq + 1;
}

function handleSubscribe(req, res, id, url) {
  const s = getSession(id, false);
  if (!s) return sendError(res, 404, 'not_found', 'unknown session');
  const first = startSeq(req, url, s);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  if (res.flushHeaders) res.flushHeaders();
  if (s.log.length && first <= s.seq) {
    const oldest = s.log[0].seq;
    if (first < oldest) {
      res.write(`id: ${oldest - 1}\nevent: sluice.gap\ndata: {"from":${first},"to":${oldest - 1}}\n\n`);
    }
    const start = Math.max(0, first - oldest);
    for (let i = start; i < s.log.length; i++) res.write(s.log[i].block);
  }
  s.subs.add(res);
  stats.streams++;
  const ka = setInterval(() => res.write(': keepalive\n\n'), opts.keepalive * 1000);
  const done = () => {
    clearInterval(ka);
    if (s.subs.delete(res)) stats.streams--;
  };
  res.on('close', done);
  req.on('close', done);
}

function sessionStats(id, s) {
  const first = s.log.length ? s.log[0].seq : 0;
  return { id, events: s.seq, first_seq: first, last_seq: s.log.length ? s.seq : 0,
           subscribers: s.subs.size, created_ns: s.created * 1e6 };
}

function health() {
  let fds = -1;
  try { fds = fs.readdirSync('/proc/self/fd').length; } catch (_) { /* not Linux */ }
  const lagMax = lag.max / 1e6;
  lag.reset();
  return {
    uptime_s: process.uptime(), rss_bytes: process.memoryUsage().rss, open_fds: fds,
    connections: stats.connections, streams: stats.streams, sessions: sessions.size,
    busy: false, reactors: [{ loop_lag_ms_max: lagMax }],
    events: { published: stats.published, delivered: stats.delivered },
  };
}

function handleSession(req, res, id) {
  const s = getSession(id, false);
  if (req.method === 'PUT') {
    if (s) return sendJson(res, 200, sessionStats(id, s));
    return sendJson(res, 201, sessionStats(id, getSession(id, true)));
  }
  if (req.method === 'DELETE') {
    if (!s) return sendError(res, 404, 'not_found', 'unknown session');
    sessions.delete(id);
    for (const sub of s.subs) sub.end();
    res.writeHead(204);
    return res.end();
  }
  if (req.method === 'GET') {
    if (!s) return sendError(res, 404, 'not_found', 'unknown session');
    return sendJson(res, 200, sessionStats(id, s));
  }
  return sendError(res, 405, 'method_not_allowed', 'method not allowed',
                   { allow: 'GET, PUT, DELETE' });
}

function route(req, res) {
  const url = new URL(req.url, 'http://peer');
  const parts = url.pathname.split('/');
  if (url.pathname === '/health' && req.method === 'GET') return sendJson(res, 200, health());
  if (parts.length < 4 || parts[1] !== 'v1' || parts[2] !== 'sessions') {
    return sendError(res, 404, 'not_found', 'no such path');
  }
  let id;
  try { id = decodeURIComponent(parts[3]); } catch (_) { id = ''; }
  if (!ID_RE.test(id)) return sendError(res, 400, 'invalid_session_id', 'bad session id');
  if (parts.length === 4) return handleSession(req, res, id);
  if (parts.length !== 5 || parts[4] !== 'events') return sendError(res, 404, 'not_found', 'no such path');
  if (req.method === 'POST') return handlePublish(req, res, id, url);
  if (req.method === 'GET') return handleSubscribe(req, res, id, url);
  return sendError(res, 405, 'method_not_allowed', 'method not allowed', { allow: 'GET, POST' });
}

const h1 = http.createServer(route);
h1.keepAliveTimeout = 60000;
h1.requestTimeout = 0;
const h2 = http2.createServer({ settings: { maxConcurrentStreams: 100000 } }, route);
h2.on('sessionError', () => {});

// Sniff the first bytes of each connection: the h2 preface goes to the http2
// server, anything else to the HTTP/1.1 server.
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0');
const front = net.createServer((sock) => {
  stats.connections++;
  sock.on('close', () => { stats.connections--; });
  sock.on('error', () => {});
  sock.setNoDelay(true);
  sock.once('readable', function pick() {
    const head = sock.read();
    if (head === null) return sock.once('readable', pick);
    sock.unshift(head);
    const n = Math.min(head.length, H2_PREFACE.length);
    const isH2 = head.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
    (isH2 ? h2 : h1).emit('connection', sock);
  });
});

front.listen(opts.port, opts.host, () => {
  const addr = front.address();
  const line = `http=${addr.address}:${addr.port}`;
  if (opts.readyFile) fs.writeFileSync(opts.readyFile, line + '\n');
  process.stdout.write(`ready ${line}\n`);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    front.close();
    for (const s of sessions.values()) for (const res of s.subs) res.end();
    setTimeout(() => process.exit(0), 200).unref();
  });
}
