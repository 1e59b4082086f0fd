# ruff: noqa: E501 - HTML and JavaScript lines
"""The two pages of the labelling app (plain HTML and JavaScript, no outside resources)."""

STYLE = """
body { font-family: sans-serif; margin: 1em 2em; color: #222; }
header { display: flex; gap: 2em; align-items: baseline; }
button { margin: 0.2em; padding: 0.4em 0.8em; font-size: 1em; }
kbd { border: 1px solid #888; border-radius: 3px; padding: 0 0.3em; background: #f4f4f4; }
table { border-collapse: collapse; } td, th { padding: 0.15em 0.6em; border-bottom: 1px solid #ddd; }
#main { display: flex; gap: 2em; align-items: flex-start; }
#status { color: #a33; min-height: 1.2em; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
"""

LABEL_PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nudask label</title><style>"""
    + STYLE
    + """</style></head>
<body>
<header><h1>nudask label</h1><span>annotator: <b id="who"></b>
  <a href="#" id="change">change</a></span><span id="progress"></span><a href="/qa">QA</a></header>
<form id="ask" hidden><label>Your name: <input id="annotator" autocomplete="name"></label>
  <button id="start" type="submit">Start</button></form>
<p id="status"></p>
<p id="done" hidden>Nothing left for you to label: every event has its annotators or your label.</p>
<div id="main" hidden>
  <div><div id="classes"></div>
    <p><button id="zoom-out" title="-">&minus;</button> zoom <span id="zoom">1</span>
       <button id="zoom-in" title="+">+</button> <button id="skip" title="right arrow">skip &rarr;</button></p>
    <img id="image" alt="event image"></div>
  <div><h3>Event <span id="event-id"></span></h3><table id="features"></table></div>
