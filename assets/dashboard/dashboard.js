"use strict";
const POLL_MS = 2000;      // how often hosts and counters are refreshed
const FEED_KEEP = 200;     // feed rows kept; older ones are dropped
const RETRY_MS = 3000;     // pause before reopening a closed feed
const TOKEN_KEY = "mesync.token";
const CHART_SECONDS = 600; // the chart's width: 10 minutes, one point a second
const COUNTERS = [
  ["accepted", "accepted"], ["duplicate", "duplicate"], ["rejected", "rejected"],
  ["delivered", "delivered"], ["acked", "acked"], ["expired", "expired"],
  ["open_streams", "open streams"],
];
const $ = (id) => document.getElementById(id);

let token = sessionStorage.getItem(TOKEN_KEY);
let authed = false;
let pollTimer = 0, retryTimer = 0, feed = null, feedState = "connecting";
let hosts = [], metrics = {}, previous = null, hubUp = true, updatedAt = null;
let sortKey = "id", sortDir = 1;
let incoming = [], received = 0, paused = false;
// The hub's last messages from before the page opened, shown below the live
// ones once; ids that came live first are not shown twice.
let older = [], seeded = false, perSecond = null;
const liveIds = new Set();
const dirty = new Set();
let frameQueued = false;

class Unauthorized extends Error {}

// A link may carry the token in its fragment (/#token=...): fragments never
// reach the server, and the token is moved to sessionStorage and off the URL.
function tokenFromFragment() {
  const m = /^#token=(.+)$/.exec(location.hash);
  if (!m) return;
  token = decodeURIComponent(m[1]);
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, "", location.pathname + location.search);
}

async function fetchHub(path) {
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (resp.status === 401) throw new Unauthorized();
  if (!resp.ok) throw new Error(path + " answered " + resp.status);
  return resp;
}

async function poll() {
  clearTimeout(pollTimer);
  try {
    const [h, m, a] = await Promise.all([
      fetchHub("/v1/hosts").then((r) => r.json()),
      fetchHub("/metrics").then((r) => r.text()),
      fetchHub("/v1/activity?recent=false").then((r) => r.json()),
    ]);
    if (!authed) signedIn();
    hosts = h.hosts;
    perSecond = a.per_second;
    previous = updatedAt ? { at: updatedAt, metrics } : null;
    metrics = parseMetrics(m);
    updatedAt = Date.now();
    hubUp = true;
    $("status").title = "";
    redraw("hosts", "counters", "status", "chart");
  } catch (e) {
    if (e instanceof Unauthorized) return askForToken();
    hubUp = false;
    $("status").title = String(e.message || e);
    redraw("status");
  }
  pollTimer = setTimeout(poll, POLL_MS);
}

// Prometheus text: only the few sample lines the counters need.
function parseMetrics(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const m = /^mesync_(?:messages_(\w+)_total|(open_streams)) (\S+)$/.exec(line);
    if (m) out[m[1] || m[2]] = Number(m[3]);
  }
  return out;
}

function signedIn() {
  authed = true;
  $("login").hidden = true;
  $("board").hidden = false;
  $("forget").hidden = !token;
  openFeed();
}

function askForToken() {
  const refused = Boolean(token);
  signOut();
  $("login-error").textContent = refused
    ? "The hub refused that token. Check the hub's MESYNC_TOKEN and try again." : "";
  $("login-error").hidden = !refused;
  $("login").hidden = false;
  $("token").value = "";
  $("token").focus();
  setStatus("token needed", "warn");
}

function signOut() {
  authed = false;
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  clearTimeout(pollTimer);
  closeFeed();
  $("board").hidden = true;
  $("forget").hidden = true;
}

// EventSource cannot send headers, so the stream takes the token as ?token=.
function openFeed() {
  closeFeed();
  const url = "/v1/stream" + (token ? "?token=" + encodeURIComponent(token) : "");
  const es = new EventSource(url);
  feed = es;
  es.onopen = () => {
    feedState = "live";
    redraw("status");
    if (!seeded) seedFeed();
  };
  es.addEventListener("message", (ev) => took(ev.data));
  es.onerror = () => {
    // A network error reconnects by itself; an error answer closes the source.
    feedState = "reconnecting";
    if (es.readyState === EventSource.CLOSED) {
      retryTimer = setTimeout(() => { if (authed) openFeed(); }, RETRY_MS);
    }
    redraw("status");
  };
}

