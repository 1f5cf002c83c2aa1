// glurpc's page: upload an export, see the forecast. Plain JavaScript, no library, nothing
// fetched from anywhere but this server. It only calls the public API (/process_unified,
// /forecast, /draw_a_plot, /cache_management), so it shows what any client would get.
"use strict";

const MGDL_PER_MMOL = 18.0182; // cgm-format's factor, as in src/plot/units.rs
const HISTORY_POINTS = 36; // three hours of history before "now", as on the PNG charts
const FORWARD = 1; // the index /forecast reports for the next hour
const $ = (id) => document.getElementById(id);

const state = {
  file: null, // the last file chosen (kept for a retry after an API key is entered)
  handle: null,
  windows: 0, // windows of the processed upload (indices 0 .. -(windows-1))
  index: FORWARD,
  views: new Map(), // index -> compact JSON of that window
  exportUnits: "mgdl",
  seq: 0, // the newest request for the chart; older answers are dropped
  started: 0,
  lastFailure: 0, // HTTP status of the last failure (401/403 retry after a key)
};

// ---------- settings kept in the browser ----------

const store = {
  key() { try { return sessionStorage.getItem("glurpc.apiKey") || ""; } catch { return ""; } },
  setKey(v) { try { v ? sessionStorage.setItem("glurpc.apiKey", v) : sessionStorage.removeItem("glurpc.apiKey"); } catch { /* storage off */ } },
  units() { try { return localStorage.getItem("glurpc.units"); } catch { return null; } },
  setUnits(v) { try { localStorage.setItem("glurpc.units", v); } catch { /* storage off */ } },
};

// ---------- talking to the server ----------

class Failure extends Error {
  constructor(message, status = 0) { super(message); this.status = status; }
}

function explain(status, detail, retryAfter) {
  switch (status) {
    case 401: return "This server needs an API key. Enter it under \u201cAPI key\u201d above; the file is sent again with it.";
    case 403: return "The server refused this API key. Check the key under \u201cAPI key\u201d above.";
    case 413: return "This file is larger than the server accepts" + (detail ? ` (${detail})` : "") + ". Export a shorter period and try again.";
    case 429:
    case 503: return "The server is busy right now" + (retryAfter ? `; try again in ${retryAfter} seconds.` : "; try again in a moment.") + (detail ? ` (${detail})` : "");
    case 504: return "The forecast took too long. Try again in a moment.";
    default: return detail ? `The server could not do this: ${detail}` : `The server answered with an error (HTTP ${status}).`;
  }
}

async function call(path, body, { as = "json" } = {}) {
  const headers = { "content-type": "application/json" };
  const key = store.key();
  if (key) headers["x-api-key"] = key;
  let resp;
  try {
    resp = await fetch(path, { method: "POST", headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new Failure("Cannot reach the server. Check your connection and try again.");
  }
  if (!resp.ok) {
    let detail = "";
    try {
      const j = await resp.json();
      detail = typeof j.detail === "string" ? j.detail : Array.isArray(j.detail) ? j.detail.map((d) => d.msg).join("; ") : "";
    } catch { /* not JSON */ }
    throw new Failure(explain(resp.status, detail, resp.headers.get("retry-after")), resp.status);
  }
  if (as === "blob") return resp.blob();
  const j = await resp.json();
  if (j && typeof j.error === "string" && j.error) {
    const hint = /unknown cgm data format|could not detect|not a supported/i.test(j.error)
      ? " Choose an export from Dexcom Clarity, LibreView, CareLink or Nightscout, as the device's software wrote it."
      : "";
    throw new Failure(`This file could not be used: ${j.error}${hint}`, 200);
  }
  return j;
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).slice(String(r.result).indexOf(",") + 1));
    r.onerror = () => reject(new Failure("The file could not be read by the browser."));
    r.readAsDataURL(file);
  });
}

// ---------- page state ----------

