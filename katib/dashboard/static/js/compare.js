// Compare: two or more experiments side by side. The selection is in the URL
// (#/compare?e=ns/a,ns/b), so a comparison is a link to share.
import { api, enc } from "./api.js";
import { lines, ready } from "./charts.js";
import { PALETTE, clear, fmt, h, title } from "./dom.js";
import { TrialSet } from "./trials.js";

function flatten(spec) {
  const out = new Map();
  const o = spec.objective || {}, a = spec.algorithm || {};
  out.set("objective", `${o.type} ${o.objectiveMetricName}`);
  out.set("objective.goal", o.goal ?? "");
  out.set("objective.additionalMetricNames", (o.additionalMetricNames || []).join(", "));
  out.set("algorithm", a.algorithmName);
  for (const s of a.algorithmSettings || []) out.set(`algorithm.${s.name}`, s.value);
  out.set("earlyStopping", spec.earlyStopping?.algorithmName ?? "");
  for (const s of spec.earlyStopping?.algorithmSettings || []) out.set(`earlyStopping.${s.name}`, s.value);
  out.set("maxTrialCount", spec.maxTrialCount ?? "");
  out.set("parallelTrialCount", spec.parallelTrialCount ?? "");
  out.set("maxFailedTrialCount", spec.maxFailedTrialCount ?? "");
  out.set("resumePolicy", spec.resumePolicy ?? "");
  for (const p of spec.parameters || []) {
    const f = p.feasibleSpace || {};
    out.set(`parameter ${p.name}`, `${p.parameterType} ${f.list ? `{${f.list.join(", ")}}` : `[${f.min}, ${f.max}]`}${f.step ? ` step ${f.step}` : ""}${f.distribution ? ` ${f.distribution}` : ""}`);
  }
  return out;
}

async function picker(main, selected) {
  const all = [];
  let after = null;
  for (;;) {
    const q = new URLSearchParams({ limit: "500" });
    if (after) q.set("after", after);
    const page = await api(`/experiments?${q}`);
    all.push(...page.items);
    if (page.items.length < 500) break;
    after = page.metadata.continue;
  }
  const chosen = new Set(selected);
  const go = h("button", { type: "submit", class: "primary" }, "Compare");
  const form = h("form", { class: "panel", onsubmit: (ev) => {
    ev.preventDefault();
    location.hash = `#/compare?e=${[...chosen].map(enc).join(",")}`;
  } }, h("fieldset", { style: "border:0;padding:0" }, h("legend", {}, "Experiments to compare (two or more)"),
    h("div", { class: "grid3" }, all.map((e) => {
      const key = `${e.metadata.namespace}/${e.metadata.name}`;
      return h("label", {}, h("input", { type: "checkbox", name: "e", value: key, checked: chosen.has(key), onchange: (ev) => {
        if (ev.target.checked) chosen.add(key); else chosen.delete(key);
      } }), key, h("span", { class: "muted" }, ` ${e.status.condition}, ${e.status.trials} trials`));
    }))), go);
  return form;
}

