// Experiment page: status, history, trials table, plots, spec, events; live while it runs.
import { api, can, enc } from "./api.js";
import { history, lines, ready } from "./charts.js";
import { act, age, badge, clear, fmt, h, title, toast, when } from "./dom.js";
import { TrialTable } from "./table.js";
import { TrialSet, isActive } from "./trials.js";

const POLL_MS = 1500;
const FINISHED = new Set(["Succeeded", "Failed"]);

function specRows(spec) {
  const o = spec.objective, a = spec.algorithm;
  const rows = [
    ["Objective", `${o.type} ${o.objectiveMetricName}${o.goal !== undefined && o.goal !== null ? ` (goal ${o.goal})` : ""}`],
    ["Additional metrics", (o.additionalMetricNames || []).join(", ") || "—"],
    ["Algorithm", `${a.algorithmName}${(a.algorithmSettings || []).length ? ` (${a.algorithmSettings.map((s) => `${s.name}=${s.value}`).join(", ")})` : ""}`],
    ["Early stopping", spec.earlyStopping ? spec.earlyStopping.algorithmName : "—"],
    ["Budget", `max ${spec.maxTrialCount ?? "∞"} trials, ${spec.parallelTrialCount} in parallel, ${spec.maxFailedTrialCount ?? "∞"} failures allowed`],
    ["Resume policy", spec.resumePolicy || "Never"],
  ];
  for (const p of spec.parameters || []) {
    const f = p.feasibleSpace || {};
    const range = f.list ? `{${f.list.join(", ")}}` : `[${f.min}, ${f.max}]${f.step ? ` step ${f.step}` : ""}`;
    rows.push([`Parameter ${p.name}`, `${p.parameterType} ${range}${f.distribution ? ` ${f.distribution}` : ""}`]);
  }
  return rows;
}

