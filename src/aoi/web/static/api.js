// Talks to the aoi HTTP API (/api/v1). Every failure becomes an ApiError whose message an operator can act on.
// The stored API key goes with every request: writes always need one, and so do reads unless the service
// opened them (aoi serve --open-reads or --demo). Images are fetched here too (an <img src> cannot carry
// the key) and handed out as blobs. A 401 or 403 is also announced as an `aoi:auth-refused` window event,
// so the key box can say what is wrong.

import { t } from "./i18n.js";

const API_ROOT = "/api/v1";
const KEY_STORAGE = "aoi.apiKey";

export class ApiError extends Error {
  constructor(status, method, path, detail) {
    super(describeFailure(status, method, path, detail));
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }
}

export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setApiKey(key) {
  const trimmed = (key || "").trim();
  if (trimmed) localStorage.setItem(KEY_STORAGE, trimmed);
  else localStorage.removeItem(KEY_STORAGE);
  return trimmed;
}

// FastAPI answers {"detail": "text"} or, for validation errors, {"detail": [{loc, msg}, ...]}.
function detailText(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((item) => {
        if (typeof item === "string") return item;
        const where = Array.isArray(item.loc) ? item.loc.filter((p) => p !== "body").join(".") : "";
        return where ? `${where}: ${item.msg}` : item.msg || JSON.stringify(item);
      })
      .join("; ");
  }
  if (typeof detail === "object") return detail.message || detail.detail || JSON.stringify(detail);
  return String(detail);
}

function keyHint(status) {
  if (status === 403) return t("error.key_scope", { command: "`aoi keys create --scopes read,review`" });
  const command = "`aoi keys create`";
  return getApiKey() ? t("error.key_refused", { command }) : t("error.key_missing", { command });
}

function describeFailure(status, method, path, detail) {
  const text = detailText(detail);
  const what = `${method} ${path}`;
  const suffix = text ? ": " + text : "";
  if (status === 0) return t("error.unreachable", { what, detail: text || t("error.network") });
  if (status === 401 || status === 403) {
    return t("error.unauthorised", { status, detail: text || t("error.not_authorised"), what, hint: keyHint(status) });
  }
  if (status === 404) return t("error.not_found", { what, detail: suffix });
  if (status >= 500) return t("error.server", { status, what, detail: suffix });
  return t("error.refused", { status, detail: text || t("error.request_refused"), what });
}

