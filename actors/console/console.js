// sluice console: polls /health, /v1/sessions and /debug/connections on this
// origin, and live-tails sessions over EventSource. `#tail=a,b&from=1` tails
// sessions a and b from seq 1 (default: live). Everything a tail received is
// kept on window.sluiceConsole so tools (and tests) can read it.
'use strict';

const TAIL_KEEP = 10000;      // events kept per tail (older ones are dropped, counted)
const TAIL_SHOW = 50;         // events shown per tail
const CHART_POINTS = 120;     // samples per chart (one a second)
// EventSource has no wildcard listener: the types sluice itself emits, plus
// any named in #types=a,b.
const BASE_TYPES = ['message', 'sluice.gap', 'sluice.closed', 'sluice.expired',
                    'run.start', 'run.stdout', 'run.stderr', 'run.exit'];

const state = window.sluiceConsole = {
  tails: {},          // id -> {state, opens, errors, events: [{id, type, data}], dropped, lastId}
  sessions: [],
  health: null,
  connections: null,
  protocol: '',
};

const $ = (sel) => document.querySelector(sel);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function getJSON(path) {
  const r = await fetch(path, {cache: 'no-store'});
  if (!r.ok) throw new Error(path + ': ' + r.status);
  return r.json();
}

// ---- hash: which sessions to tail -----------------------------------------

function hashParams() {
  const p = new URLSearchParams(location.hash.slice(1));
  const list = (k) => (p.get(k) || '').split(',').map((s) => s.trim()).filter(Boolean);
  return {tail: list('tail'), types: list('types'), from: p.get('from') || ''};
}

function setTailList(ids) {
  const p = new URLSearchParams(location.hash.slice(1));
  if (ids.length) p.set('tail', ids.join(',')); else p.delete('tail');
  location.hash = p.toString().replace(/%2C/g, ',');
}

// ---- live tails -----------------------------------------------------------

function openTail(id, from, types) {
  const t = {state: 'connecting', opens: 0, errors: 0, events: [], dropped: 0, lastId: 0,
             es: null, view: null};
  let url = '/v1/sessions/' + encodeURIComponent(id) + '/events';
  if (from) url += '?from=' + encodeURIComponent(from);
  const es = new EventSource(url);
  t.es = es;
  es.onopen = () => { t.state = 'open'; t.opens++; renderTail(id); };
  es.onerror = () => {
    t.errors++;
    t.state = es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
    renderTail(id);
  };
  const onEvent = (ev) => {
    const seq = Number(ev.lastEventId);
    t.events.push({id: seq, type: ev.type, data: ev.data});
    if (t.events.length > TAIL_KEEP) { t.events.shift(); t.dropped++; }
    if (seq) t.lastId = seq;
    if (ev.type === 'sluice.closed') { es.close(); t.state = 'closed'; }
    renderTail(id);
  };
  for (const type of new Set(BASE_TYPES.concat(types))) es.addEventListener(type, onEvent);
  return t;
}

function syncTails() {
  const {tail, types, from} = hashParams();
  for (const id of Object.keys(state.tails)) {
    if (!tail.includes(id)) {
      state.tails[id].es.close();
      if (state.tails[id].view) state.tails[id].view.remove();
      delete state.tails[id];
    }
  }
  for (const id of tail) {
    if (!state.tails[id]) state.tails[id] = openTail(id, from, types);
    renderTail(id);
  }
  checkConnectionLimit();
}

function renderTail(id) {
  const t = state.tails[id];
  if (!t) return;
  if (!t.view) {
    t.view = el('div', undefined, 'tail');
    const h = el('h3');
    h.append(el('span', id), el('span', '', 'state'));
    t.view.append(h, el('ol'));
    t.view.dataset.session = id;
    $('#tails').append(t.view);
  }
  const st = t.view.querySelector('.state');
  st.textContent = t.state + ' · ' + (t.events.length + t.dropped);
  st.className = 'state ' + t.state;
  const ol = t.view.querySelector('ol');
  ol.replaceChildren(...t.events.slice(-TAIL_SHOW).map((e) => {
    const li = el('li');
    li.append(el('span', e.id + ' ' + e.type + ' '), document.createTextNode(e.data));
    return li;
  }));
  ol.scrollTop = ol.scrollHeight;
}

// Over HTTP/1.1 every EventSource holds one connection, and browsers open
// at most 6 per origin: the rest wait. HTTP/2 (TLS) multiplexes them all.
function checkConnectionLimit() {
  const n = Object.keys(state.tails).length;
  const w = $('#warning');
  const h1 = state.protocol && !state.protocol.startsWith('h2') && !state.protocol.startsWith('h3');
  w.hidden = !(h1 && n > 5);
  w.textContent = 'This page came over ' + state.protocol + ': the browser opens at most 6 ' +
    'connections to this origin, so only the first tails (and no further requests) can run. ' +
    'Serve sluice over TLS (HTTP/2) to tail more sessions at once.';
}

// ---- sessions -------------------------------------------------------------

