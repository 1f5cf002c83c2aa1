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