</div>
<script>
"use strict";
let info = null, current = null, zoom = 1, busy = false;
const $ = (id) => document.getElementById(id);
function cookie(name) {
  const m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
  return m ? decodeURIComponent(m[1]) : null;
}
function annotator() { return new URLSearchParams(location.search).get("annotator") || cookie("annotator"); }
async function call(url, body) {
  const r = await fetch(url, body === undefined ? {} : {method: "POST",
    headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) { const err = new Error(data.error || r.statusText); err.status = r.status; throw err; }
  return data;
}
function ask() { $("main").hidden = true; $("done").hidden = true; $("ask").hidden = false; $("annotator").focus(); }
$("ask").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("annotator").value.trim();
  if (!name) { $("status").textContent = "give your name"; return; }
  document.cookie = "annotator=" + encodeURIComponent(name) + "; path=/; SameSite=Strict; max-age=31536000";
  if (new URLSearchParams(location.search).has("annotator")) { history.replaceState(null, "", "/"); }
  $("ask").hidden = true; start();
});
$("change").addEventListener("click", (e) => { e.preventDefault(); ask(); });
function showImage() {
  if (current === null) return;
  $("image").src = "/image/" + current.event + ".png?zoom=" + zoom;
  $("zoom").textContent = zoom;
}
function setZoom(z) { zoom = Math.min(8, Math.max(0.5, z)); showImage(); }
$("zoom-in").onclick = () => setZoom(zoom * 2);
$("zoom-out").onclick = () => setZoom(zoom / 2);
$("skip").onclick = () => next(current ? current.event : -1);
function show(ev) {
  $("progress").textContent = "you: " + ev.progress.mine + " labelled; events complete: "
    + ev.progress.complete + " / " + ev.progress.events;
  if (ev.done) { current = null; $("main").hidden = true; $("done").hidden = false;
                 document.body.dataset.event = ""; return; }
  current = ev; $("done").hidden = true; $("main").hidden = false;
  $("event-id").textContent = Object.entries(ev.id).map(([k, v]) => k + " " + v).join(", ");
  const rows = Object.entries(ev.features).map(([k, v]) =>
    "<tr><th>" + k + "</th><td class=num>" + (typeof v === "number" && !Number.isInteger(v)
      ? v.toPrecision(4) : String(v)).replace(/</g, "&lt;") + "</td></tr>");
  $("features").innerHTML = rows.join("");
  showImage();
  document.body.dataset.event = ev.event;
}
async function next(after) {
  try { show(await call("/api/next?annotator=" + encodeURIComponent(annotator()) + "&after=" + after)); }
  catch (err) { $("status").textContent = err.message; }
}
async function label(cls) {
  if (busy || current === null) return;
  busy = true;
  try {
    await call("/api/label", {annotator: annotator(), event: current.event, class: cls});
    $("status").textContent = "";
    await next(current.event);
  } catch (err) {
    $("status").textContent = err.message;
    // 409: others completed (or settled) the event while it was shown; the message stays, the next event comes
    if (err.status === 409) await next(current.event);
  } finally { busy = false; }
}
document.addEventListener("keydown", (e) => {
  if (!$("ask").hidden || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "+" || e.key === "=") { setZoom(zoom * 2); return; }
  if (e.key === "-") { setZoom(zoom / 2); return; }
  if (e.key === "ArrowRight") { $("skip").click(); return; }
  const cls = info && info.shortcuts[e.key.toLowerCase()];
  if (cls) { e.preventDefault(); label(cls); }
});
async function start() {
  const who = annotator();
  if (!who) { ask(); return; }
  $("who").textContent = who;
  try { info = await call("/api/info?annotator=" + encodeURIComponent(who)); }
  catch (err) { $("status").textContent = err.message; return; }
  const keys = {};
  for (const [k, c] of Object.entries(info.shortcuts)) { (keys[c] = keys[c] || []).push(k); }
  $("classes").innerHTML = "";
  for (const c of info.classes) {
    const b = document.createElement("button");
    b.dataset.class = c;
    b.innerHTML = c + " " + keys[c].map((k) => "<kbd>" + k + "</kbd>").join(" ");
    b.onclick = () => label(c);
    $("classes").appendChild(b);
  }
  next(-1);
}
start();
</script></body></html>
"""
)

QA_PAGE = (
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nudask label: QA</title><style>"""
    + STYLE
    + """</style></head>
<body>
<header><h1>Quality assurance</h1><a href="/">label</a>
  <a id="export" href="/export.parquet" download="labels.parquet"><button>Export consensus (Parquet)</button></a>
</header>
<p id="status"></p>
<table id="summary">
  <tr><th>events labelled</th><td id="events" class=num></td></tr>
  <tr><th>events with two labels or more</th><td id="multiple" class=num></td></tr>
  <tr><th>raw agreement</th><td id="raw" class=num></td></tr>
  <tr><th>Cohen's kappa (two annotators)</th><td id="cohen" class=num></td></tr>
  <tr><th>Fleiss' kappa</th><td id="fleiss" class=num></td></tr>
</table>
<h3>Annotators</h3><table id="annotators"></table>
<h3>Pairs (Cohen's kappa)</h3><table id="pairs"></table>
<h3>Agreement per class</h3><table id="per-class"></table>
<h3>Disagreements</h3><table id="disagreements"></table>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const fmt = (x) => x === null || x === undefined ? "–" : Number(x).toFixed(3);
const esc = (s) => String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;");
function cookie(name) {
  const m = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
  return m ? decodeURIComponent(m[1]) : null;
}
async function settle(event, cls) {
  const who = cookie("annotator") || prompt("Your name");
  const r = await fetch("/api/settle", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({annotator: who, event: event, class: cls})});
  const data = await r.json();
  $("status").textContent = r.ok ? "settled event " + event + " as " + cls : data.error;
  load();
}
async function load() {
  const q = await (await fetch("/api/qa")).json();
  $("events").textContent = q.events_labelled;
  $("multiple").textContent = q.events_multiple;
  $("raw").textContent = fmt(q.raw_agreement);
  $("cohen").textContent = fmt(q.cohen_kappa);
  $("fleiss").textContent = fmt(q.fleiss_kappa);
  $("annotators").innerHTML = Object.entries(q.annotators).map(([a, n]) =>
    "<tr><th>" + esc(a) + "</th><td class=num>" + n + "</td></tr>").join("");
  $("pairs").innerHTML = q.pairs.map((p) => "<tr><th>" + esc(p.annotators.join(" / ")) + "</th><td class=num>"
    + p.events + " events</td><td class=num>" + fmt(p.cohen_kappa) + "</td></tr>").join("");
  $("per-class").innerHTML = Object.entries(q.per_class).map(([c, a]) =>
    "<tr><th>" + esc(c) + "</th><td class=num data-class='" + esc(c) + "'>" + fmt(a) + "</td></tr>").join("");
  $("disagreements").innerHTML = "<tr><th>event</th><th>id</th><th>labels</th><th>settled</th><th></th></tr>"
    + q.disagreements.map((d) => "<tr data-event='" + d.event + "'><td><a href='/image/" + d.event
      + ".png?zoom=2'>" + d.event + "</a></td><td>" + esc(d.key) + "</td><td>"
      + Object.entries(d.labels).map(([a, c]) => esc(a) + ": " + esc(c)).join(", ") + "</td><td class=settled>"
      + (d.settled ? esc(d.settled) : "") + "</td><td><select>"
      + q.classes.map((c) => "<option" + (c === d.settled ? " selected" : "") + ">" + esc(c) + "</option>").join("")
      + "</select> <button class=settle>settle</button></td></tr>").join("");
  for (const row of $("disagreements").querySelectorAll("tr[data-event]")) {
    row.querySelector("button").onclick = () => settle(Number(row.dataset.event), row.querySelector("select").value);
  }
  document.body.dataset.loaded = "1";
}
load();
</script></body></html>
"""
)
