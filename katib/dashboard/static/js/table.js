// The trials table: a column per parameter and metric, sort, filters (state, parameter
// ranges), pages of 50 rows over any number of trials, CSV export of what is shown.
import { enc } from "./api.js";
import { badge, clear, download, duration, fmt, h } from "./dom.js";

const STATES = ["Created", "Running", "Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable"];
const PAGE = 50;

export class TrialTable {
  constructor(el, trials, { maximize, objectiveName, onFilter }) {
    this.el = el;
    this.t = trials;
    this.maximize = maximize;
    this.objectiveName = objectiveName;
    this.onFilter = onFilter || (() => {});
    this.sort = "number";
    this.desc = false;
    this.page = 0;
    this.states = new Set(STATES);
    this.ranges = {};      // param -> [min, max] (numbers) or substring (text)
    this.rows = [];
    this.seen = -1;
    this.build();
  }

  columns() {
    const c = this.t.cols;
    return [
      { key: "number", label: "#", num: true, get: (i) => i + 1 },
      { key: "name", label: "Trial", get: (i) => c.name[i] },
      { key: "state", label: "State", get: (i) => c.state[i] },
      { key: "objective", label: `${this.objectiveName} (objective)`, num: true, get: (i) => c.objective[i] },
      ...Object.keys(c.metrics).filter((m) => m !== this.objectiveName).map((m) => ({ key: `m:${m}`, label: m, num: true, get: (i) => c.metrics[m][i] })),
      ...this.t.parameters.map((p) => ({ key: `p:${p.name}`, label: p.name, num: p.numeric, param: p, get: (i) => c.params[p.name][i] })),
      { key: "duration", label: "Duration", num: true, get: (i) => (c.completed[i] !== null && c.started[i] !== null ? (c.completed[i] - c.started[i]) / 1000 : null), show: duration },
    ];
  }

  build() {
    const states = h("fieldset", {}, h("legend", {}, "State"), STATES.map((s) => h("label", {},
      h("input", { type: "checkbox", checked: true, "data-state": s, onchange: (ev) => {
        if (ev.target.checked) this.states.add(s); else this.states.delete(s);
        this.page = 0; this.refresh(true);
      } }), s)));
    const ranges = h("fieldset", {}, h("legend", {}, "Parameter ranges"), this.t.parameters.map((p) => {
      if (!p.numeric) {
        return h("label", {}, p.name, h("input", { class: "range", type: "text", placeholder: "contains", "aria-label": `${p.name} contains`, oninput: (ev) => {
          this.ranges[p.name] = ev.target.value || undefined; this.page = 0; this.refresh(true);
        } }));
      }
      const lo = h("input", { class: "range", type: "number", step: "any", placeholder: "min", "aria-label": `${p.name} at least`, "data-param-min": p.name });
      const hi = h("input", { class: "range", type: "number", step: "any", placeholder: "max", "aria-label": `${p.name} at most`, "data-param-max": p.name });
      const set = () => {
        const a = lo.value === "" ? -Infinity : Number(lo.value), b = hi.value === "" ? Infinity : Number(hi.value);
        this.ranges[p.name] = a === -Infinity && b === Infinity ? undefined : [a, b];
        this.page = 0; this.refresh(true);
      };
      lo.addEventListener("input", set); hi.addEventListener("input", set);
      return h("label", {}, p.name, lo, "–", hi);
    }));
    this.count = h("span", { class: "muted", "aria-live": "polite" });
    this.csv = h("button", { type: "button", onclick: () => this.exportCsv() }, "Export CSV");
    this.pager = h("div", { class: "pager" });
    this.box = h("div", { class: "tablewrap" });
    clear(this.el).append(h("div", { class: "filters" }, states, ranges), h("div", { class: "row spread" }, this.count, this.csv), this.box, this.pager);
  }

  /** Set a numeric parameter's range filter from outside (a brush on the parallel plot). */
  setRange(name, range) {
    this.ranges[name] = range || undefined;
    const lo = this.el.querySelector(`[data-param-min="${CSS.escape(name)}"]`);
    const hi = this.el.querySelector(`[data-param-max="${CSS.escape(name)}"]`);
    if (lo) lo.value = range ? fmt(range[0], 6) : "";
    if (hi) hi.value = range ? fmt(range[1], 6) : "";
    this.page = 0;
    this.refresh(true);
  }