// Once the feed is live (so nothing falls between the two), the hub's last
// messages fill the feed below whatever arrived live meanwhile.
async function seedFeed() {
  try {
    const a = await fetchHub("/v1/activity").then((r) => r.json());
    if (seeded) return;
    seeded = true;
    older = a.recent.filter((m) => !liveIds.has(m.id));
    liveIds.clear();
    received += older.length;
    redraw("feed");
  } catch (e) {
    // Only the history is missing; the live feed goes on.
  }
}

function closeFeed() {
  clearTimeout(retryTimer);
  if (feed) feed.close();
  feed = null;
  feedState = "connecting";
}

function took(data) {
  let msg;
  try { msg = JSON.parse(data); } catch { return; }
  received++;
  if (!seeded) liveIds.add(msg.id);
  incoming.push(msg);
  // Background tabs get no animation frames: keep only what could be shown.
  if (incoming.length > FEED_KEEP) incoming.splice(0, incoming.length - FEED_KEEP);
  redraw("feed");
}

// Changes are collected and drawn once per animation frame, so a fast feed
// costs one DOM update per frame, not one per message.
function redraw(...parts) {
  parts.forEach((p) => dirty.add(p));
  if (!frameQueued) {
    frameQueued = true;
    requestAnimationFrame(draw);
  }
}

function draw() {
  frameQueued = false;
  if (dirty.has("status")) drawStatus();
  if (dirty.has("counters")) drawCounters();
  if (dirty.has("hosts")) drawHosts();
  if (dirty.has("feed")) drawFeed();
  if (dirty.has("chart")) drawChart();
  dirty.clear();
}

function setStatus(text, level) {
  $("status").textContent = text;
  $("status").className = "pill " + level;
}

function drawStatus() {
  if (!hubUp) setStatus("hub unreachable, retrying", "bad");
  else if (!authed) return;
  else if (paused) setStatus("feed paused", "warn");
  else if (feedState === "live") setStatus("live", "ok");
  else setStatus("feed " + feedState, "warn");
  $("updated").textContent = updatedAt ? "updated " + clock(new Date(updatedAt)) : "";
}

function drawCounters() {
  const box = $("counters");
  if (!box.firstChild) {
    for (const [key, label] of COUNTERS) {
      const card = el("div", "counter");
      card.append(el("div", "value"), el("div", "label", label), el("div", "rate"));
      card.dataset.key = key;
      box.append(card);
    }
  }
  for (const card of box.children) {
    const key = card.dataset.key, value = metrics[key] ?? 0;
    card.children[0].textContent = value.toLocaleString("en-US");
    // Every message counter shows its rate over the last poll (2 s); the
    // open streams are a level, not a count, and have none.
    let rate = "\u00a0";
    if (previous && key !== "open_streams") {
      const per = (value - (previous.metrics[key] ?? 0)) / ((updatedAt - previous.at) / 1000);
      rate = per > 0 ? "+" + (per < 10 ? per.toFixed(1) : Math.round(per)) + "/s" : "0/s";
    }
    card.children[2].textContent = rate;
  }
}

function hostValue(h, key) {
  if (key === "state") return h.streams > 0 ? 1 : 0;
  if (key === "last_seen" || key === "registered_at") return Date.parse(h[key]) || 0;
  return h[key];
}

function drawHosts() {
  const needle = $("filter").value.trim().toLowerCase();
  const shown = hosts.filter((h) => h.id.toLowerCase().includes(needle));
  shown.sort((a, b) => {
    const x = hostValue(a, sortKey), y = hostValue(b, sortKey);
    return (x < y ? -1 : x > y ? 1 : a.id < b.id ? -1 : 1) * sortDir;
  });
  const rows = document.createDocumentFragment();
  for (const h of shown) rows.append(hostRow(h));
  $("hosts").tBodies[0].replaceChildren(rows);
  $("hosts-empty").hidden = hosts.length > 0;
  const connected = hosts.filter((h) => h.streams > 0).length;
  const pending = hosts.reduce((n, h) => n + h.pending, 0);
  let summary = hosts.length + " registered \u00b7 " + connected + " connected \u00b7 "
    + pending.toLocaleString("en-US") + " pending";
  if (needle) summary += " (" + shown.length + " shown)";
  $("hosts-summary").textContent = summary;
  $("hosts-summary").title = summary;
  for (const th of $("hosts").tHead.rows[0].cells) {
    const on = th.dataset.key === sortKey;
    th.setAttribute("aria-sort", on ? (sortDir > 0 ? "ascending" : "descending") : "none");
  }
}

