// The API client: the token lives in sessionStorage only (gone with the tab), and every call
// goes to this origin's public APIs with `Authorization: Bearer <token>`.
const KEY = "taskfn.token";
// The page is /console, so "." is the API's root (also under a stage prefix).
const ROOT = new URL(".", window.location.href);

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return window.sessionStorage.getItem(KEY) || "";
}

// One segment of an API path from an id: encoded, and never "." or "..", which a URL
// resolves as a step up (#/jobs/g/.. must not read tasks/g/, nor post to another route).
export function segment(value) {
  const text = String(value);
  if (text === "." || text === "..") throw new ApiError(404, `no such id: ${text}`);
  return encodeURIComponent(text);
}

export function url(path) {
  return new URL(path, ROOT).toString();
}

export function signOut() {
  window.sessionStorage.removeItem(KEY);
}

// Each API's error shape: GreenCloud {message}, fastlane {error}, BBS {error: {message}}.
function messageOf(status, text) {
  try {
    const body = JSON.parse(text);
    const error = body.message || body.error;
    if (typeof error === "string") return error;
    if (error && typeof error.message === "string") return error.message;
  } catch (_) { /* not JSON: the text itself */ }
  return text.slice(0, 200) || `HTTP ${status}`;
}

// One call; `as` is "json" (default), "text" or "response". `signal` aborts it.
export async function request(method, path, { body, headers = {}, as = "json", signal,
                                               redirect = "follow" } = {}) {
  const init = { method, headers: { Authorization: `Bearer ${token()}`, ...headers },
                 signal, redirect, cache: "no-store" };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers["Content-Type"] = init.headers["Content-Type"] || "application/json";
  }
  const response = await fetch(url(path), init);
  if (as === "response") return response;
  const text = await response.text();
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent("taskfn:unauthorized"));
    throw new ApiError(response.status, messageOf(response.status, text));
  }
  if (as === "text") return text;
  return text ? JSON.parse(text) : null;
}

export const get = (path, options) => request("GET", path, options);
export const post = (path, body, options = {}) => request("POST", path, { ...options, body });

// The Cell API answers 200 with its error inside: make that an exception too.
export async function cell(route, body) {
  const answer = await post(`v1/tasks/${route}`, body);
  if (answer.error) throw new ApiError(200, `${answer.error.type}: ${answer.error.message}`);
  return answer;
}

// A token is kept only once the platform took it (a user's or an admin's: /v1/metrics).
export async function signIn(candidate) {
  const response = await fetch(url("v1/metrics"), {
    headers: { Authorization: `Bearer ${candidate}` }, cache: "no-store" });
  if (response.status === 401) throw new ApiError(401, "unknown token");
  if (response.status === 403) throw new ApiError(403, "this token cannot use the console " +
                                                  "(a cell token?): use a user's or an admin's");
  if (!response.ok) throw new ApiError(response.status, `the platform answered ${response.status}`);
  window.sessionStorage.setItem(KEY, candidate);
}