  filtered() {
    const c = this.t.cols, n = this.t.size, out = [];
    const ranges = Object.entries(this.ranges).filter(([, r]) => r !== undefined);
    for (let i = 0; i < n; i++) {
      if (!this.states.has(c.state[i])) continue;
      let ok = true;
      for (const [p, r] of ranges) {
        const v = c.params[p][i];
        if (Array.isArray(r)) { if (v === null || v < r[0] || v > r[1]) { ok = false; break; } }
        else if (!String(v ?? "").includes(r)) { ok = false; break; }
      }
      if (ok) out.push(i);
    }
    const col = this.columns().find((x) => x.key === this.sort);
    if (col && this.sort !== "number") {
      const sign = this.desc ? -1 : 1;
      out.sort((a, b) => {
        const x = col.get(a), y = col.get(b);
        if (x === y) return a - b;
        if (x === null || x === undefined) return 1;
        if (y === null || y === undefined) return -1;
        return (x < y ? -1 : 1) * sign;
      });
    } else if (this.desc) out.reverse();
    return out;
  }

  refresh(force = false) {
    if (force || this.seen !== this.t.version) {
      this.rows = this.filtered();
      this.seen = this.t.version;
      this.onFilter(this.rows);
    }
    this.draw();
  }

  draw() {
    const cols = this.columns();
    const c = this.t.cols;
    const best = this.t.bestIndex(this.maximize);
    const pages = Math.max(1, Math.ceil(this.rows.length / PAGE));
    this.page = Math.min(this.page, pages - 1);
    const head = h("tr", {}, cols.map((col) => {
      const here = this.sort === col.key;
      return h("th", { class: col.num ? "num" : "", "aria-sort": here ? (this.desc ? "descending" : "ascending") : "none" },
        h("button", { type: "button", class: "sort", onclick: () => {
          this.desc = here ? !this.desc : false; this.sort = col.key; this.refresh(true);
        } }, col.label, here ? (this.desc ? " ▼" : " ▲") : ""));
    }));
    const body = this.rows.slice(this.page * PAGE, (this.page + 1) * PAGE).map((i) => h("tr", { class: i === best ? "best" : "", "data-trial": c.name[i] },
      cols.map((col) => {
        const v = col.get(i);
        if (col.key === "name") return h("td", {}, h("a", { href: `#/trials/${enc(this.t.namespace)}/${enc(v)}` }, v), i === best ? h("span", { class: "badge s-Succeeded", title: "best trial" }, " best") : "");
        if (col.key === "state") return h("td", {}, badge(v));
        return h("td", { class: col.num ? "num" : "" }, col.show ? col.show(v) : fmt(v, 6));
      })));
    clear(this.box).append(h("table", { "aria-label": "Trials" }, h("thead", {}, head), h("tbody", {}, body)));
    this.count.textContent = `${this.rows.length} of ${this.t.size} trials`;
    const go = (p) => { this.page = p; this.draw(); };
    clear(this.pager).append(
      h("button", { type: "button", disabled: this.page === 0, onclick: () => go(0) }, "« First"),
      h("button", { type: "button", disabled: this.page === 0, onclick: () => go(this.page - 1) }, "‹ Previous"),
      h("span", {}, `Page ${this.page + 1} of ${pages}`),
      h("button", { type: "button", disabled: this.page >= pages - 1, onclick: () => go(this.page + 1) }, "Next ›"),
      h("button", { type: "button", disabled: this.page >= pages - 1, onclick: () => go(pages - 1) }, "Last »"),
    );
  }

  exportCsv() {
    const cols = this.columns();
    const q = (v) => {
      const s = v === null || v === undefined ? "" : String(v);
      return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
    };
    const lines = [cols.map((c) => q(c.key === "number" ? "number" : c.label.replace(" (objective)", ""))).join(",")];
    for (const i of this.rows) lines.push(cols.map((c) => q(c.get(i))).join(","));
    download(`${this.t.name}-trials.csv`, lines.join("\n") + "\n");
  }
}