function setState(s) { document.body.dataset.state = s; }
function status(text) { $("status").textContent = text; }
function showError(msg, code = 0) {
  const e = $("error");
  e.textContent = msg;
  e.hidden = false;
  state.lastFailure = code;
  status("");
  setState("error");
  if (code === 401 || code === 403) {
    $("settings").open = true;
    $("api-key").focus();
  }
}
function clearError() { $("error").hidden = true; $("error").textContent = ""; }

function units() { return $("units").value; }
function conv(mgdl) { return units() === "mmol" ? mgdl / MGDL_PER_MMOL : mgdl; }
function unitLabel() { return units() === "mmol" ? "mmol/L" : "mg/dL"; }
function fmt(mgdl) { return units() === "mmol" ? conv(mgdl).toFixed(1) : String(Math.round(mgdl)); }
function target() { return units() === "mmol" ? [3.9, 10.0] : [70, 180]; }

// Naive ISO times ("2019-10-28T16:05:00", the export's own clock) as ms, read as UTC so the
// browser's own zone never shifts them.
function ms(iso) {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)(?::(\d\d))?/.exec(iso || "");
  return m ? Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)) : NaN;
}
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n) => String(n).padStart(2, "0");
function clock(t) { const d = new Date(t); return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`; }
function day(t) { const d = new Date(t); return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`; }
function clockName(c) {
  return c === "utc" ? "UTC" : c === "local" ? "local time of the export" : "times as written in the file";
}

// ---------- the flow ----------

async function start(file) {
  if (!file) return;
  state.file = file;
  state.started = performance.now();
  state.seq += 1;
  const seq = state.seq;
  clearError();
  $("result").hidden = true;
  setState("busy");
  try {
    status(`Reading ${file.name}\u2026`);
    const b64 = await readBase64(file);
    status("Reading the export and preparing its windows\u2026");
    const p = await call("/process_unified", { csv_base64: b64, force_calculate: false });
    if (seq !== state.seq) return;
    state.handle = p.handle;
    state.windows = Math.max(0, p.total_samples | 0);
    state.views = new Map();
    status("Computing the forecast of the next hour\u2026");
    const f = await call("/forecast", { handle: p.handle, force_calculate: false });
    if (seq !== state.seq) return;
    state.views.set(FORWARD, f);
    state.exportUnits = f.display_units === "mmol/L" ? "mmol" : "mgdl";
    $("units").value = store.units() || state.exportUnits;
    const w = $("window");
    w.min = String(-(Math.max(state.windows, 1) - 1));
    w.max = String(FORWARD);
    w.value = String(FORWARD);
    w.disabled = state.windows === 0;
    state.index = FORWARD;
    $("result").hidden = false;
    show(f);
    const took = performance.now() - state.started;
    window.glurpcTiming = { dropToChartMs: took };
    status(`Forecast ready in ${(took / 1000).toFixed(2)} s. ${state.windows} past windows can be compared with what happened.`);
  } catch (e) {
    if (seq === state.seq) showError(e.message, e.status);
  }
}

async function goTo(index) {
  if (!state.handle) return;
  const seq = ++state.seq;
  state.index = index;
  $("window").value = String(index);
  windowText(index, state.views.get(index));
  const cached = state.views.get(index);
  if (cached) { show(cached); return; }
  setState("busy");
  status("Computing this window\u2026");
  try {
    const v = index === FORWARD
      ? await call("/forecast", { handle: state.handle, force_calculate: false })
      : await call("/draw_a_plot?format=json", { handle: state.handle, index, force_calculate: false });
    state.views.set(index, v);
    if (seq !== state.seq) return;
    status("");
    clearError();
    show(v);
  } catch (e) {
    if (seq === state.seq) showError(e.message, e.status);
  }
}

