// An EventSource follows a session with a short-lived token in
// ?access_token= (minted here with jose, HS256). When the token expires the
// server ends the stream with `event: sluice.expired`; the client then
// reconnects with a fresh token and Last-Event-ID and must receive every
// event exactly once, in order. A publisher (fetch, admin token) publishes
// across the expiry. Prints one JSON line with what was seen.
//
// usage: node sse_expiry.mjs BASE_URL SECRET SESSION COUNT TTL_S
import { SignJWT } from "jose";
import EventSource from "eventsource";

const [base, secretText, session, countText, ttlText] = process.argv.slice(2);
const count = Number(countText);
const ttl = Number(ttlText);
const secret = new TextEncoder().encode(secretText);

function mint(claims, ttlS) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlS)
    .sign(secret);
}

const seen = [];
let expired = 0;
let connects = 0;
let lastId = null;
const errors = [];

function follow(token, lastEventId) {
  return new Promise((resolve) => {
    const url = `${base}/v1/sessions/${session}/events?access_token=${encodeURIComponent(token)}` +
      (lastEventId === null ? "&from=1" : "");
    const opts = lastEventId === null ? {} : { headers: { "Last-Event-ID": lastEventId } };
    const es = new EventSource(url, opts);
    es.onopen = () => { connects++; };
    es.onmessage = (ev) => {
      seen.push(Number(ev.lastEventId));
      lastId = ev.lastEventId;
      if (seen.length >= count) { es.close(); resolve("done"); }
    };
    es.addEventListener("sluice.expired", () => {
      expired++;
      es.close(); // the old token is no good for a reconnect
      resolve("expired");
    });
    es.onerror = (e) => {
      errors.push(String(e && (e.status || e.message || e.type)));
      if (es.readyState === EventSource.CLOSED) resolve("error");
    };
  });
}

async function publisher(admin) {
  for (let i = 0; i < count; i++) {
    const r = await fetch(`${base}/v1/sessions/${session}/events`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}` },
      body: `event ${i + 1}`,
    });
    if (r.status !== 200) throw new Error(`publish ${i + 1}: ${r.status}`);
    await new Promise((res) => setTimeout(res, (ttl * 2000) / count));
  }
}

const deadline = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true, seen, expired, connects, errors }));
  process.exit(1);
}, 35000);

const admin = await mint({ sluice: { admin: true } }, 120);
const put = await fetch(`${base}/v1/sessions/${session}`, {
  method: "PUT",
  headers: { authorization: `Bearer ${admin}` },
});
if (put.status !== 201) throw new Error(`create: ${put.status}`);
const pub = publisher(admin);
let state = await follow(await mint({ sub: "node", sluice: { sub: [session] } }, ttl), null);
let rounds = 1;
while (state === "expired" && rounds < 5) {
  state = await follow(await mint({ sub: "node", sluice: { sub: [session] } }, 60), lastId);
  rounds++;
}
await pub;
clearTimeout(deadline);
console.log(JSON.stringify({ state, seen, expired, connects, errors }));
