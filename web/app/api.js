// api.js - the HTTP API of the service (DESIGN §4) as small async functions.
// Every call sends the session cookie; an error reply becomes an ApiError
// carrying the status, the API's message and the field it names, so views
// can show "jobs[0].params.threshold: must be ..." next to the right input.

export class ApiError extends Error {
  constructor(status, message, field = null, code = null, details = null) {
    super(message);
    this.status = status;
    this.field = field;
    this.code = code;
    this.details = details;
  }
}

// Listeners told when a call gets 401 (the session expired or was revoked).
const unauthorizedListeners = new Set();
export function onUnauthorized(fn) { unauthorizedListeners.add(fn); }

export async function request(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'the service does not answer (is it running?)');
  }
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const err = json && json.error;
    if (res.status === 401) unauthorizedListeners.forEach((fn) => fn());
    throw new ApiError(res.status, err ? err.message : `${res.status} ${res.statusText}`,
      err && err.details ? err.details.field || null : null, err ? err.code : null,
      err && err.details ? err.details : null);
  }
  return json;
}

export const api = {
  session: () => request('GET', '/api/session'),
  signIn: (cred) => request('POST', '/api/session', cred),
  signOut: () => request('DELETE', '/api/session'),
  workflows: (limit = 100) => request('GET', `/api/workflows?limit=${limit}`),
  workflow: (id) => request('GET', `/api/workflows/${encodeURIComponent(id)}`),
  submit: (wf) => request('POST', '/api/workflows', wf),
  validate: (wf) => request('POST', '/api/workflows?dry_run=true', wf),
  cancel: (id) => request('POST', `/api/workflows/${encodeURIComponent(id)}/cancel`),
  cancelJob: (id, job) => request('POST', `/api/workflows/${encodeURIComponent(id)}/jobs/${encodeURIComponent(job)}/cancel`),
  retryJob: (id, job) => request('POST', `/api/workflows/${encodeURIComponent(id)}/jobs/${encodeURIComponent(job)}/retry`),
  jobLog: async (id, job) => {
    const res = await fetch(`/api/workflows/${encodeURIComponent(id)}/jobs/${encodeURIComponent(job)}/log`, { credentials: 'same-origin' });
    if (!res.ok) throw new ApiError(res.status, `the log could not be read (${res.status})`);
    return res.text();
  },
  results: (id, job) => request('GET', `/api/workflows/${encodeURIComponent(id)}/jobs/${encodeURIComponent(job)}/results`),
  resultUrl: (id, job, name) => `/api/workflows/${encodeURIComponent(id)}/jobs/${encodeURIComponent(job)}/results/${encodeURIComponent(name)}`,
  slideInfo: (id, job) => request('GET', `/api/workflows/${encodeURIComponent(id)}/jobs/${encodeURIComponent(job)}/slide`),
  slides: () => request('GET', '/api/slides'),
  jobTypes: () => request('GET', '/api/job-types'),
  queue: () => request('GET', '/api/queue'),
  eventsSince: (since) => request('GET', `/api/events?since=${since}`),
};