export async function render(main, { namespace, name }) {
  title(name);
  const base = `/namespaces/${enc(namespace)}/experiments/${enc(name)}`;
  // The trials are the big read: start it at once, beside the experiment's spec.
  const t = new TrialSet(namespace, name);
  const loading = t.load();
  loading.catch(() => {});
  let exp = await api(base);
  let spec = exp.spec;
  const objectiveName = spec.objective.objectiveMetricName;
  const maximize = spec.objective.type === "maximize";
  const logParams = new Set((spec.parameters || []).filter((p) => /log/i.test(p.feasibleSpace?.distribution || "")).map((p) => p.name));
  await ready();

  const header = h("div", { class: "row spread" });
  const cards = h("div", { class: "cards" });
  const historyBox = h("div", { class: "chart", id: "history" });
  const logY = h("input", { type: "checkbox", id: "logy", onchange: () => { if (hist) hist.destroyAll(); hist = null; drawHistory(); } });
  const logLabel = h("label", { for: "logy", class: "muted" }, logY, "Log scale");
  const tableBox = h("section", { "aria-label": "Trials" });
  const tabs = h("div", { class: "tabs", role: "tablist", "aria-label": "Plots" });
  const panel = h("div", { class: "tabpanel", role: "tabpanel", id: "plotpanel" });
  const specBox = h("div", { class: "panel" });
  const condBox = h("div", { class: "panel" });
  const eventsBox = h("div", { class: "panel scroll", style: "max-height: 320px" });
  main.append(header, cards, h("div", { class: "panel" }, logLabel, historyBox), h("h2", {}, "Trials"), tableBox,
    h("h2", {}, "Plots"), tabs, panel,
    h("div", { class: "grid2" }, h("section", {}, h("h2", {}, "Spec"), specBox), h("section", {}, h("h2", {}, "Conditions"), condBox)),
    h("h2", {}, "Events"), eventsBox);

  const controller = new AbortController();
  let stopped = false;
  let rows = [];
  const brushes = {};
  let hist = null;
  let table = null;

  function drawHeader(status) {
    const finished = FINISHED.has(status.condition);
    const actions = [];
    if (can("editor", namespace) && !finished) {
      const b = h("button", { type: "button", onclick: () => act(b, async () => {
        await api(`${base}/stop`, { method: "POST" }); toast(`stopping ${name}`); await tick();
      }) }, "Stop");
      actions.push(b);
    }
    // A finished experiment takes a new budget only as a restart, which its resumePolicy
    // must allow (Katib's rule; the API refuses otherwise).
    const resumable = (spec.resumePolicy || "Never") !== "Never";
    if (can("editor", namespace) && (!finished || resumable)) actions.push(budgetForm(finished));
    if (can("owner", namespace) && finished) {
      const b = h("button", { type: "button", class: "danger", onclick: () => act(b, async () => {
        if (!window.confirm(`Delete experiment ${namespace}/${name} with its ${t.size} trials?`)) return;
        await api(base, { method: "DELETE" }); toast(`${name} deleted`); location.hash = "#/experiments";
      }) }, "Delete");
      actions.push(b);
    }
    clear(header).append(h("h1", {}, `${name} `, badge(status.condition), h("span", { class: "muted" }, ` ${namespace}`)), h("div", { class: "row", id: "actions" }, actions));
  }

  function budgetForm(finished) {
    const mk = (id, label, value) => h("label", { class: "block" }, h("span", {}, label), h("input", { type: "number", min: id === "maxFailedTrialCount" ? 0 : 1, name: id, value: value ?? "" }));
    const form = h("form", { class: "panel", onsubmit: async (ev) => {
      ev.preventDefault();
      const body = {};
      for (const input of form.querySelectorAll("input")) if (input.value !== "") body[input.name] = Number(input.value);
      const button = form.querySelector("button[type=submit]");
      await act(button, async () => {
        const current = await api(base);
        const restart = finished && FINISHED.has(current.status.condition);
        await api(restart ? `${base}/restart` : base, { method: restart ? "POST" : "PATCH", json: body });
        toast(restart ? `${name} restarted` : `budget of ${name} changed`);
        details.open = false;
        await reloadSpec();
        await tick(true);
      });
    } },
      mk("maxTrialCount", "Max trials", exp.spec.maxTrialCount),
      mk("parallelTrialCount", "Parallel trials", exp.spec.parallelTrialCount),
      mk("maxFailedTrialCount", "Max failed trials", exp.spec.maxFailedTrialCount),
      h("button", { type: "submit", class: "primary" }, finished ? "Restart with this budget" : "Save budget"));
    const details = h("details", {}, h("summary", { class: "button" }, finished ? "Restart…" : "Edit budget…"), form);
    return details;
  }

  function drawCards(status) {
    const done = t.size - status.trialsPending - status.trialsRunning;
    const bi = t.bestIndex(maximize);
    const items = [
      ["Progress", `${done} / ${spec.maxTrialCount ?? "∞"}`],
      ["Running", status.trialsRunning],
      ["Failed", status.trialsFailed + status.trialMetricsUnavailable],
      ["Best objective", bi >= 0 ? fmt(t.cols.objective[bi], 6) : "—"],
      ["Best trial", bi >= 0 ? h("a", { href: `#/trials/${enc(namespace)}/${enc(t.cols.name[bi])}` }, t.cols.name[bi]) : "—"],
      ["Algorithm", spec.algorithm.algorithmName],
      ["Age", age(exp.metadata.creationTimestamp)],
    ];
    clear(cards).append(...items.map(([k, v]) => h("div", { class: "card" }, h("div", { class: "k" }, k), h("div", { class: "v" }, v))));
  }

  function drawHistory() {
    const n = t.size;
    const xs = Array.from({ length: n }, (_, i) => i + 1);
    const values = t.cols.objective.map((v, i) => (t.cols.state[i] === "Succeeded" ? v : null));
    const best = t.bestSoFar(maximize);
    // A log scale needs positive values: offered only when every objective is.
    const positive = values.every((v) => v === null || v > 0);
    logLabel.hidden = !positive;
    const log = logY.checked && positive;
    if (hist && hist.log === log) hist.setData([xs, values, best]);
    else {
      if (hist) hist.destroyAll();
      hist = history(historyBox, xs, values, best, objectiveName, log);
      hist.log = log;
    }
  }

  function drawSide(status) {
    clear(specBox).append(h("table", {}, h("tbody", {}, specRows(spec).map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", { style: "white-space: normal" }, v))))));
    clear(condBox).append(h("table", {}, h("thead", {}, h("tr", {}, ["Type", "Reason", "Message", "Since"].map((x) => h("th", {}, x)))),
      h("tbody", {}, status.conditions.map((c) => h("tr", {}, h("td", {}, c.type), h("td", {}, c.reason), h("td", { style: "white-space: normal" }, c.message), h("td", {}, when(c.lastTransitionTime)))))));
    const ev = t.events.slice(-200).reverse();
    clear(eventsBox).append(ev.length ? h("table", {}, h("tbody", {}, ev.map((e) => h("tr", {},
      h("td", {}, when(e.time)), h("td", { class: e.type === "Warning" ? "s-Failed" : "" }, e.reason),
      h("td", {}, e.trialName ? h("a", { href: `#/trials/${enc(namespace)}/${enc(e.trialName)}` }, e.trialName) : ""),
      h("td", { style: "white-space: normal" }, e.message))))) : h("p", { class: "muted" }, "No events yet."));
  }

  // Plot tabs ------------------------------------------------------------------------------
  const TABS = [
    ["parallel", "Parallel coordinates"], ["importance", "Parameter importance"], ["slice", "Slices"],
    ["contour", "Contour"], ["curves", "Intermediate curves"],
  ];
  let active = "parallel";
  let lastPlot = 0;
  const tabButtons = TABS.map(([id, label]) => h("button", { type: "button", role: "tab", id: `tab-${id}`, "aria-controls": "plotpanel",
    onclick: () => { active = id; drawTabs(); drawPlot(true); },
    onkeydown: (ev) => {
      const k = TABS.findIndex(([x]) => x === id);
      const next = ev.key === "ArrowRight" ? k + 1 : ev.key === "ArrowLeft" ? k - 1 : null;
      if (next === null) return;
      const [nid] = TABS[(next + TABS.length) % TABS.length];
      active = nid; drawTabs(); drawPlot(true); document.getElementById(`tab-${nid}`).focus();
    } }, label));
  tabs.append(...tabButtons);
  function drawTabs() {
    tabButtons.forEach((b, k) => { const on = TABS[k][0] === active; b.setAttribute("aria-selected", String(on)); b.tabIndex = on ? 0 : -1; });
    panel.setAttribute("aria-labelledby", `tab-${active}`);
  }
  drawTabs();

  const plots = import("./plots.js");
  const plotState = { px: null, py: null, metric: objectiveName, method: "ped-anova" };

  async function drawPlot(force = false) {
    if (!force && Date.now() - lastPlot < 5000) return;
    lastPlot = Date.now();
    const P = await plots;
    if (stopped) return;
    if (active === "parallel") {
      P.parallel(panel, t, { objectiveName, maximize, logParams, rows, brushes, signal: controller.signal,
        onBrush: (p, r) => { if (r) brushes[p] = r; else delete brushes[p]; table.setRange(p, r); drawPlot(true); } });
    } else if (active === "importance") {
      clear(panel);
      const method = h("select", { id: "impmethod", onchange: () => { plotState.method = method.value; drawPlot(true); } },
        [["ped-anova", "PED-ANOVA"], ["fanova", "fANOVA"], ["mean-decrease-impurity", "Random forest (MDI)"]].map(([v, l]) => h("option", { value: v, selected: v === plotState.method }, l)));
      const box = h("div", { "data-plot": "importance" });
      panel.append(h("label", { for: "impmethod" }, "Evaluator (Optuna)", method), box);
      box.append(h("p", { class: "muted" }, "Computing…"));
      const imp = await api(`${base}/importance?method=${plotState.method}`);
      clear(box);
      if (!imp.importances.length) { box.append(h("p", { class: "muted" }, imp.detail)); return; }
      const B = await import("./bars.js");
      B.importanceBars(box, [{ label: name, importances: imp.importances }]);
    } else if (active === "slice") {
      await P.slices(panel, t, objectiveName, rows, logParams);
    } else if (active === "contour") {
      const numeric = t.parameters.filter((p) => p.numeric).map((p) => p.name);
      clear(panel);
      if (numeric.length < 2) { panel.append(h("p", { class: "muted" }, "A contour needs two numeric parameters.")); return; }
      plotState.px ||= numeric[0]; plotState.py ||= numeric[1];
      const pick = (id, key) => h("select", { id, onchange: (ev) => { plotState[key] = ev.target.value; drawPlot(true); } },
        numeric.map((n) => h("option", { value: n, selected: n === plotState[key] }, n)));
      const box = h("div", { class: "chart", "data-plot": "contour" });
      panel.append(h("div", { class: "row" }, h("label", { for: "cx" }, "x", pick("cx", "px")), h("label", { for: "cy" }, "y", pick("cy", "py"))), box);
      await P.contour(box, t, objectiveName, rows, plotState.px, plotState.py, maximize);
    } else if (active === "curves") {
      await drawCurves();
    }
  }

  async function drawCurves() {
    clear(panel);
    const metrics = [objectiveName, ...Object.keys(t.cols.metrics)];
    const sel = h("select", { id: "curvemetric", onchange: () => { plotState.metric = sel.value; drawPlot(true); } },
      metrics.map((m) => h("option", { value: m, selected: m === plotState.metric }, m)));
    const box = h("div", { class: "chart", "data-plot": "curves" });
    panel.append(h("label", { for: "curvemetric" }, "Metric", sel), box);
    // The best trials, those running, and the latest ones: at most 60 curves.
    const c = t.cols;
    const ranked = [...Array(t.size).keys()].filter((i) => c.objective[i] !== null).sort((a, b) => (maximize ? c.objective[b] - c.objective[a] : c.objective[a] - c.objective[b]));
    const pick = new Set([...ranked.slice(0, 20), ...[...Array(t.size).keys()].filter((i) => isActive(c.state[i])).slice(0, 20)]);
    for (let i = t.size - 1; i >= 0 && pick.size < 60; i--) pick.add(i);
    if (!pick.size) { box.append(h("p", { class: "muted" }, "No trials yet.")); return; }
    const ids = [...pick].map((i) => c.id[i]);
    const got = await api(`${base}/curves?metric=${enc(plotState.metric)}&trials=${ids.join(",")}`);
    const steps = new Set();
    const series = [];
    for (const i of pick) {
      const points = got.curves[String(c.id[i])] || [];
      if (!points.length) continue;
      const byStep = new Map(points.map((p, k) => [p[0] ?? k, p[1]]));
      byStep.forEach((_, s) => steps.add(s));
      series.push({ label: c.name[i], byStep, best: i === ranked[0] });
    }
    if (!series.length) { box.append(h("p", { class: "muted" }, `No reported values of ${plotState.metric} yet.`)); return; }
    const x = [...steps].sort((a, b) => a - b);
    lines(box, { title: `${plotState.metric} over steps`, xLabel: "step", yLabel: plotState.metric, points: x.length < 30 }, x,
      series.map((s) => ({ label: s.label, values: x.map((k) => s.byStep.get(k) ?? null), width: s.best ? 3 : 1, color: s.best ? "#d93025" : undefined })));
  }

  // First paint: table and history, then the rest.
  await loading;
  drawHeader(t.status);
  drawCards(t.status);
  table = new TrialTable(tableBox, t, { maximize, objectiveName, onFilter: (r) => { rows = r; } });
  table.refresh(true);
  performance.mark("katib:table");
  drawHistory();
  performance.mark("katib:history");
  drawSide(t.status);
  // The plots below come once the browser is idle, after the table and history are shown.
  const later = window.requestIdleCallback || ((fn) => setTimeout(fn, 50));
  later(() => drawPlot(true), { timeout: 1000 });

  /** The spec changes with a budget edit or a restart: read it again and redraw. */
  async function reloadSpec() {
    exp = await api(base);
    spec = exp.spec;
    drawHeader(t.status);
    drawCards(t.status);
    drawSide(t.status);
  }

  let condition = t.status.condition;
  let idle = 0;
  async function tick(force = false) {
    if (stopped || (document.hidden && !force)) return;
    // A finished experiment changes rarely (a restart, a budget edit): look every 10 s.
    if (!force && FINISHED.has(condition) && ++idle % 7) return;
    const changed = await t.poll();
    if (stopped || !changed) return;
    table.refresh();
    drawHistory();
    drawCards(t.status);
    if (t.status.condition !== condition) {
      condition = t.status.condition;
      await reloadSpec();
      if (FINISHED.has(condition)) toast(`${name} ${condition.toLowerCase()}`);
    }
    drawSide(t.status);
    performance.mark("katib:update");
    document.body.dataset.trials = String(t.size);
    drawPlot();
  }
  document.body.dataset.trials = String(t.size);
  const timer = setInterval(() => { tick().catch((e) => toast(e.message, true)); }, POLL_MS);
  return () => { stopped = true; clearInterval(timer); controller.abort(); if (hist) hist.destroyAll(); };
}