function hostRow(h) {
  const tr = document.createElement("tr");
  const up = h.streams > 0;
  const state = el("td", up ? "connected" : "");
  state.append(el("span", "dot"), up ? "connected" : "offline");
  state.title = h.streams + " open stream" + (h.streams === 1 ? "" : "s");
  const pending = el("td", "num" + (h.pending > 0 ? " backlog" : ""),
    h.pending.toLocaleString("en-US"));
  const seen = el("td", "", up ? "now" : h.last_seen ? ago(h.last_seen) : "never");
  seen.title = h.last_seen || "";
  const reg = el("td", "muted", h.registered_at ? ago(h.registered_at) : "never");
  reg.title = h.registered_at || "";
  tr.append(el("td", "host", h.id), state, pending, seen, reg);
  return tr;
}

function drawFeed() {
  if (paused) return;
  const list = $("feed");
  const rows = document.createDocumentFragment();
  for (let i = incoming.length - 1; i >= 0; i--) rows.append(feedRow(incoming[i]));
  incoming = [];
  list.prepend(rows);
  const old = document.createDocumentFragment();
  for (let i = older.length - 1; i >= 0; i--) old.append(feedRow(older[i]));
  older = [];
  list.append(old);
  while (list.children.length > FEED_KEEP) list.lastChild.remove();
  $("feed-empty").hidden = list.children.length > 0;
  $("feed-summary").textContent = received.toLocaleString("en-US") + " seen"
    + (received > FEED_KEEP ? " \u00b7 newest " + FEED_KEEP + " shown" : "");
}

// Two lines, newest second at the right edge, scaled to the busiest second.
function drawChart() {
  if (!perSecond) return;
  const series = { accepted: perSecond.accepted, delivered: perSecond.delivered };
  const peak = Math.max(0, ...series.accepted, ...series.delivered);
  const max = Math.max(1, peak);
  for (const [name, values] of Object.entries(series)) {
    const start = CHART_SECONDS - values.length;
    const points = values.map((v, i) => (start + i) + "," + (98 - (v / max) * 94).toFixed(1));
    $("chart-" + name).setAttribute("points", points.join(" "));
  }
  $("chart-max").textContent = "peak " + peak.toLocaleString("en-US") + "/s";
}

function feedRow(m) {
  const li = document.createElement("li");
  const created = new Date(m.created_at);
  const time = el("span", "time", isNaN(created) ? "" : clock(created));
  time.title = String(m.created_at);
  const line1 = el("div", "line1");
  line1.append(time, el("span", "type", String(m.type)),
    el("span", "route", m.source + " \u2192 " + (m.target == null ? "all" : m.target)));
  if (m.priority && m.priority !== "normal") {
    line1.append(el("span", "prio " + m.priority, String(m.priority)));
  }
  const payload = JSON.stringify(m.payload) ?? "";
  const line2 = el("div", "line2");
  line2.append(el("span", "id", String(m.id)), " ", el("span", "payload", payload.slice(0, 300)));
  line2.title = payload.slice(0, 2000);
  li.append(line1, line2);
  return li;
}

// Every element the page makes goes through here: text is set with
// textContent, so message data can never become markup.
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function clock(d) {
  return d.toLocaleTimeString("en-GB", { hour12: false });
}

function ago(iso) {
  const t = Date.parse(iso);
  if (isNaN(t)) return "";
  const s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  setStatus("checking token", "warn");
  poll();
});
$("forget").addEventListener("click", () => { signOut(); askForToken(); });
$("filter").addEventListener("input", () => redraw("hosts"));
$("hosts").tHead.addEventListener("click", (ev) => {
  const key = ev.target.dataset && ev.target.dataset.key;
  if (!key) return;
  sortDir = key === sortKey ? -sortDir : (key === "id" ? 1 : -1);
  sortKey = key;
  redraw("hosts");
});
$("pause").addEventListener("click", () => {
  paused = !paused;
  $("pause").textContent = paused ? "Resume" : "Pause";
  redraw("feed", "status");
});

tokenFromFragment();
poll();
