// An experiment's trials as columns, loaded once and then kept up to date incrementally:
// each poll asks only for trials after the last cursor, the unfinished ones again, and
// events after the last event id.
import { api, enc } from "./api.js";

const ACTIVE = new Set(["Created", "Running"]);
const FIELDS = ["id", "name", "state", "objective", "created", "started", "completed"];

export class TrialSet {
  constructor(namespace, name) {
    this.namespace = namespace;
    this.name = name;
    this.cols = null;          // {id:[], name:[], ..., params:{}, metrics:{}}
    this.index = new Map();    // trial id -> row
    this.cursor = null;
    this.eventsCursor = null;
    this.events = [];
    this.status = null;
    this.parameters = [];
    this.version = 0;          // bumped on every change
  }

  get size() { return this.cols ? this.cols.id.length : 0; }

  url(extra) {
    const q = new URLSearchParams(extra);
    return `/namespaces/${enc(this.namespace)}/experiments/${enc(this.name)}/trial-table?${q}`;
  }

  /** Everything, a page at a time (one page holds 20,000 trials). */
  async load() {
    let body = await api(this.url({ limit: "20000" }));
    this.absorb(body);
    while (!body.complete) {
      body = await api(this.url({ limit: "20000", after: this.cursor }));
      this.absorb(body, true);
    }
  }

  /** New trials, unfinished trials as they are now, new events; returns whether anything changed. */
  async poll() {
    const active = [];
    if (this.cols) this.cols.state.forEach((s, i) => { if (ACTIVE.has(s)) active.push(this.cols.id[i]); });
    const q = {};
    if (this.cursor) q.after = this.cursor;
    if (active.length) q.refresh = active.slice(0, 1000).join(",");
    if (this.eventsCursor) q.eventsAfter = this.eventsCursor;
    const body = await api(this.url(q));
    const before = this.version;
    this.absorb(body, true);
    return this.version !== before;
  }

  absorb(body, incremental = false) {
    const changedStatus = JSON.stringify(body.status) !== JSON.stringify(this.status);
    this.status = body.status;
    this.parameters = body.parameters;
    this.cursor = body.cursor ?? this.cursor;
    this.eventsCursor = body.eventsCursor ?? this.eventsCursor;
    this.events.push(...body.events);
    if (!this.cols || !incremental) {
      this.cols = body.trials;
      this.index = new Map(this.cols.id.map((id, i) => [id, i]));
      this.version++;
      return;
    }
    let changed = changedStatus || body.events.length > 0;
    const r = body.refreshed;
    for (let j = 0; j < r.id.length; j++) {
      const i = this.index.get(r.id[j]);
      if (i === undefined) continue;
      for (const f of FIELDS) this.cols[f][i] = r[f][j];
      for (const p in r.params) this.cols.params[p][i] = r.params[p][j];
      for (const m in r.metrics) this.cols.metrics[m][i] = r.metrics[m][j];
      changed = true;
    }
    const t = body.trials;
    for (let j = 0; j < t.id.length; j++) {
      if (this.index.has(t.id[j])) continue;
      this.index.set(t.id[j], this.cols.id.length);
      for (const f of FIELDS) this.cols[f].push(t[f][j]);
      for (const p in t.params) (this.cols.params[p] ||= []).push(t.params[p][j]);
      for (const m in t.metrics) (this.cols.metrics[m] ||= []).push(t.metrics[m][j]);
      changed = true;
    }
    if (changed) this.version++;
  }

  /** Best-so-far of the objective at each trial (in creation order), null before the first. */
  bestSoFar(maximize) {
    const out = new Array(this.size);
    let best = null;
    const obj = this.cols.objective, state = this.cols.state;
    for (let i = 0; i < obj.length; i++) {
      const v = obj[i];
      if (v !== null && state[i] === "Succeeded" && (best === null || (maximize ? v > best : v < best))) best = v;
      out[i] = best;
    }
    return out;
  }

  /** Row index of the best succeeded trial. */
  bestIndex(maximize) {
    let at = -1;
    const obj = this.cols.objective, state = this.cols.state;
    for (let i = 0; i < obj.length; i++) {
      const v = obj[i];
      if (v === null || state[i] !== "Succeeded") continue;
      if (at < 0 || (maximize ? v > obj[at] : v < obj[at])) at = i;
    }
    return at;
  }
}

export function isActive(state) { return ACTIVE.has(state); }