function windowText(index, v) {
  const out = $("window-text");
  let text;
  if (index === FORWARD) {
    text = "Next hour: the forecast from your last reading";
  } else {
    const n = state.windows;
    const pos = n + index; // 1-based from the first window
    const end = v ? ` ending ${clock(ms(v.forecast_times.at(-1)))}, ${day(ms(v.forecast_times.at(-1)))}` : "";
    text = `Back-test ${pos} of ${n}: the hour${end}, forecast against what was measured`;
  }
  out.textContent = text;
  $("window").setAttribute("aria-valuetext", text);
  $("prev").disabled = index <= -(state.windows - 1);
  $("next").disabled = index >= FORWARD;
}

function show(v) {
  windowText(state.index, v);
  summary(v);
  notes(v);
  table(v);
  draw(v);
  document.body.dataset.index = String(v.index);
  setState("ready");
}

// ---------- words ----------

function range(v, step, lo, hi) {
  return `${fmt(v.quantiles[lo][step])}\u2013${fmt(v.quantiles[hi][step])}`;
}

function summary(v) {
  const u = unitLabel();
  const last = v.history.length - 1;
  const t0 = ms(v.history_times[last]);
  const s = $("summary");
  const h = v.forecast_times.length;
  const at = (mins) => Math.min(h - 1, Math.round(mins / 5) - 1);
  if (v.actual == null) {
    $("result-title").textContent = "Your next hour";
    s.innerHTML = "";
    const older = (v.warnings || []).some((w) => w.trim().startsWith("OLDER_SEQUENCE"));
    s.append(`${older ? "Last reading of the sequence used" : "Last reading"} ${fmt(v.history[last])} ${u} at ${clock(t0)} on ${day(t0)}. `);
    for (const mins of [30, 60]) {
      const i = at(mins);
      const b = document.createElement("strong");
      b.textContent = `${fmt(v.median[i])} ${u}`;
      s.append(`In ${mins} minutes: about `, b, ` (90% range ${range(v, i, "0.05", "0.95")}). `);
    }
  } else {
    $("result-title").textContent = "Back-test: forecast against what happened";
    let err = 0;
    let inside = 0;
    v.actual.forEach((a, i) => {
      err += Math.abs(conv(v.median[i]) - conv(a));
      if (a >= v.quantiles["0.05"][i] && a <= v.quantiles["0.95"][i]) inside += 1;
    });
    const mae = err / v.actual.length;
    s.textContent = `Forecast made at ${clock(t0)} on ${day(t0)}. The median was off by ${units() === "mmol" ? mae.toFixed(1) : Math.round(mae)} ${u} on average over the hour; ${inside} of ${v.actual.length} measured values fell inside the 90% range.`;
  }
  $("chart-desc").textContent = s.textContent;
}

function notes(v) {
  const ul = $("notes");
  ul.innerHTML = "";
  const lines = Array.isArray(v.notes) ? [...v.notes] : [];
  if (v.display_units === "mmol/L") {
    lines.push("The export's readings are in mmol/L: they were converted to mg/dL for the model (1 mmol/L = 18.0182 mg/dL).");
  }
  for (const line of lines) {
    const li = document.createElement("li");
    li.textContent = line;
    ul.append(li);
  }
  if (!lines.length) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "No problems found in the data used for this forecast.";
    ul.append(li);
  }
  const li = document.createElement("li");
  li.className = "none";
  li.textContent = `The bands hold the middle 50% and 90% of the model's samples at each step. Times: ${clockName(v.clock)}.`;
  ul.append(li);
}

function table(v) {
  const u = unitLabel();
  const back = v.actual != null;
  $("numbers-caption").textContent = `Forecast in ${u}, ${clockName(v.clock)}.`;
  const head = $("numbers").tHead;
  head.innerHTML = "";
  const hr = head.insertRow();
  for (const c of ["Time", "Minutes ahead", "Median", "50% range", "90% range", ...(back ? ["Measured"] : [])]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = c;
    hr.append(th);
  }
  const body = $("numbers").tBodies[0];
  body.innerHTML = "";
  const t0 = ms(v.history_times.at(-1));
  v.forecast_times.forEach((iso, i) => {
    const t = ms(iso);
    const r = body.insertRow();
    r.dataset.step = String(i);
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = `${clock(t)}`;
    r.append(th);
    const cells = [String(Math.round((t - t0) / 60000)), fmt(v.median[i]), range(v, i, "0.25", "0.75"), range(v, i, "0.05", "0.95")];
    if (back) cells.push(fmt(v.actual[i]));
    cells.forEach((c, k) => {
      const td = r.insertCell();
      td.textContent = c;
      if (k === 1) td.dataset.col = "median";
    });
  });
}

