// The REST API as the page uses it: bearer-key fetches, pictures as bitmaps, XHR uploads.

export const API = "/api/v1";
const KEY_STORAGE = "mammocad.apiKey";
const READER_STORAGE = "mammocad.reader";

export function getKey() {
  return localStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

export function getReader() {
  return localStorage.getItem(READER_STORAGE) || "";
}

export function setReader(reader) {
  if (reader) localStorage.setItem(READER_STORAGE, reader);
  else localStorage.removeItem(READER_STORAGE);
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function authHeaders(extra = {}) {
  const headers = new Headers(extra);
  const key = getKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  return headers;
}

// One item of FastAPI's 422 list, with the field it is about: its "msg" alone ("Value should
// have at most 2000 items") does not say which of the reader's entries is wrong.
function validationText(item) {
  if (!item || typeof item !== "object") return String(item);
  const where = (Array.isArray(item.loc) ? item.loc : []).filter((part) => part !== "body");
  const message = item.msg || JSON.stringify(item);
  return where.length ? `${where.join(" → ")}: ${message}` : message;
}

// FastAPI says {"detail": "..."} or {"detail": [{"msg": ...}]}; problem+json adds "title".
function describe(body, fallback) {
  if (!body || typeof body !== "object") return fallback;
  const detail = body.detail ?? body.message ?? body.title;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map(validationText).join("; ");
  }
  return fallback;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const message = describe(body, `${response.status} ${response.statusText}`);
  if (response.status === 401 || response.status === 403) {
    window.dispatchEvent(new CustomEvent("mammocad:unauthorized", { detail: message }));
  }
  return new ApiError(response.status, message);
}

/** JSON request to the API; resolves to the parsed body (null for 204), throws ApiError. */
export async function request(path, { method = "GET", json, signal } = {}) {
  const headers = authHeaders({ Accept: "application/json" });
  let body;
  if (json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  }
  const response = await fetch(path, { method, headers, body, signal });
  if (!response.ok) throw await failure(response);
  if (response.status === 204) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("json") ? response.json() : response.text();
}

/** A picture of the API as an ImageBitmap (fetched with the key, so no key in any URL). */
export async function fetchBitmap(path, { signal } = {}) {
  const response = await fetch(path, { headers: authHeaders(), signal });
  if (!response.ok) throw await failure(response);
  return createImageBitmap(await response.blob());
}

/**
 * POST files as multipart "files" with upload progress; resolves to {status, body, location}.
 * onProgress(fraction) is called with 0..1 while the bytes go out.
 */
export function uploadFiles(files, { onProgress } = {}) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const file of files) form.append("files", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `${API}/studies`);
    const key = getKey();
    if (key) xhr.setRequestHeader("Authorization", `Bearer ${key}`);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && onProgress) onProgress(event.loaded / event.total);
    });
    xhr.addEventListener("load", () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve({ status: xhr.status, body, location: xhr.getResponseHeader("Location") });
        return;
      }
      if (xhr.status === 401 || xhr.status === 403) {
        window.dispatchEvent(new CustomEvent("mammocad:unauthorized"));
      }
      reject(new ApiError(xhr.status, describe(body, `upload failed: HTTP ${xhr.status}`)));
    });
    xhr.addEventListener("error", () => reject(new ApiError(0, "upload failed: network error")));
    xhr.addEventListener("abort", () => reject(new ApiError(0, "upload cancelled")));
    xhr.send(form);
  });
}

export const routes = {
  studies: () => `${API}/studies`,
  study: (uid) => `${API}/studies/${encodeURIComponent(uid)}`,
  feedback: (uid) => `${API}/studies/${encodeURIComponent(uid)}/feedback`,
  picture: (uid, sop, name) =>
    `${API}/studies/${encodeURIComponent(uid)}/images/${encodeURIComponent(sop)}/${name}`,
  // the stored image without burned-in findings (mammocad.web.routes), for the viewer
  display: (uid, sop) =>
    `/ui/pictures/${encodeURIComponent(uid)}/${encodeURIComponent(sop)}/display.png`,
  job: (id) => `${API}/jobs/${encodeURIComponent(id)}`,
  models: () => `${API}/models`,
  ready: () => "/health/ready",
};
