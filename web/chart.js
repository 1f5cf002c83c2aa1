// glurpc's page: the forecast chart, drawn as SVG with values on hover and with the arrow
// keys. Loaded before app.js, whose helpers (units, formatting, times) it uses once a file
// has been chosen.
"use strict";

// A few hundred lines instead of a charting library.

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