// ---------- the chart (SVG, drawn here: a few hundred lines instead of a charting library) ----------

const NS = "http://www.w3.org/2000/svg";
function el(parent, name, attrs = {}, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, val] of Object.entries(attrs)) e.setAttribute(k, val);
  if (text !== undefined) e.textContent = text;
  parent.append(e);
  return e;
}

function niceStep(span, want) {
  const raw = span / Math.max(1, want);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

function draw(v) {
  const svg = $("chart");
  const wrap = $("chart-wrap");
  const W = Math.max(300, Math.round(wrap.clientWidth || 800));
  const H = Math.round(Math.min(520, Math.max(260, W * 0.55)));
  const narrow = W < 560;
  const M = { l: narrow ? 40 : 52, r: narrow ? 10 : 18, t: 30, b: 56 };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", W);
  svg.setAttribute("height", H);
  for (const c of [...svg.children]) if (c.tagName !== "title" && c.tagName !== "desc") c.remove();

  const n = v.history.length;
  const from = Math.max(0, n - HISTORY_POINTS);
  const hist = v.history.slice(from).map((y, i) => ({ t: ms(v.history_times[from + i]), y: conv(y), mgdl: y }));
  const last = hist[hist.length - 1];
  const steps = v.forecast_times.map((iso, i) => ({
    t: ms(iso),
    med: conv(v.median[i]),
    q05: conv(v.quantiles["0.05"][i]), q25: conv(v.quantiles["0.25"][i]),
    q75: conv(v.quantiles["0.75"][i]), q95: conv(v.quantiles["0.95"][i]),
    act: v.actual ? conv(v.actual[i]) : null,
    i,
  }));
  const [tlo, thi] = target();
  const ys = [tlo, thi, ...hist.map((p) => p.y), ...steps.flatMap((s) => [s.q05, s.q95, s.act ?? s.med])];
  let ymin = Math.min(...ys), ymax = Math.max(...ys);
  const padY = (ymax - ymin) * 0.06;
  ymin = Math.max(0, ymin - padY);
  ymax += padY;
  const ystep = niceStep(ymax - ymin, narrow ? 5 : 7);
  ymin = Math.floor(ymin / ystep) * ystep;
  ymax = Math.ceil(ymax / ystep) * ystep;
  const x0 = hist[0].t, x1 = steps[steps.length - 1].t;
  const X = (t) => M.l + ((t - x0) / (x1 - x0)) * (W - M.l - M.r);
  const Y = (y) => H - M.b - ((y - ymin) / (ymax - ymin)) * (H - M.t - M.b);

  // target range
  el(svg, "rect", { class: "target", x: M.l, y: Y(thi), width: W - M.l - M.r, height: Y(tlo) - Y(thi) });
  for (const y of [tlo, thi]) el(svg, "line", { class: "target-edge", x1: M.l, x2: W - M.r, y1: Y(y), y2: Y(y) });
  el(svg, "text", { class: "label-target", x: M.l + 6, y: Y(thi) + 14 }, `target ${units() === "mmol" ? "3.9\u201310.0" : "70\u2013180"}`);

  // y grid and labels
  for (let y = ymin; y <= ymax + 1e-9; y += ystep) {
    el(svg, "line", { class: "grid", x1: M.l, x2: W - M.r, y1: Y(y), y2: Y(y) });
    el(svg, "text", { x: M.l - 6, y: Y(y) + 4, "text-anchor": "end" }, units() === "mmol" ? y.toFixed(ystep < 1 ? 1 : 0) : String(Math.round(y)));
  }
  el(svg, "text", { class: "axis-title", x: 8, y: 14 }, `Glucose (${unitLabel()})`);

  // time ticks on round wall-clock times, the date under the first and at each midnight
  const every = (narrow ? 60 : 30) * 60000;
  let lastDay = "";
  for (let t = Math.ceil(x0 / every) * every; t <= x1; t += every) {
    const x = X(t);
    el(svg, "line", { class: "grid", x1: x, x2: x, y1: M.t, y2: H - M.b });
    el(svg, "text", { x, y: H - M.b + 16, "text-anchor": "middle" }, clock(t));
    const d = day(t);
    if (d !== lastDay) {
      if (lastDay && new Date(t).getUTCHours() === 0 && new Date(t).getUTCMinutes() === 0) {
        el(svg, "line", { class: "midnight", x1: x, x2: x, y1: M.t, y2: H - M.b });
      }
      el(svg, "text", { x, y: H - M.b + 31, "text-anchor": "middle" }, d);
      lastDay = d;
    }
  }
  el(svg, "text", { class: "axis-title", x: (M.l + W - M.r) / 2, y: H - 6, "text-anchor": "middle" }, `Time (${clockName(v.clock)})`);

  // bands and median start at the last reading, where the forecast starts
  const band = (lo, hi, cls) => {
    const top = [`${X(last.t)},${Y(last.y)}`, ...steps.map((s) => `${X(s.t)},${Y(s[hi])}`)];
    const bottom = steps.slice().reverse().map((s) => `${X(s.t)},${Y(s[lo])}`);
    el(svg, "polygon", { class: cls, points: [...top, ...bottom, `${X(last.t)},${Y(last.y)}`].join(" ") });
  };
  band("q05", "q95", "band90");
  band("q25", "q75", "band50");
  const path = (pts) => pts.map((p, i) => `${i ? "L" : "M"}${X(p.t).toFixed(1)},${Y(p.y).toFixed(1)}`).join("");
  el(svg, "path", { class: "history", d: path(hist) });
  el(svg, "path", { class: "median", d: path([last, ...steps.map((s) => ({ t: s.t, y: s.med }))]) });
  if (v.actual) {
    el(svg, "path", { class: "actual", d: path([last, ...steps.map((s) => ({ t: s.t, y: s.act }))]) });
    for (const s of steps) el(svg, "circle", { class: "actual-dot", cx: X(s.t), cy: Y(s.act), r: 2.5 });
  }
  const nx = X(last.t);
  el(svg, "line", { class: "now", x1: nx, x2: nx, y1: M.t, y2: H - M.b });
  el(svg, "text", { class: "now-label", x: nx - 4, y: M.t + 12, "text-anchor": "end" }, v.actual ? "forecast made here" : "last reading");

  legend(!!v.actual);
  hover(svg, v, { hist, steps, X, Y, M, W, H });
}

function legend(back) {
  const items = [
    ["line", "var(--history)", "Measured (before)"],
    ["line", "var(--median)", "Forecast median"],
    ["box", "var(--band50)", "50% range"],
    ["box", "var(--band90)", "90% range"],
    ...(back ? [["dash", "var(--actual)", "Measured (what happened)"]] : []),
    ["box", "var(--target)", `Target range ${units() === "mmol" ? "3.9\u201310.0" : "70\u2013180"} ${unitLabel()}`],
  ];
  const lg = $("legend");
  lg.innerHTML = "";
  for (const [kind, colour, label] of items) {
    const k = document.createElement("span");
    k.className = "key";
    const sw = document.createElement("span");
    sw.className = kind === "box" ? "sw" : `sw ${kind}`;
    if (kind === "box") sw.style.background = colour; else sw.style.borderColor = colour;
    k.append(sw, label);
    lg.append(k);
  }
}

// Values on hover (pointer) and with the arrow keys (the chart is focusable).
function hover(svg, v, g) {
  const points = [
    ...g.hist.map((p) => ({ t: p.t, kind: "history", p })),
    ...g.steps.map((s) => ({ t: s.t, kind: "forecast", s })),
  ];
  const cursor = el(svg, "line", { class: "cursor", y1: g.M.t, y2: g.H - g.M.b, visibility: "hidden" });
  const dot = el(svg, "circle", { class: "dot", r: 4.5, fill: "var(--median)", visibility: "hidden" });
  const tip = $("tip");
  const t0 = g.hist[g.hist.length - 1].t;
  let at = -1;
  const u = unitLabel();
  const place = (k) => {
    at = Math.max(0, Math.min(points.length - 1, k));
    const q = points[at];
    const x = g.X(q.t);
    cursor.setAttribute("x1", x); cursor.setAttribute("x2", x); cursor.setAttribute("visibility", "visible");
    let html;
    if (q.kind === "history") {
      dot.setAttribute("cx", x); dot.setAttribute("cy", g.Y(q.p.y)); dot.setAttribute("fill", "var(--history)");
      html = `<b>${clock(q.t)}</b>, ${day(q.t)}<br>measured ${fmt(q.p.mgdl)} ${u}`;
    } else {
      const i = q.s.i;
      dot.setAttribute("cx", x); dot.setAttribute("cy", g.Y(q.s.med)); dot.setAttribute("fill", "var(--median)");
      html = `<b>${clock(q.t)}</b> (+${Math.round((q.t - t0) / 60000)} min)<br>median ${fmt(v.median[i])} ${u}`
        + `<br>50%: ${range(v, i, "0.25", "0.75")} · 90%: ${range(v, i, "0.05", "0.95")}`
        + (v.actual ? `<br>measured ${fmt(v.actual[i])}` : "");
    }
    dot.setAttribute("visibility", "visible");
    tip.innerHTML = html;
    tip.hidden = false;
    const box = svg.getBoundingClientRect();
    const scale = box.width / g.W;
    const left = x * scale;
    tip.style.top = `${8}px`;
    tip.style.left = left > box.width / 2 ? "" : `${left + 12}px`;
    tip.style.right = left > box.width / 2 ? `${box.width - left + 12}px` : "";
  };
  const hide = () => { cursor.setAttribute("visibility", "hidden"); dot.setAttribute("visibility", "hidden"); tip.hidden = true; };
  svg.onpointermove = (e) => {
    const box = svg.getBoundingClientRect();
    const x = ((e.clientX - box.left) / box.width) * g.W;
    let best = 0;
    points.forEach((q, k) => { if (Math.abs(g.X(q.t) - x) < Math.abs(g.X(points[best].t) - x)) best = k; });
    place(best);
  };
  svg.onpointerleave = hide;
  svg.onblur = hide;
  svg.onkeydown = (e) => {
    const moves = { ArrowLeft: -1, ArrowRight: 1, Home: -Infinity, End: Infinity };
    if (e.key in moves) {
      e.preventDefault();
      const base = at < 0 ? g.hist.length - 1 : at;
      place(Number.isFinite(moves[e.key]) ? base + moves[e.key] : moves[e.key] < 0 ? 0 : points.length - 1);
    } else if (e.key === "Escape") hide();
  };
}

// ---------- downloads and delete ----------

function save(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function fileStem() {
  const v = state.views.get(state.index);
  const t = v ? ms(v.history_times.at(-1)) : Date.now();
  const d = new Date(t);
  const stamp = `${d.getUTCFullYear()}${pad(d.getUTCMonth() + 1)}${pad(d.getUTCDate())}-${pad(d.getUTCHours())}${pad(d.getUTCMinutes())}`;
  return `${state.index === FORWARD ? "glucose-forecast" : "glucose-backtest"}-${stamp}`;
}

async function downloadImage(format) {
  if (!state.handle) return;
  const q = `?format=${format}&units=${units()}`;
  try {
    const blob = state.index === FORWARD
      ? await call(`/forecast${q}`, { handle: state.handle, force_calculate: false }, { as: "blob" })
      : await call(`/draw_a_plot${q}`, { handle: state.handle, index: state.index, force_calculate: false }, { as: "blob" });
    save(blob, `${fileStem()}.${format}`);
    status(`Saved ${fileStem()}.${format}.`);
  } catch (e) {
    showError(e.message, e.status);
  }
}

function downloadCsv() {
  const v = state.views.get(state.index);
  if (!v) return;
  const u = units() === "mmol" ? "mmol_l" : "mg_dl";
  const num = (mgdl) => (mgdl == null ? "" : units() === "mmol" ? conv(mgdl).toFixed(2) : mgdl.toFixed(1));
  const rows = [`kind,time,measured_${u},median_${u},p05_${u},p25_${u},p75_${u},p95_${u}`];
  v.history_times.forEach((t, i) => rows.push(`history,${t},${num(v.history[i])},,,,,`));
  v.forecast_times.forEach((t, i) => {
    const q = v.quantiles;
    rows.push(`forecast,${t},${v.actual ? num(v.actual[i]) : ""},${num(v.median[i])},${num(q["0.05"][i])},${num(q["0.25"][i])},${num(q["0.75"][i])},${num(q["0.95"][i])}`);
  });
  save(new Blob([rows.join("\n") + "\n"], { type: "text/csv" }), `${fileStem()}.csv`);
  status(`Saved ${fileStem()}.csv.`);
}

async function deleteUpload() {
  if (!state.handle) return;
  try {
    const r = await call(`/cache_management?action=delete&handle=${encodeURIComponent(state.handle)}`);
    if (r && r.success === false) throw new Failure(`The server could not delete the upload: ${r.message || "unknown reason"}`);
    state.handle = null;
    state.views = new Map();
    state.file = null;
    $("result").hidden = true;
    $("file").value = "";
    clearError();
    setState("deleted");
    status("Deleted: the server no longer keeps this upload or its forecasts.");
  } catch (e) {
    showError(e.message, e.status);
  }
}

// ---------- wiring ----------

function init() {
  const file = $("file");
  file.addEventListener("change", () => start(file.files[0]));
  const drop = $("drop");
  for (const ev of ["dragenter", "dragover"]) drop.addEventListener(ev, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const ev of ["dragleave", "drop"]) drop.addEventListener(ev, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); start(e.dataTransfer.files[0]); });
  // A file dropped beside the zone must not make the browser navigate away.
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => e.preventDefault());

  const key = $("api-key");
  key.value = store.key();
  const applyKey = () => {
    store.setKey(key.value.trim());
    if ((state.lastFailure === 401 || state.lastFailure === 403) && state.file) start(state.file);
  };
  $("key-apply").addEventListener("click", applyKey);
  key.addEventListener("keydown", (e) => { if (e.key === "Enter") applyKey(); });
  key.addEventListener("change", () => store.setKey(key.value.trim()));

  $("units").addEventListener("change", () => {
    store.setUnits(units());
    const v = state.views.get(state.index);
    if (v) show(v);
  });
  const w = $("window");
  let timer = 0;
  w.addEventListener("input", () => {
    const i = Number(w.value);
    windowText(i, state.views.get(i));
    clearTimeout(timer);
    timer = setTimeout(() => goTo(i), 150);
  });
  w.addEventListener("change", () => { clearTimeout(timer); goTo(Number(w.value)); });
  $("prev").addEventListener("click", () => goTo(Math.max(Number(w.min), state.index - 1)));
  $("next").addEventListener("click", () => goTo(Math.min(FORWARD, state.index + 1)));

  $("dl-png").addEventListener("click", () => downloadImage("png"));
  $("dl-svg").addEventListener("click", () => downloadImage("svg"));
  $("dl-csv").addEventListener("click", downloadCsv);
  $("delete").addEventListener("click", deleteUpload);

  let resize = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resize);
    resize = setTimeout(() => { const v = state.views.get(state.index); if (v && !$("result").hidden) draw(v); }, 100);
  });
  setState("empty");
}

init();
