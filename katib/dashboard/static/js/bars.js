// Plain HTML/SVG summaries, cheap enough for the compare page: importance bars and
// per-experiment parameter distributions (box plots, or category shares).
import { PALETTE, clear, fmt, h } from "./dom.js";

/** A table of importance bars: a row per parameter, a bar per experiment. */
export function importanceBars(el, groups) {
  clear(el);
  const names = [...new Set(groups.flatMap((g) => g.importances.map((x) => x.name)))];
  const value = (g, n) => (g.importances.find((x) => x.name === n) || { importance: 0 }).importance;
  names.sort((a, b) => Math.max(...groups.map((g) => value(g, b))) - Math.max(...groups.map((g) => value(g, a))));
  el.append(h("table", { class: "bars", "aria-label": "Parameter importance" },
    h("thead", {}, h("tr", {}, h("th", {}, "Parameter"), h("th", {}, "Importance (normalized)"))),
    h("tbody", {}, names.map((n) => h("tr", {}, h("th", { scope: "row" }, n), h("td", {},
      groups.map((g, k) => {
        const v = value(g, n);
        return h("div", { class: "barrow", title: `${g.label}: ${fmt(v, 3)}` },
          h("span", { class: "track" }, h("span", { class: "fill", style: `width:${(100 * v).toFixed(1)}%;background:${g.color || PALETTE[k % PALETTE.length]}` })),
          h("span", { class: "val" }, `${fmt(v, 3)}${groups.length > 1 ? ` ${g.label}` : ""}`));
      })))))));
}

function quantile(sorted, q) {
  const pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** For each parameter, one box (min, quartiles, median, max) or share bar per experiment. */
export function distributions(el, sets) {
  clear(el);
  const params = [...new Set(sets.flatMap((s) => s.t.parameters.map((p) => p.name)))];
  const W = 520, row = 26, pad = 150;
  const grid = h("div", { class: "grid2" });
  el.append(grid);
  for (const name of params) {
    const numeric = sets.every((s) => (s.t.parameters.find((p) => p.name === name) || { numeric: true }).numeric);
    const panel = h("div", { class: "panel", "data-plot": `dist-${name}` }, h("h3", {}, name));
    grid.append(panel);
    if (numeric) {
      const stats = sets.map((s) => {
        const v = (s.t.cols.params[name] || []).filter((x) => x !== null).sort((a, b) => a - b);
        return v.length ? { min: v[0], q1: quantile(v, 0.25), med: quantile(v, 0.5), q3: quantile(v, 0.75), max: v[v.length - 1], mean: v.reduce((a, b) => a + b, 0) / v.length } : null;
      });
      const lo = Math.min(...stats.filter(Boolean).map((x) => x.min)), hi = Math.max(...stats.filter(Boolean).map((x) => x.max));
      // Values spanning orders of magnitude (a log-uniform learning rate) on a log axis.
      const log = lo > 0 && hi / lo > 100;
      const tf = log ? Math.log10 : (v) => v;
      const x = (v) => pad + ((tf(v) - tf(lo)) / ((tf(hi) - tf(lo)) || 1)) * (W - pad - 20);
      const ns = "http://www.w3.org/2000/svg";
      const svg = document.createElementNS(ns, "svg");
      svg.setAttribute("viewBox", `0 0 ${W} ${row * sets.length + 24}`);
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", `distribution of ${name} per experiment`);
      const el2 = (tag, attrs, text) => { const e = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); if (text !== undefined) e.textContent = text; svg.append(e); return e; };
      sets.forEach((s, k) => {
        const st = stats[k], y = 6 + k * row, c = s.color || PALETTE[k % PALETTE.length];
        el2("text", { x: 4, y: y + 14, "font-size": 12, fill: "#1b1f24" }, s.label.length > 22 ? `…${s.label.slice(-21)}` : s.label);
        if (!st) return;
        el2("line", { x1: x(st.min), x2: x(st.max), y1: y + 10, y2: y + 10, stroke: c });
        el2("rect", { x: x(st.q1), y: y + 2, width: Math.max(1, x(st.q3) - x(st.q1)), height: 16, fill: `${c}33`, stroke: c });
        el2("line", { x1: x(st.med), x2: x(st.med), y1: y + 2, y2: y + 18, stroke: c, "stroke-width": 2 });
        el2("circle", { cx: x(st.mean), cy: y + 10, r: 2.5, fill: c });
        el2("title", {}, `${s.label}: min ${fmt(st.min)}, q1 ${fmt(st.q1)}, median ${fmt(st.med)}, q3 ${fmt(st.q3)}, max ${fmt(st.max)}, mean ${fmt(st.mean)}`);
      });
      const yb = row * sets.length + 20;
      el2("text", { x: pad, y: yb, "font-size": 11, fill: "#57606a" }, fmt(lo));
      el2("text", { x: W - 20, y: yb, "font-size": 11, fill: "#57606a", "text-anchor": "end" }, fmt(hi));
      if (log) el2("text", { x: (pad + W - 20) / 2, y: yb, "font-size": 11, fill: "#57606a", "text-anchor": "middle" }, "log scale");
      panel.append(svg);
    } else {
      const cats = [...new Set(sets.flatMap((s) => (s.t.cols.params[name] || []).filter((v) => v !== null)))].sort();
      panel.append(h("table", { class: "bars" }, h("tbody", {}, sets.map((s, k) => {
        const v = s.t.cols.params[name] || [];
        const counts = cats.map((c) => v.filter((x) => x === c).length);
        const n = counts.reduce((a, b) => a + b, 0) || 1;
        return h("tr", {}, h("th", { scope: "row" }, s.label), h("td", {}, h("div", { class: "stack" },
          cats.map((c, j) => h("span", { style: `width:${(100 * counts[j]) / n}%;background:${PALETTE[(k + j) % PALETTE.length]}${j % 2 ? "aa" : ""}`, title: `${c}: ${counts[j]}` }, counts[j] / n > 0.12 ? c : "")))));
      }))));
    }
  }
}
