// The router: #/path?query -> a page module's render(main, params), which may return a
// cleanup function (stop polling) called when the user leaves the page.
import { ApiError, can, current, signIn, signOut, token, whoami } from "./api.js";
import { clear, h, title, toast } from "./dom.js";

const ROUTES = [
  [/^\/signin$/, null],
  [/^\/(experiments)?$/, () => import("./experiments.js")],
  [/^\/new$/, () => import("./new.js")],
  [/^\/experiments\/([^/]+)\/([^/]+)$/, () => import("./experiment.js"), ["namespace", "name"]],
  [/^\/trials\/([^/]+)\/([^/]+)$/, () => import("./trial.js"), ["namespace", "trial"]],
  [/^\/compare$/, () => import("./compare.js")],
  [/^\/access$/, () => import("./access.js")],
];

let cleanup = null;
const main = document.getElementById("main");

function parse() {
  const raw = location.hash.replace(/^#/, "") || "/experiments";
  const [path, query = ""] = raw.split("?");
  return { path, query: new URLSearchParams(query) };
}

function nav(path) {
  const el = clear(document.getElementById("nav"));
  const me = current();
  const links = [["#/experiments", "Experiments"], ["#/compare", "Compare"]];
  if (me && (me.role !== "viewer")) links.splice(1, 0, ["#/new", "New experiment"]);
  if (me && (me.role === "owner" || me.role === "admin")) links.push(["#/access", "Access"]);
  for (const [href, text] of links) {
    const here = path === href.slice(1) || (href === "#/experiments" && path === "/");
    el.append(h("a", { href, "aria-current": here ? "page" : null }, text));
  }
  const who = clear(document.getElementById("who"));
  if (me) {
    const where = me.namespace === "*" ? "all namespaces" : me.namespace;
    who.append(
      h("span", { title: `token #${me.id}` }, `${me.name} · ${me.role} · ${where}`),
      h("button", { type: "button", onclick: () => { signOut(); location.hash = "#/signin"; } }, "Sign out"),
    );
  }
}

function signinPage(next) {
  title("Sign in");
  clear(main);
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true, size: 40 });
  const error = h("p", { class: "errors", role: "alert" });
  const form = h("form", { class: "panel signin", onsubmit: async (ev) => {
    ev.preventDefault();
    error.textContent = "";
    try {
      await signIn(input.value.trim());
      location.hash = next && next !== "/signin" ? `#${next}` : "#/experiments";
    } catch (e) {
      error.textContent = e.status === 401 ? "This token is unknown, revoked or expired." : e.message;
    }
  } },
    h("h1", {}, "Sign in to Katib"),
    h("p", { class: "muted" }, "Paste an API token (from ", h("code", {}, "katib token create"),
      " or the server's first start). It is kept in this browser tab only, until you sign out or close it."),
    h("label", { class: "block", for: "token" }, h("span", {}, "API token"), input),
    error,
    h("button", { class: "primary", type: "submit" }, "Sign in"),
  );
  main.append(form);
  input.focus();
}

let pending = "/";
let generation = 0;
async function route() {
  // Each route renders into its own element: a slower page the user already left writes
  // into a detached element, never over the page now shown.
  const mine = ++generation;
  if (cleanup) { try { cleanup(); } catch { /* ignore */ } cleanup = null; }
  const { path, query } = parse();
  if (path === "/signin" || !token()) {
    if (path !== "/signin") pending = path + (query.toString() ? `?${query}` : "");
    nav(path);
    signinPage(path === "/signin" ? pending : pending);
    return;
  }
  // Who the token is, and the page's code, at the same time.
  const route = ROUTES.find(([re, load]) => load && re.test(path));
  const code = route ? route[1]() : null;
  if (code) code.catch(() => {});
  try { await whoami(); } catch (e) { if (e instanceof ApiError && e.status === 401) return; }
  if (mine !== generation) return;
  nav(path);
  for (const [re, load, names] of ROUTES) {
    const m = path.match(re);
    if (!m || !load) continue;
    const params = { query };
    (names || []).forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
    const view = h("div", {}, h("p", { class: "muted" }, "Loading…"));
    clear(main).append(view);
    try {
      const page = await load();
      if (mine !== generation) return;
      const done = await page.render(clear(view), params, { can });
      if (typeof done === "function") {
        if (mine === generation) cleanup = done; else done();
      }
    } catch (e) {
      if (mine !== generation) return;
      clear(view).append(h("h1", {}, "Something went wrong"), h("p", { class: "errors", role: "alert" }, e.message));
      if (!(e instanceof ApiError)) console.warn(e);
    }
    if (mine !== generation) return;
    main.focus({ preventScroll: true });
    return;
  }
  title("Not found");
  clear(main).append(h("h1", {}, "Not found"), h("p", {}, h("a", { href: "#/experiments" }, "Experiments")));
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (ev) => { toast(String(ev.reason?.message || ev.reason), true); });
route();
