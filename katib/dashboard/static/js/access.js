// Access: who may work in a namespace (tokens with role, creation, last use, expiry), give a
// colleague a token (shown once), revoke one; admins also see and create namespaces. And the
// audit trail of who did what.
import { api, current, enc, roleRank } from "./api.js";
import { act, clear, h, title, toast, when } from "./dom.js";

const EXPIRY = [["", "never"], ["1", "1 day"], ["7", "7 days"], ["30", "30 days"], ["90", "90 days"]];

export async function render(main, { query }) {
  title("Access");
  const me = current();
  const admin = me.role === "admin";
  if (!admin && me.role !== "owner") {
    main.append(h("h1", {}, "Access"), h("p", {}, "Only a namespace's owners and admins manage access."));
    return;
  }
  const spaces = (await api("/namespaces")).items;
  let ns = query.get("ns") || (admin ? (spaces[0]?.name || "default") : me.namespace);
  const nsBox = h("section");
  const tokensBox = h("section");
  const auditBox = h("section");
  main.append(h("h1", {}, "Access"), nsBox, tokensBox, auditBox);

  function drawNamespaces() {
    const pick = h("select", { id: "ns", onchange: () => { ns = pick.value; drawTokens(); drawAudit(); } },
      spaces.map((s) => h("option", { value: s.name, selected: s.name === ns }, s.name)));
    const parts = [h("label", { for: "ns" }, "Namespace", pick)];
    if (admin) {
      const name = h("input", { id: "newns", pattern: "[a-z0-9]([-a-z0-9]*[a-z0-9])?", maxlength: 63, placeholder: "team-a", required: true });
      const b = h("button", { type: "submit" }, "Create namespace");
      parts.push(h("form", { class: "row", onsubmit: (ev) => { ev.preventDefault(); act(b, async () => {
        const made = await api("/namespaces", { method: "POST", json: { name: name.value } });
        spaces.push(made); spaces.sort((a, c) => a.name.localeCompare(c.name)); ns = made.name;
        toast(`namespace ${made.name} created`); drawNamespaces(); drawTokens(); drawAudit();
      }); } }, h("label", { for: "newns" }, "New namespace", name), b));
    }
    clear(nsBox).append(h("div", { class: "row spread panel" }, parts));
    if (admin) {
      nsBox.append(h("h2", {}, "Namespaces"), h("table", { id: "namespaces" }, h("thead", {}, h("tr", {}, ["Name", "Experiments", "Live tokens", "Created", "By"].map((x, k) => h("th", { class: k === 1 || k === 2 ? "num" : "" }, x)))),
        h("tbody", {}, spaces.map((s) => h("tr", {}, h("td", {}, s.name), h("td", { class: "num" }, s.experiments), h("td", { class: "num" }, s.tokens), h("td", {}, when(s.createdAt)), h("td", {}, s.createdBy || "—"))))));
    }
  }

  async function drawTokens() {
    const list = (await api(`/tokens?namespace=${enc(ns)}`)).items;
    const roles = ["viewer", "editor", "owner"].filter((r) => roleRank(r) <= roleRank(me.role));
    const name = h("input", { id: "tokname", required: true, maxlength: 253, placeholder: "alice" });
    const role = h("select", { id: "tokrole" }, roles.map((r) => h("option", { value: r }, r)));
    const expiry = h("select", { id: "tokexp" }, EXPIRY.map(([v, l]) => h("option", { value: v }, l)));
    const shown = h("div", { "aria-live": "polite" });
    const b = h("button", { type: "submit", class: "primary" }, "Create token");
    const form = h("form", { class: "panel", onsubmit: (ev) => { ev.preventDefault(); act(b, async () => {
      const body = { name: name.value, namespace: ns, role: role.value };
      if (expiry.value) body.expiresAt = new Date(Date.now() + Number(expiry.value) * 86400e3).toISOString();
      const made = await api("/tokens", { method: "POST", json: body });
      const secret = h("code", { id: "new-token" }, made.token);
      clear(shown).append(h("div", { class: "secret", role: "alert" }, h("strong", {}, `Token for ${made.name} (${made.role} in ${made.namespace}); shown only this once: `), secret, " ",
        h("button", { type: "button", onclick: () => navigator.clipboard?.writeText(made.token).then(() => toast("copied")) }, "Copy")));
      name.value = "";
      await refreshTable();
    }); } }, h("h2", {}, `Give access to ${ns}`), h("div", { class: "row" },
      h("label", { for: "tokname" }, "Name", name), h("label", { for: "tokrole" }, "Role", role), h("label", { for: "tokexp" }, "Expires", expiry), b), shown);
    const tableBox = h("div", { class: "scroll" });
    async function refreshTable(items) {
      const rows = items || (await api(`/tokens?namespace=${enc(ns)}`)).items;
      clear(tableBox).append(h("table", { id: "tokens" }, h("thead", {}, h("tr", {}, ["#", "Name", "Role", "Created", "Last used", "Expires", ""].map((x) => h("th", {}, x)))),
        h("tbody", {}, rows.map((tk) => {
          const revoke = h("button", { type: "button", class: "danger", "aria-label": `revoke token ${tk.id} (${tk.name})`, onclick: () => act(revoke, async () => {
            if (!window.confirm(`Revoke token #${tk.id} (${tk.name})? Requests with it are refused at once.`)) return;
            await api(`/tokens/${tk.id}`, { method: "DELETE" }); toast(`token #${tk.id} revoked`); await refreshTable(); await drawAudit();
          }) }, "Revoke");
          const mine = tk.id === me.id;
          return h("tr", { "data-token": tk.id }, h("td", {}, tk.id), h("td", {}, tk.name, mine ? h("span", { class: "muted" }, " (you)") : ""), h("td", {}, tk.role),
            h("td", {}, when(tk.createdAt)), h("td", {}, tk.lastUsedAt ? when(tk.lastUsedAt) : "never"), h("td", {}, tk.expiresAt ? when(tk.expiresAt) : "never"),
            h("td", {}, mine ? "" : revoke));
        }))));
    }
    clear(tokensBox).append(h("h2", {}, `Who has access to ${ns}`), tableBox, form);
    await refreshTable(list);
  }

  async function drawAudit() {
    const box = h("div", { class: "scroll" });
    const more = h("button", { type: "button" }, "Older");
    let cursor = null;
    const body = h("tbody");
    async function page() {
      const q = new URLSearchParams({ namespace: ns, limit: "50" });
      if (cursor) q.set("after", cursor);
      const got = await api(`/audit?${q}`);
      cursor = got.metadata.continue;
      body.append(...got.items.map((a) => h("tr", {}, h("td", {}, when(a.time)), h("td", {}, a.principal.name, h("span", { class: "muted" }, ` #${a.principal.id ?? "?"}`)),
        h("td", {}, a.action), h("td", {}, a.target), h("td", { style: "white-space: normal" }, Object.entries(a.detail).map(([k, v]) => `${k}=${v}`).join(", ")))));
      more.disabled = got.items.length < 50;
      if (!body.children.length) body.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, "Nothing yet.")));
    }
    more.addEventListener("click", () => act(more, page));
    clear(auditBox).append(h("h2", {}, `Audit trail of ${ns}`), box);
    box.append(h("table", { id: "audit" }, h("thead", {}, h("tr", {}, ["When", "Who", "Action", "Target", "Detail"].map((x) => h("th", {}, x)))), body), more);
    await page();
  }

  drawNamespaces();
  await Promise.all([drawTokens(), drawAudit()]);
  return undefined;
}
