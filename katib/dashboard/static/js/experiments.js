// Experiments page: every experiment the token sees, filter, sort, archive, pick to compare.
import { api, can, enc } from "./api.js";
import { act, age, badge, clear, fmt, h, title, toast } from "./dom.js";

async function all(archived) {
  const items = [];
  let after = null;
  for (;;) {
    const q = new URLSearchParams({ limit: "500", archived: String(archived) });
    if (after) q.set("after", after);
    const page = await api(`/experiments?${q}`);
    items.push(...page.items);
    if (page.items.length < 500) return items;
    after = page.metadata.continue;
  }
}

function row(e) {
  const s = e.status, spec = e.spec;
  const done = s.trialsSucceeded + s.trialsFailed + s.trialsKilled + s.trialsEarlyStopped + s.trialMetricsUnavailable;
  const best = s.currentOptimalTrial.observation.metrics.find((m) => m.name === spec.objective.objectiveMetricName);
  const strategy = (spec.objective.metricStrategies || []).find((m) => m.name === spec.objective.objectiveMetricName);
  const bestValue = best ? best[strategy ? strategy.value : (spec.objective.type === "maximize" ? "max" : "min")] : null;
  return {
    e, namespace: e.metadata.namespace, name: e.metadata.name, condition: s.condition,
    done, max: spec.maxTrialCount ?? null, running: s.trialsRunning, failed: s.trialsFailed + s.trialMetricsUnavailable,
    best: bestValue ?? null, direction: spec.objective.type, algorithm: spec.algorithm.algorithmName,
    created: e.metadata.creationTimestamp,
  };
}

const COLUMNS = [
  ["select", ""], ["namespace", "Namespace"], ["name", "Name"], ["condition", "Condition"],
  ["done", "Progress"], ["running", "Running"], ["failed", "Failed"], ["best", "Best objective"],
  ["algorithm", "Algorithm"], ["created", "Age"], ["actions", ""],
];

export async function render(main) {
  title("Experiments");
  const state = { archived: false, sort: "created", desc: true, text: "", ns: "", cond: "", rows: [], picked: new Set() };
  const head = h("div", { class: "row spread" }, h("h1", {}, "Experiments"));
  const filters = h("div", { class: "filters" });
  const tableBox = h("div", { class: "tablewrap" });
  const compare = h("button", { type: "button", class: "primary", disabled: true, onclick: () => {
    location.hash = `#/compare?e=${[...state.picked].map(enc).join(",")}`;
  } }, "Compare selected");
  main.append(head, filters, h("div", { class: "row" }, compare, h("span", { class: "muted", id: "count" })), tableBox);

  const text = h("input", { type: "search", id: "filter", placeholder: "name contains…", oninput: () => { state.text = text.value; draw(); } });
  const ns = h("select", { id: "nsfilter", onchange: () => { state.ns = ns.value; draw(); } });
  const cond = h("select", { id: "condfilter", onchange: () => { state.cond = cond.value; draw(); } },
    ["", "Created", "Running", "Restarting", "Succeeded", "Failed"].map((c) => h("option", { value: c }, c || "any")));
  const arch = h("input", { type: "checkbox", id: "archived", onchange: async () => { state.archived = arch.checked; await load(); } });
  filters.append(
    h("label", { for: "filter" }, "Filter", text),
    h("label", { for: "nsfilter" }, "Namespace", ns),
    h("label", { for: "condfilter" }, "Condition", cond),
    h("label", { for: "archived" }, arch, "Archived ones"),
  );

  async function load() {
    state.rows = (await all(state.archived)).map(row);
    const names = [...new Set(state.rows.map((r) => r.namespace))].sort();
    clear(ns).append(h("option", { value: "" }, "all"), ...names.map((n) => h("option", { value: n, selected: n === state.ns }, n)));
    draw();
  }

  function sorted() {
    const q = state.text.toLowerCase();
    const rows = state.rows.filter((r) => (!q || r.name.includes(q)) && (!state.ns || r.namespace === state.ns) && (!state.cond || r.condition === state.cond));
    const k = state.sort, sign = state.desc ? -1 : 1;
    rows.sort((a, b) => {
      const x = a[k], y = b[k];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sign;
    });
    return rows;
  }

  function draw() {
    const rows = sorted();
    document.getElementById("count").textContent = `${rows.length} experiment${rows.length === 1 ? "" : "s"}`;
    const thead = h("tr", {}, COLUMNS.map(([k, label]) => {
      if (k === "select" || k === "actions") return h("th", {}, label && label);
      const here = state.sort === k;
      return h("th", { "aria-sort": here ? (state.desc ? "descending" : "ascending") : "none", class: ["done", "running", "failed", "best"].includes(k) ? "num" : "" },
        h("button", { type: "button", class: "sort", onclick: () => { state.desc = here ? !state.desc : false; state.sort = k; draw(); } },
          label, here ? (state.desc ? " ▼" : " ▲") : ""));
    }));
    const body = rows.map((r) => {
      const key = `${r.namespace}/${r.name}`;
      const pct = r.max ? Math.min(100, (100 * r.done) / r.max) : 0;
      const finished = r.condition === "Succeeded" || r.condition === "Failed";
      const pick = h("input", { type: "checkbox", "aria-label": `select ${key} to compare`, checked: state.picked.has(key), onchange: (ev) => {
        if (ev.target.checked) state.picked.add(key); else state.picked.delete(key);
        compare.disabled = state.picked.size < 2;
      } });
      const actions = [];
      if (can("editor", r.namespace) && finished) {
        const b = h("button", { type: "button", onclick: () => act(b, async () => {
          await api(`/namespaces/${enc(r.namespace)}/experiments/${enc(r.name)}/${state.archived ? "unarchive" : "archive"}`, { method: "POST" });
          toast(`${key} ${state.archived ? "unarchived" : "archived"}`);
          await load();
        }) }, state.archived ? "Unarchive" : "Archive");
        actions.push(b);
      }
      return h("tr", {},
        h("td", {}, pick),
        h("td", {}, r.namespace),
        h("td", {}, h("a", { href: `#/experiments/${enc(r.namespace)}/${enc(r.name)}` }, r.name)),
        h("td", {}, badge(r.condition)),
        h("td", { class: "num" }, h("span", { class: "bar", "aria-hidden": "true" }, h("span", { style: `width:${pct}%` })), ` ${r.done} / ${r.max ?? "∞"}`),
        h("td", { class: "num" }, r.running),
        h("td", { class: "num" }, r.failed),
        h("td", { class: "num" }, fmt(r.best), r.best !== null ? h("span", { class: "muted" }, r.direction === "maximize" ? " ↑" : " ↓") : ""),
        h("td", {}, r.algorithm),
        h("td", { title: r.created }, age(r.created)),
        h("td", {}, actions),
      );
    });
    clear(tableBox).append(h("table", {}, h("thead", {}, thead), h("tbody", {}, body.length ? body : h("tr", {}, h("td", { colspan: COLUMNS.length, class: "muted" }, "No experiments yet.")))));
    compare.disabled = state.picked.size < 2;
  }

  await load();
  const timer = setInterval(() => { if (!document.hidden) load().catch(() => {}); }, 10000);
  return () => clearInterval(timer);
}
