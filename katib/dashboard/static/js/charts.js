// uPlot charts (vendored, ~50 KB): the optimization history, curves and overlays. Drawn
// before anything heavier loads.
import { PALETTE } from "./dom.js";

function width(el) { return Math.max(320, el.clientWidth || el.parentElement.clientWidth || 600); }

function chart(el, opts, data) {
  el.replaceChildren();
  const plot = new window.uPlot({ width: width(el), height: opts.height || 280, ...opts }, data, el);
  const observer = new ResizeObserver(() => plot.setSize({ width: width(el), height: opts.height || 280 }));
  observer.observe(el);
  plot.destroyAll = () => { observer.disconnect(); plot.destroy(); };
  return plot;
}

const dots = { show: true, size: 4, width: 0 };

/** Objective per trial (dots) and best so far (step line) against trial number; ``log``
 * draws the objective on a log scale (positive values only). */
export function history(el, xs, values, best, label, log = false) {
  return chart(el, {
    title: "Optimization history",
    scales: { x: { time: false }, y: log ? { distr: 3 } : {} },
    axes: [{ label: "trial number" }, { label, size: 70 }],
    series: [
      { label: "trial" },
      { label, stroke: "#0b57d0", fill: null, paths: () => null, points: { ...dots, fill: "#0b57d088", stroke: "#0b57d0" } },
      { label: "best so far", stroke: "#d93025", width: 2, spanGaps: true, points: { show: false }, paths: window.uPlot.paths.stepped({ align: 1 }) },
    ],
    cursor: { drag: { x: true, y: true, uni: 40 } },
  }, [xs, values, best]);
}

/** Several series over one x (best-so-far of several experiments, or metric curves). */
export function lines(el, { title, xLabel, yLabel, time = false, stepped = false, points = false }, x, series) {
  return chart(el, {
    title,
    scales: { x: { time } },
    axes: [{ label: xLabel }, { label: yLabel, size: 70 }],
    legend: { live: series.length <= 12 },
    series: [
      { label: xLabel },
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color || PALETTE[i % PALETTE.length],
        width: s.width || 1.5,
        spanGaps: true,
        points: { show: points },
        ...(stepped ? { paths: window.uPlot.paths.stepped({ align: 1 }) } : {}),
      })),
    ],
  }, [x, ...series.map((s) => s.values)]);
}

/** Wait for the vendored uPlot script (deferred classic script) to be there. */
export function ready() {
  if (window.uPlot) return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => (window.uPlot ? resolve() : setTimeout(check, 10));
    check();
  });
}
