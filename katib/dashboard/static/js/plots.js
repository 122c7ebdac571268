// Heavier plots, drawn after the table and history: parallel coordinates (our own canvas,
// brushable), and Plotly (cartesian bundle, loaded on first use) for slices and contours.
import { clear, fmt, h } from "./dom.js";

let plotly = null;
/** Load the vendored Plotly once (about 500 KB compressed), after the first paint. */
export function loadPlotly() {
  if (!plotly) {
    plotly = new Promise((resolve, reject) => {
      if (window.Plotly) { resolve(window.Plotly); return; }
      const s = document.createElement("script");
      s.src = `${document.body.dataset.static}/vendor/plotly-cartesian.min.js`;
      s.onload = () => resolve(window.Plotly);
      s.onerror = () => reject(new Error("could not load the plotting library"));
      document.head.append(s);
    });
  }
  return plotly;
}

const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
const LAYOUT = { margin: { l: 60, r: 20, t: 36, b: 50 }, font: { family: "system-ui, sans-serif", size: 12 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff" };

export async function plot(el, traces, layout) {
  const P = await loadPlotly();
  await P.react(el, traces, { ...LAYOUT, ...layout }, CONFIG);
}

/** Objective against each parameter, one small plot per parameter. */
export async function slices(el, t, objectiveName, rows, logParams = new Set()) {
  clear(el);
  const c = t.cols;
  const idx = rows.filter((i) => c.objective[i] !== null);
  const boxes = t.parameters.map((p) => h("div", { class: "chart", "data-plot": `slice-${p.name}` }));
  el.append(h("div", { class: "grid3" }, boxes));
  for (const [k, p] of t.parameters.entries()) {
    await plot(boxes[k], [{
      type: "scatter", mode: "markers",
      x: idx.map((i) => c.params[p.name][i]), y: idx.map((i) => c.objective[i]),
      text: idx.map((i) => c.name[i]),
      marker: { size: 5, color: idx.map((i) => i), colorscale: "Blues", opacity: 0.7, colorbar: { title: { text: "trial #" }, thickness: 10 } },
      hovertemplate: "%{text}<br>%{x}: %{y}<extra></extra>",
    }], { title: { text: p.name }, height: 280, xaxis: { title: { text: p.name }, type: logParams.has(p.name) ? "log" : "-" }, yaxis: { title: { text: objectiveName } } });
  }
}

/** The objective interpolated (inverse distance weighting) over a 40×40 grid of two chosen
 * parameters, from at most 2,000 trials, with the trials on top. */
export async function contour(el, t, objectiveName, rows, px, py, maximize) {
  const c = t.cols;
  let idx = rows.filter((i) => c.objective[i] !== null && c.params[px][i] !== null && c.params[py][i] !== null);
  const x = idx.map((i) => c.params[px][i]), y = idx.map((i) => c.params[py][i]), z = idx.map((i) => c.objective[i]);
  if (idx.length > 2000) idx = idx.filter((_, k) => k % Math.ceil(idx.length / 2000) === 0);
  const sx = idx.map((i) => c.params[px][i]), sy = idx.map((i) => c.params[py][i]), sz = idx.map((i) => c.objective[i]);
  const N = 40;
  const [x0, x1] = [Math.min(...sx), Math.max(...sx)], [y0, y1] = [Math.min(...sy), Math.max(...sy)];
  const gx = Array.from({ length: N }, (_, k) => x0 + ((x1 - x0) * k) / (N - 1));
  const gy = Array.from({ length: N }, (_, k) => y0 + ((y1 - y0) * k) / (N - 1));
  const wx = (x1 - x0) || 1, wy = (y1 - y0) || 1;
  const gz = gy.map((yv) => gx.map((xv) => {
    let num = 0, den = 0;
    for (let k = 0; k < sx.length; k++) {
      const dx = (sx[k] - xv) / wx, dy = (sy[k] - yv) / wy;
      const d2 = dx * dx + dy * dy;
      if (d2 < 1e-12) return sz[k];
      const w = 1 / (d2 * d2);
      num += w * sz[k]; den += w;
    }
    return den ? num / den : null;
  }));
  await plot(el, [
    { type: "contour", x: gx, y: gy, z: gz, colorscale: "Viridis", reversescale: !maximize, contours: { coloring: "heatmap" }, colorbar: { title: { text: objectiveName } }, hovertemplate: `${px} %{x}<br>${py} %{y}<br>${objectiveName} ≈ %{z}<extra></extra>` },
    { type: "scatter", mode: "markers", x, y, text: idx.map((i) => c.name[i]), marker: { size: 4, color: "#ffffff", line: { width: 0.5, color: "#333" } }, hovertemplate: "%{text}<extra></extra>", showlegend: false },
  ], { title: { text: `${objectiveName} over ${px} × ${py}` }, height: 460, xaxis: { title: { text: px } }, yaxis: { title: { text: py } } });
}

// Parallel coordinates ----------------------------------------------------------------------

function viridis(u) {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.max(0, Math.min(1, u)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
  const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

/** Brushable parallel coordinates: drag along an axis to keep a range (it filters the
 * table), double-click the axis to clear it. Lines are colored by objective (best: yellow). */
export function parallel(el, t, { objectiveName, maximize, logParams, rows, onBrush, brushes, signal }) {
  clear(el);
  const c = t.cols;
  const axes = [...t.parameters.map((p) => ({ name: p.name, numeric: p.numeric, values: c.params[p.name], log: logParams.has(p.name) })),
    { name: objectiveName, numeric: true, values: c.objective, objective: true }];
  const canvas = h("canvas", { class: "parcoords", role: "img", "aria-label": `Parallel coordinates of ${t.size} trials over ${axes.map((a) => a.name).join(", ")}` });
  el.append(canvas, h("p", { class: "muted" }, "Drag along an axis to keep a range of values (the table follows); double-click an axis to clear it. Color: objective, best in yellow."));
  const dpr = window.devicePixelRatio || 1;
  const W = canvas.clientWidth || 900, H = 340;
  canvas.width = W * dpr; canvas.height = H * dpr;
  const g = canvas.getContext("2d");
  g.scale(dpr, dpr);
  const top = 40, bottom = H - 26, left = 50, right = W - 50;
  const xs = axes.map((_, k) => left + ((right - left) * k) / Math.max(1, axes.length - 1));
  for (const a of axes) {
    if (a.numeric) {
      const f = a.values.filter((v) => v !== null && (!a.log || v > 0));
      const tf = a.log ? Math.log10 : (v) => v;
      a.lo = Infinity; a.hi = -Infinity;
      for (const v of f) { const w = tf(v); if (w < a.lo) a.lo = w; if (w > a.hi) a.hi = w; }
      if (!f.length) { a.lo = 0; a.hi = 1; }
      if (a.hi === a.lo) a.hi = a.lo + 1;
      a.y = (v) => (v === null ? null : bottom - ((tf(v) - a.lo) / (a.hi - a.lo)) * (bottom - top));
      a.inv = (y) => { const w = a.lo + ((bottom - y) / (bottom - top)) * (a.hi - a.lo); return a.log ? 10 ** w : w; };
    } else {
      a.cats = [...new Set(a.values.filter((v) => v !== null))].sort();
      const pos = new Map(a.cats.map((v, k) => [v, k]));
      a.y = (v) => (v === null ? null : bottom - ((pos.get(v) + 0.5) / a.cats.length) * (bottom - top));
    }
  }
  const obj = axes[axes.length - 1];
  const keep = new Set(rows);
  const BUCKETS = 24;
  const colors = Array.from({ length: BUCKETS }, (_, b) => viridis(b / (BUCKETS - 1)));
  const draw = () => {
    g.clearRect(0, 0, W, H);
    g.lineWidth = 1;
    // One path per color: lines are grouped in 24 objective bands (and one for the lines the
    // filters leave out), drawn worst first so that the best end on top.
    const paths = Array.from({ length: BUCKETS + 1 }, () => new Path2D());
    for (let i = 0; i < t.size; i++) {
      const v = c.objective[i];
      if (v === null) continue;
      const u = (obj.y(v) - bottom) / (top - bottom);
      const band = keep.has(i) ? Math.round((maximize ? u : 1 - u) * (BUCKETS - 1)) : BUCKETS;
      const path = paths[band];
      let started = false;
      for (let k = 0; k < axes.length; k++) {
        const y = axes[k].y(axes[k].values[i]);
        if (y === null) continue;
        if (started) path.lineTo(xs[k], y); else { path.moveTo(xs[k], y); started = true; }
      }
    }
    g.globalAlpha = t.size > 2000 ? 0.3 : 0.6;
    g.strokeStyle = "#d0d7de";
    g.stroke(paths[BUCKETS]);
    const order = [...Array(BUCKETS).keys()];
    for (const band of order) { g.strokeStyle = colors[band]; g.stroke(paths[band]); }
    g.globalAlpha = 1;
    g.fillStyle = "#1b1f24"; g.strokeStyle = "#1b1f24"; g.font = "12px system-ui, sans-serif"; g.textAlign = "center";
    axes.forEach((a, k) => {
      g.beginPath(); g.moveTo(xs[k], top); g.lineTo(xs[k], bottom); g.stroke();
      g.font = "600 12px system-ui, sans-serif"; g.fillText(a.name, xs[k], top - 22); g.font = "12px system-ui, sans-serif";
      if (a.numeric) {
        g.fillText(fmt(a.log ? 10 ** a.hi : a.hi, 3), xs[k], top - 6);
        g.fillText(fmt(a.log ? 10 ** a.lo : a.lo, 3), xs[k], bottom + 14);
      } else {
        g.textAlign = "left";
        a.cats.forEach((v) => g.fillText(String(v), xs[k] + 4, a.y(v) + 4));
        g.textAlign = "center";
      }
      const b = brushes[a.name];
      if (b && a.numeric) {
        const y0 = a.y(b[1]), y1 = a.y(b[0]);
        g.fillStyle = "rgba(11,87,208,0.25)"; g.fillRect(xs[k] - 7, y0, 14, y1 - y0); g.fillStyle = "#1b1f24";
      }
    });
  };
  draw();
  let drag = null;
  const axisAt = (x) => axes.findIndex((a, k) => a.numeric && !a.objective && Math.abs(xs[k] - x) < 16);
  canvas.addEventListener("mousedown", (ev) => {
    const r = canvas.getBoundingClientRect();
    const k = axisAt(ev.clientX - r.left);
    if (k >= 0) drag = { k, y0: ev.clientY - r.top };
  });
  window.addEventListener("mouseup", (ev) => {
    if (!drag) return;
    const r = canvas.getBoundingClientRect();
    const a = axes[drag.k];
    const y1 = Math.max(top, Math.min(bottom, ev.clientY - r.top)), y0 = Math.max(top, Math.min(bottom, drag.y0));
    drag = null;
    if (Math.abs(y1 - y0) < 3) return;
    onBrush(a.name, [a.inv(Math.max(y0, y1)), a.inv(Math.min(y0, y1))]);
  }, { signal });
  canvas.addEventListener("dblclick", (ev) => {
    const r = canvas.getBoundingClientRect();
    const k = axisAt(ev.clientX - r.left);
    if (k >= 0) onBrush(axes[k].name, null);
  });
}