function withKey(headers) {
  const key = getApiKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

// fetch(), with a network failure and any non-2xx answer turned into an ApiError (detail from the JSON body).
// `quiet`: a refusal (401/403) is not announced to the key box (the caller falls back on its own).
async function send(method, url, shownPath, init, quiet = false) {
  let response;
  try {
    response = await fetch(url, { method, ...init });
  } catch (err) {
    throw new ApiError(0, method, shownPath, err.message);
  }
  if (response.ok) return response;
  const contentType = response.headers.get("content-type") || "";
  const payload = contentType.includes("json") ? await response.json().catch(() => null) : await response.text();
  const detail = payload && typeof payload === "object" ? payload.detail ?? payload : payload;
  if (!quiet && (response.status === 401 || response.status === 403)) {
    window.dispatchEvent(new CustomEvent("aoi:auth-refused", { detail: { status: response.status, hasKey: Boolean(getApiKey()) } }));
  }
  throw new ApiError(response.status, method, shownPath, detail || response.statusText);
}

async function request(method, path, { params, body, quiet } = {}) {
  const url = new URL(API_ROOT + path, window.location.origin);
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  const headers = withKey({ Accept: "application/json" });
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await send(
    method,
    url,
    API_ROOT + path,
    { headers, body: body === undefined ? undefined : JSON.stringify(body) },
    quiet,
  );
  const contentType = response.headers.get("content-type") || "";
  return contentType.includes("json") ? response.json().catch(() => null) : response.text();
}

// An image of the API (an overlay PNG) as a Blob, fetched with the key.
export async function fetchImage(url) {
  const response = await send("GET", url, url, { headers: withKey({ Accept: "image/*" }) });
  return response.blob();
}

// List endpoints answer a page object {items: [...], total, ...}.
function pageItems(payload) {
  return payload && Array.isArray(payload.items) ? payload.items : [];
}

// Newest first. hasDefects=true skips passing boards (the review queue needs only boards with defects);
// lot and panelId keep only the boards of that lot or panel (exact ids).
export async function listInspections({ limit = 24, product, hasDefects, lot, panelId } = {}) {
  const params = { limit, product, has_defects: hasDefects, lot, panel_id: panelId };
  return pageItems(await request("GET", "/inspections", { params }));
}

// A lot's printable report (HTML) as a Blob, fetched with the key; `lang` is the page's language.
// A printable HTML report (GET /reports/...), fetched with the key: a blob to show in a new window.
async function fetchReport(path, lang) {
  const url = new URL(API_ROOT + path, window.location.origin);
  url.searchParams.set("format", "html");
  url.searchParams.set("lang", lang);
  const response = await send("GET", url, API_ROOT + path, { headers: withKey({ Accept: "text/html" }) });
  return response.blob();
}

export function fetchLotReport(lot, lang) {
  return fetchReport(`/reports/lot/${encodeURIComponent(lot)}`, lang);
}

// The shift running now, in the plant's hours (aoi serve --shifts).
export function fetchShiftReport(lang) {
  return fetchReport("/reports/shift", lang);
}

export function getInspection(id) {
  return request("GET", `/inspections/${encodeURIComponent(id)}`);
}

export async function listProducts() {
  return pageItems(await request("GET", "/products"));
}

export function getStats({ product } = {}) {
  return request("GET", "/stats", { params: { product } });
}

export function overlayUrl(inspectionId) {
  return `${API_ROOT}/inspections/${encodeURIComponent(inspectionId)}/overlay.png`;
}

// The tested image as captured, unannotated (the board view draws its own markers over it).
export function imageUrl(inspectionId) {
  return `${API_ROOT}/inspections/${encodeURIComponent(inspectionId)}/image.png`;
}

// The review queue over the whole backlog: {item: {defect, inspection, position, crops, lease} | null,
// pending, leased}. `params`: product, type, min_confidence, max_confidence, and one of after / before / at
// (a defect id). A look (GET) leases nothing; a claim (POST, the review scope) leases the item to this key.
export function peekNext(params) {
  return request("GET", "/review/next", { params });
}

// Quiet: a key without the review scope (or none) is not an error here; the view falls back to a look.
export function claimNext(params) {
  return request("POST", "/review/next", { params, quiet: true });
}

// {pending, leased}: the same count as the Stats view's "awaiting review".
export function pendingReviews(params) {
  return request("GET", "/review/pending", { params });
}

// Undo: the defect is pending again and leased to this key. Answers like claimNext.
export function undoReview(defectId) {
  return request("DELETE", `/defects/${encodeURIComponent(defectId)}/review`);
}

// Gives this key's lease back (the operator left the queue), so the defect is free for others at once.
export function releaseLease() {
  return request("DELETE", "/review/lease", { quiet: true });
}

// decision: "confirm" | "false_call" | "reclassify"; newType only for "reclassify".
export function reviewDefect(defectId, decision, newType) {
  const body = { decision };
  if (decision === "reclassify") body.type = newType;
  return request("POST", `/defects/${encodeURIComponent(defectId)}/review`, { body });
}

// A defect the machine missed, marked by the operator (the review scope): stored confirmed, never queued.
// boxPx: [x1, y1, x2, y2] in image pixels. Answers {inspection_id, verdict, defect}.
export function addMissedDefect(inspectionId, type, boxPx) {
  return request("POST", `/inspections/${encodeURIComponent(inspectionId)}/defects`, { body: { type, box_px: boxPx } });
}
