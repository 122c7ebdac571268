// The REST API with the signed-in token. The token lives in sessionStorage (this tab, until
// it closes), is sent only in the Authorization header, and never appears in a URL.
const KEY = "katib.token";
// Who the token is (name, role, namespace: nothing secret), kept beside it so that a reload
// draws the page at once while /whoami checks the token again.
const WHO = "katib.principal";
let principal = JSON.parse(sessionStorage.getItem(WHO) || "null");
let checked = null;

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `HTTP ${status}`);
    this.status = status;
    this.errors = (body && body.errors) || [];
  }
}

export function token() { return sessionStorage.getItem(KEY); }

export function signOut() {
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(WHO);
  principal = null;
  checked = null;
}

/** Check a token with /whoami; keep it if it works. */
export async function signIn(value) {
  const res = await fetch("/api/v1/whoami", { headers: { Authorization: `Bearer ${value}` } });
  if (!res.ok) throw new ApiError(res.status, await body(res));
  principal = await res.json();
  sessionStorage.setItem(KEY, value);
  sessionStorage.setItem(WHO, JSON.stringify(principal));
  return principal;
}

/** The token's principal: the kept one at once (checked again in the background, once per
 * page load), else from /whoami. */
export async function whoami() {
  checked ||= api("/whoami").then((p) => {
    principal = p;
    sessionStorage.setItem(WHO, JSON.stringify(p));
    return p;
  });
  if (principal) { checked.catch(() => {}); return principal; }
  return checked;
}

async function body(res) {
  const type = res.headers.get("content-type") || "";
  if (type.includes("json")) return res.json();
  return { detail: await res.text() };
}

/** Fetch /api/v1 + path; JSON in and out. A 401 signs out and goes to the sign-in page. */
export async function api(path, { method = "GET", json, text, type, raw } = {}) {
  const headers = { Authorization: `Bearer ${token() || ""}` };
  let payload;
  if (json !== undefined) { payload = JSON.stringify(json); headers["Content-Type"] = "application/json"; }
  if (text !== undefined) { payload = text; headers["Content-Type"] = type || "text/plain"; }
  const res = await fetch(`/api/v1${path}`, { method, headers, body: payload });
  if (res.status === 401) {
    signOut();
    if (!location.hash.startsWith("#/signin")) location.hash = "#/signin";
    throw new ApiError(401, await body(res));
  }
  if (!res.ok) throw new ApiError(res.status, await body(res));
  if (raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

const RANK = { viewer: 0, editor: 1, owner: 2, admin: 3 };

/** Whether the signed-in token may act with `role` in `namespace` (the API decides anyway). */
export function can(role, namespace) {
  if (!principal) return false;
  if (principal.role === "admin") return true;
  return principal.namespace === namespace && RANK[principal.role] >= RANK[role];
}

export function roleRank(role) { return RANK[role]; }
export function current() { return principal; }
export const enc = encodeURIComponent;
