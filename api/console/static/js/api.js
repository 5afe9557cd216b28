// The API from the browser: every request carries the signed-in credential
// as a Bearer header; nothing is kept in cookies or URLs.

const KEY = 'wasmwizard.credential';
const ROLE = 'wasmwizard.role';

export const session = {
  get credential() { return sessionStorage.getItem(KEY); },
  get role() { return sessionStorage.getItem(ROLE); },
  set(credential, role) { sessionStorage.setItem(KEY, credential); sessionStorage.setItem(ROLE, role); },
  clear() { sessionStorage.removeItem(KEY); sessionStorage.removeItem(ROLE); },
};

// ApiError is a problem+json answer (or a failure to get one).
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem && problem.detail ? problem.detail : 'HTTP ' + status);
    this.status = status;
    this.problem = problem;
  }
}

let onUnauthorized = () => {};
export function whenUnauthorized(fn) { onUnauthorized = fn; }

function headers(extra) {
  return Object.assign({ Authorization: 'Bearer ' + (session.credential || '') }, extra);
}

async function answer(res, quiet) {
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!res.ok) {
    if (res.status === 401 && !quiet) onUnauthorized();
    throw new ApiError(res.status, data);
  }
  return data;
}

// api calls a JSON route: api('GET', '/v1/jobs?limit=50'). A 401 signs
// the user out, unless opts.quiet (the sign-in form's own check).
export async function api(method, path, body, opts = {}) {
  const init = { method, headers: headers(), cache: 'no-store', credentials: 'omit', signal: opts.signal };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  return answer(await fetch(path, init), opts.quiet);
}

// download fetches a route's bytes with the credential and hands them to
// the browser as a file (a plain link could not carry the header): a
// blob: URL on a link with a download name, clicked. With sha256 (and a
// browser that has Web Crypto: a secure context) the bytes are checked
// against it first. It returns the number of bytes.
export async function download(path, filename, sha256) {
  const res = await fetch(path, { headers: headers(), cache: 'no-store', credentials: 'omit' });
  if (!res.ok) return answer(res);
  const blob = await res.blob();
  if (sha256 && globalThis.crypto && crypto.subtle) {
    const sum = new Uint8Array(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
    const hex = [...sum].map((b) => b.toString(16).padStart(2, '0')).join('');
    if (hex !== sha256) throw new ApiError(0, { detail: 'the bytes received do not match the artifact\'s SHA-256; try again' });
  }
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return blob.size;
}

// uploadModule sends a module's bytes with upload progress (fetch has none).
export function uploadModule(file, name, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/v1/modules' + (name ? '?name=' + encodeURIComponent(name) : ''));
    xhr.setRequestHeader('Authorization', 'Bearer ' + (session.credential || ''));
    xhr.setRequestHeader('Content-Type', 'application/wasm');
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); };
    xhr.onerror = () => reject(new ApiError(0, { detail: 'the upload did not reach the server' }));
    xhr.onload = () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch { data = null; }
      if (xhr.status === 200 || xhr.status === 201) resolve({ created: xhr.status === 201, module: data });
      else {
        if (xhr.status === 401) onUnauthorized();
        reject(new ApiError(xhr.status, data));
      }
    };
    xhr.send(file);
  });
}

// pages reads a paginated list one page at a time.
export function pageURL(base, params, cursor) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
  if (cursor) q.set('cursor', cursor);
  const qs = q.toString();
  return qs ? base + '?' + qs : base;
}