function fmtAge(ns) {
  if (!ns) return '';
  const s = Math.max(0, Date.now() / 1000 - ns / 1e9);
  return s < 60 ? s.toFixed(0) + ' s' : s < 3600 ? (s / 60).toFixed(0) + ' min' : (s / 3600).toFixed(1) + ' h';
}

function renderSessions() {
  const rows = state.sessions.map((s) => {
    const tr = el('tr');
    const t = state.tails[s.id];
    const lag = t && t.lastId ? Math.max(0, s.last_seq - t.lastId) : '';
    for (const v of [s.id, s.events, s.bytes, s.last_seq, s.subscribers, fmtAge(s.last_activity_ns), lag])
      tr.append(el('td', v));
    const b = el('button', t ? 'stop' : 'tail');
    b.onclick = () => {
      const ids = hashParams().tail.filter((x) => x !== s.id);
      if (!t) ids.push(s.id);
      setTailList(ids);
    };
    const td = el('td');
    td.append(b);
    tr.append(td);
    tr.dataset.session = s.id;
    return tr;
  });
  $('#sessions tbody').replaceChildren(...rows);
}

async function pollSessions() {
  const list = await getJSON('/v1/sessions?limit=100');
  const seen = new Set(list.sessions.map((s) => s.id));
  // Tailed sessions beyond the first page still show (and their lag).
  for (const id of Object.keys(state.tails)) {
    if (seen.has(id)) continue;
    try { list.sessions.push(await getJSON('/v1/sessions/' + encodeURIComponent(id))); } catch (e) { /* not yet created */ }
  }
  state.sessions = list.sessions;
  renderSessions();
}

// ---- health charts --------------------------------------------------------

const series = {connections: [], deliveries: [], lag: [], rss: []};
let lastDelivered = null;

function drawChart(name, fmt) {
  const data = series[name];
  const c = $('#c-' + name);
  const g = c.getContext('2d');
  g.clearRect(0, 0, c.width, c.height);
  $('#v-' + name).textContent = data.length ? fmt(data[data.length - 1]) : '';
  if (data.length < 2) return;
  const max = Math.max(1e-9, ...data) * 1.1;
  const step = c.width / (CHART_POINTS - 1);
  const x0 = c.width - step * (data.length - 1);
  g.beginPath();
  data.forEach((v, i) => {
    const x = x0 + i * step, y = c.height - 2 - (v / max) * (c.height - 4);
    if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
  });
  g.strokeStyle = '#2e6bd8';
  g.lineWidth = 1.5;
  g.stroke();
  g.lineTo(c.width, c.height);
  g.lineTo(x0, c.height);
  g.fillStyle = 'rgba(46, 107, 216, 0.12)';
  g.fill();
}

function push(name, v) {
  series[name].push(v);
  if (series[name].length > CHART_POINTS) series[name].shift();
}

async function pollHealth() {
  const h = await getJSON('/health');
  const now = performance.now();
  state.health = h;
  push('connections', h.connections || 0);
  const delivered = (h.events && h.events.delivered) || 0;
  if (lastDelivered) push('deliveries', Math.max(0, (delivered - lastDelivered.v) / ((now - lastDelivered.t) / 1000)));
  lastDelivered = {v: delivered, t: now};
  push('lag', Math.max(0, ...(h.reactors || []).map((r) => r.loop_lag_ms_max || 0)));
  push('rss', (h.rss_bytes || 0) / 1048576);
  drawChart('connections', (v) => v.toFixed(0));
  drawChart('deliveries', (v) => v.toFixed(0));
  drawChart('lag', (v) => v.toFixed(2));
  drawChart('rss', (v) => v.toFixed(1));
  $('#status').textContent = 'up ' + (h.uptime_s || 0).toFixed(0) + ' s' + (h.busy ? ' · busy' : '');
}

// ---- worst connections (the watchdog's view) -------------------------------

async function pollConnections() {
  const d = await getJSON('/debug/connections?sort=sendq&limit=10');
  state.connections = d;
  $('#conns tbody').replaceChildren(...d.rows.map((r) => {
    const tr = el('tr');
    for (const v of [r.peer, r.proto, r.age_s, r.streams, r.outq_bytes, r.lag_events,
                     r.sendq === undefined ? '' : r.sendq, r.watchdog || ''])
      tr.append(el('td', v));
    return tr;
  }));
}

// Each poll runs again only after its previous answer: over HTTP/1.1 a
// request may wait behind the tails for a free connection, and must not pile up.
function every(ms, fn) {
  const run = async () => {
    try { await fn(); } catch (e) { $('#status').textContent = String(e.message || e); }
    setTimeout(run, ms);
  };
  run();
}

function start() {
  const nav = performance.getEntriesByType('navigation')[0];
  state.protocol = (nav && nav.nextHopProtocol) || '';
  $('#proto').textContent = state.protocol;
  window.addEventListener('hashchange', syncTails);
  syncTails();
  every(1000, pollHealth);
  every(2000, pollSessions);
  every(2000, pollConnections);
}

start();