export async function render(main, { query }) {
  title("Compare");
  const keys = (query.get("e") || "").split(",").map((k) => decodeURIComponent(k)).filter(Boolean);
  main.append(h("h1", {}, "Compare experiments"));
  const pick = await picker(main, keys);
  if (keys.length < 2) { main.append(pick); return; }
  main.append(h("details", {}, h("summary", {}, "Change the selection"), pick));
  await ready();

  const sets = keys.map((k, i) => {
    const [ns, name] = k.split("/");
    return { key: k, label: k, color: PALETTE[i % PALETTE.length], t: new TrialSet(ns, name), exp: null };
  });
  await Promise.all(sets.map(async (s) => {
    const [exp] = await Promise.all([api(`/namespaces/${enc(s.t.namespace)}/experiments/${enc(s.t.name)}`), s.t.load()]);
    s.exp = exp;
    s.maximize = exp.spec.objective.type === "maximize";
    s.objective = exp.spec.objective.objectiveMetricName;
  }));
  const objectives = new Set(sets.map((s) => `${s.exp.spec.objective.type} ${s.objective}`));

  const byTrial = h("div", { class: "chart", id: "cmp-trials" });
  const byTime = h("div", { class: "chart", id: "cmp-time" });
  main.append(objectives.size > 1 ? h("p", { class: "errors", role: "note" }, `These experiments optimize different objectives (${[...objectives].join("; ")}); their curves share an axis but not a meaning.`) : "",
    h("div", { class: "grid2" }, h("div", { class: "panel" }, byTrial), h("div", { class: "panel" }, byTime)));

  // Best so far against trial number.
  const n = Math.max(...sets.map((s) => s.t.size));
  const xs = Array.from({ length: n }, (_, i) => i + 1);
  lines(byTrial, { title: "Best so far by trial", xLabel: "trial number", yLabel: [...new Set(sets.map((s) => s.objective))].join(" / "), stepped: true }, xs,
    sets.map((s) => { const b = s.t.bestSoFar(s.maximize); return { label: s.label, color: s.color, width: 2, values: xs.map((_, i) => (i < b.length ? b[i] : null)) }; }));
  // Best so far against wall time since each experiment's first trial.
  const events = [];
  sets.forEach((s, k) => {
    const c = s.t.cols;
    const t0 = Math.min(...c.created.filter((v) => v !== null));
    c.objective.forEach((v, i) => { if (v !== null && c.state[i] === "Succeeded" && c.completed[i] !== null) events.push([(c.completed[i] - t0) / 1000, k, v]); });
  });
  events.sort((a, b) => a[0] - b[0]);
  const tx = [], ty = sets.map(() => []), best = sets.map(() => null);
  for (const [time, k, v] of events) {
    if (best[k] === null || (sets[k].maximize ? v > best[k] : v < best[k])) best[k] = v;
    tx.push(time);
    sets.forEach((_, j) => ty[j].push(best[j]));
  }
  if (tx.length) {
    lines(byTime, { title: "Best so far by wall time", xLabel: "seconds since the first trial", yLabel: "objective", stepped: true }, tx,
      sets.map((s, k) => ({ label: s.label, color: s.color, width: 2, values: ty[k] })));
  } else byTime.append(h("p", { class: "muted" }, "No finished trials yet."));

  // Best parameters and metrics in one table.
  const params = [...new Set(sets.flatMap((s) => s.t.parameters.map((p) => p.name)))];
  const objectiveNames = [...new Set(sets.map((s) => s.objective))];
  const metrics = [...new Set(sets.flatMap((s) => Object.keys(s.t.cols.metrics)))].filter((m) => !objectiveNames.includes(m));
  main.append(h("h2", {}, "Best trials"), h("div", { class: "scroll" }, h("table", { id: "best-table" },
    h("thead", {}, h("tr", {}, ["Experiment", "Condition", "Trials", "Best trial", `Objective (${objectiveNames.join(" / ")})`, ...metrics, ...params].map((x) => h("th", {}, x)))),
    h("tbody", {}, sets.map((s) => {
      const i = s.t.bestIndex(s.maximize), c = s.t.cols;
      return h("tr", {},
        h("td", {}, h("span", { class: "legend-swatch", style: `background:${s.color}` }), h("a", { href: `#/experiments/${enc(s.t.namespace)}/${enc(s.t.name)}` }, s.label)),
        h("td", {}, s.t.status.condition), h("td", { class: "num" }, s.t.size),
        h("td", {}, i >= 0 ? h("a", { href: `#/trials/${enc(s.t.namespace)}/${enc(c.name[i])}` }, c.name[i]) : "—"),
        h("td", { class: "num" }, i >= 0 ? fmt(c.objective[i], 6) : ""),
        metrics.map((m) => h("td", { class: "num" }, i >= 0 && c.metrics[m] ? fmt(c.metrics[m][i], 6) : "")),
        params.map((p) => h("td", { class: "num" }, i >= 0 && c.params[p] ? fmt(c.params[p][i], 6) : "")));
    })))));

  // Spec differences.
  const flat = sets.map((s) => flatten(s.exp.spec));
  const allKeys = [...new Set(flat.flatMap((f) => [...f.keys()]))];
  const onlyDiff = h("input", { type: "checkbox", id: "onlydiff", checked: true });
  const diffBox = h("div", { class: "scroll" });
  const drawDiff = () => {
    const rowsOut = allKeys.map((k) => {
      const vals = flat.map((f) => (f.has(k) && f.get(k) !== "" ? String(f.get(k)) : "—"));
      const differs = new Set(vals).size > 1;
      if (onlyDiff.checked && !differs) return null;
      return h("tr", { class: differs ? "differs" : "" }, h("th", { scope: "row" }, k), vals.map((v) => h("td", { class: differs ? "changed" : "" }, v)));
    }).filter(Boolean);
    clear(diffBox).append(h("table", { class: "diff", id: "spec-diff" }, h("thead", {}, h("tr", {}, h("th", {}, "Field"), sets.map((s) => h("th", {}, s.label)))),
      h("tbody", {}, rowsOut.length ? rowsOut : h("tr", {}, h("td", { colspan: sets.length + 1, class: "muted" }, "The specs are the same.")))));
  };
  onlyDiff.addEventListener("change", drawDiff);
  main.append(h("div", { class: "row spread" }, h("h2", {}, "Spec differences"), h("label", { for: "onlydiff" }, onlyDiff, "Only differences")), diffBox);
  drawDiff();
  performance.mark("katib:compare");

  // Heavier: importances and distributions, once Plotly is loaded.
  const impBox = h("div", { "data-plot": "importance-compare" });
  const distBox = h("div");
  main.append(h("h2", {}, "Parameter importance"), h("div", { class: "panel" }, impBox), h("h2", {}, "Parameter distributions"), distBox);
  const B = await import("./bars.js");
  const imps = await Promise.all(sets.map((s) => api(`/namespaces/${enc(s.t.namespace)}/experiments/${enc(s.t.name)}/importance`).catch(() => ({ importances: [] }))));
  const groups = sets.map((s, k) => ({ label: s.label, color: s.color, importances: imps[k].importances })).filter((g) => g.importances.length);
  if (groups.length) B.importanceBars(impBox, groups); else impBox.append(h("p", { class: "muted" }, "Not enough finished trials yet."));
  B.distributions(distBox, sets);
  performance.mark("katib:compare-all");
  return undefined;
}
