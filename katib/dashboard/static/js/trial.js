// Trial page: parameters, metrics over steps, state with reason, log (followed while the
// trial runs, from the byte offset the API returns), early-stopping decision.
import { api, can, enc, token } from "./api.js";
import { lines, ready } from "./charts.js";
import { act, badge, clear, duration, fmt, h, title, toast, when } from "./dom.js";

const MAX_LOG_CHARS = 2_000_000;

export async function render(main, { namespace, trial }) {
  title(trial);
  const base = `/namespaces/${enc(namespace)}/trials/${enc(trial)}`;
  let t = await api(base);
  const experiment = t.metadata.labels["katib.kubeflow.org/experiment"];
  await ready();
  const header = h("div", { class: "row spread" });
  const info = h("div", { class: "grid2" });
  const charts = h("div", { class: "grid3" });
  const stopBox = h("div");
  const log = h("pre", { class: "log", id: "log", tabindex: "0", "aria-label": "Trial log" });
  const follow = h("input", { type: "checkbox", id: "follow", checked: true });
  main.append(header, stopBox, info, h("h2", {}, "Metrics over steps"), charts,
    h("div", { class: "row spread" }, h("h2", {}, "Log"), h("label", { for: "follow" }, follow, "Follow")), log);
  let stopped = false;
  let offset = 0;
  const decoder = new TextDecoder();

  function drawHeader() {
    const s = t.status;
    const actions = [];
    if (can("editor", namespace) && (s.condition === "Running" || s.condition === "Created")) {
      const b = h("button", { type: "button", class: "danger", onclick: () => act(b, async () => {
        await api(`${base}/kill`, { method: "POST" }); toast(`killing ${trial}`);
      }) }, "Kill");
      actions.push(b);
    }
    clear(header).append(h("h1", {}, `${trial} `, badge(s.condition)), h("div", { class: "row" },
      h("a", { href: `#/experiments/${enc(namespace)}/${enc(experiment)}` }, `← ${experiment}`), actions));
    const started = s.startTime ? Date.parse(s.startTime) : null, ended = s.completionTime ? Date.parse(s.completionTime) : null;
    clear(info).append(
      h("section", { class: "panel" }, h("h2", {}, "Parameters"), h("table", {}, h("tbody", {},
        t.spec.parameterAssignments.map((p) => h("tr", {}, h("th", { scope: "row" }, p.name), h("td", {}, p.value)))))),
      h("section", { class: "panel" }, h("h2", {}, "State"), h("table", {}, h("tbody", {},
        [["State", badge(s.condition)], ["Reason", s.reason], ["Message", s.message], ["Exit code", s.exitCode ?? "—"],
          ["Started", when(s.startTime)], ["Completed", when(s.completionTime)],
          ["Duration", started && ended ? duration((ended - started) / 1000) : "—"],
          ...s.observation.metrics.map((m) => [`${m.name} (min / max / latest)`, `${fmt(m.min, 6)} / ${fmt(m.max, 6)} / ${fmt(m.latest, 6)}`])]
          .map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, k), h("td", { style: "white-space: normal" }, v)))))),
    );
    clear(stopBox);
    if (s.condition === "EarlyStopped") {
      stopBox.append(h("p", { class: "panel", role: "note" }, h("strong", {}, "Early stopped: "), `${s.reason}: ${s.message}`));
    }
  }

  let lastPoints = -1;
  async function drawMetrics() {
    const obs = await api(`${base}/observations`);
    if (obs.metricLogs.length === lastPoints) return;
    lastPoints = obs.metricLogs.length;
    const by = new Map();
    obs.metricLogs.forEach((m, k) => {
      const name = m.metric.name;
      if (!by.has(name)) by.set(name, []);
      by.get(name).push([m.step ?? by.get(name).length, m.metric.value]);
    });
    clear(charts);
    if (!by.size) { charts.append(h("p", { class: "muted" }, "No values reported yet.")); return; }
    for (const [name, points] of by) {
      const box = h("div", { class: "chart", "data-metric": name });
      charts.append(h("div", { class: "panel" }, box));
      points.sort((a, b) => a[0] - b[0]);
      lines(box, { title: name, xLabel: "step", yLabel: name, points: points.length < 50 }, points.map((p) => p[0]), [{ label: name, values: points.map((p) => p[1]) }]);
    }
  }

  async function readLog() {
    if (!t.status.startTime) { log.textContent = "(the trial has not started yet)"; return; }
    const res = await fetch(`/api/v1${base}/logs?offset=${offset}`, { headers: { Authorization: `Bearer ${token()}` } });
    if (res.status === 404) { if (!log.textContent) log.textContent = "(no output yet)"; return; }
    if (!res.ok) return;
    const next = Number(res.headers.get("X-Next-Offset") || offset);
    const chunk = decoder.decode(await res.arrayBuffer(), { stream: true });
    if (offset === 0) log.textContent = "";
    offset = next;
    if (chunk) {
      log.append(chunk);
      if (log.textContent.length > MAX_LOG_CHARS) log.textContent = log.textContent.slice(-MAX_LOG_CHARS);
      if (follow.checked) log.scrollTop = log.scrollHeight;
    }
  }

  drawHeader();
  await Promise.all([drawMetrics(), readLog()]);
  const active = () => t.status.condition === "Running" || t.status.condition === "Created";
  let finalRead = false;
  const timer = setInterval(async () => {
    if (stopped || document.hidden) return;
    if (!active()) {
      if (finalRead) return;
      finalRead = true;
    }
    try {
      const before = t.status.condition;
      t = await api(base);
      if (t.status.condition !== before) { drawHeader(); finalRead = false; }
      await Promise.all([drawMetrics(), follow.checked ? readLog() : null]);
    } catch (e) { toast(e.message, true); }
  }, 1000);
  return () => { stopped = true; clearInterval(timer); };
}
