// The client of pgbranch's REST API (/work/notes/api-contract.md, "Auth" and "Errors").
//
// The dashboard logs in with a token once (POST /api/v1/session); the server answers with an
// HttpOnly session cookie, which the browser sends by itself (credentials: 'same-origin'), and
// a CSRF token, which this client keeps and sends as X-CSRF-Token on every request that is
// not a GET. A 401 on any call but the login itself means the session is gone: the client
// forgets its CSRF token and calls onUnauthorized, and the app shows the login form.

const CSRF_KEY = 'pgbranch.csrf';
const SAFE_METHODS = new Set(['GET', 'HEAD']);

export class ApiError extends Error {
  constructor(status, code, message, body = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

// `fetchImpl` and `storage` are injectable for tests; the defaults are the browser's.
export function createApi(options = {}) {
  const {
    fetchImpl = (...args) => globalThis.fetch(...args),
    storage = typeof sessionStorage === 'undefined' ? null : sessionStorage,
    onUnauthorized = () => {},
    base = '',
  } = options;

  let csrf = null;
  try {
    csrf = storage?.getItem(CSRF_KEY) ?? null;
  } catch {
    csrf = null; // storage may be blocked; memory alone is enough
  }

  function setCsrf(value) {
    csrf = value || null;
    try {
      if (csrf) storage?.setItem(CSRF_KEY, csrf);
      else storage?.removeItem(CSRF_KEY);
    } catch {
      // ignore: see above
    }
  }

  // One call. `query` values that are null/undefined are left out. Returns the parsed JSON
  // body, or null for an empty one (204). Throws ApiError for any non-2xx answer.
  async function request(method, path, { body, query, redirectOn401 = true } = {}) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== null) params.set(k, String(v));
    }
    const qs = params.toString();
    const url = `${base}${path}${qs ? `?${qs}` : ''}`;
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (!SAFE_METHODS.has(method) && csrf) headers['X-CSRF-Token'] = csrf;

    let response;
    try {
      response = await fetchImpl(url, {
        method,
        headers,
        credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      throw new ApiError(0, 'unavailable', `cannot reach pgbranch serve: ${e?.message ?? e}`);
    }

    const text = response.status === 204 ? '' : await response.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (response.ok) return data;

    const err = data?.error ?? {};
    let message = err.message || `${method} ${path}: HTTP ${response.status}`;
    if (response.status === 429) {
      const retry = response.headers?.get?.('Retry-After');
      if (retry) message += ` (retry after ${retry} s)`;
    }
    const error = new ApiError(response.status, err.code ?? `http_${response.status}`, message, data);
    if (response.status === 401 && redirectOn401) {
      setCsrf(null);
      onUnauthorized(error);
    }
    throw error;
  }

  const enc = encodeURIComponent;
  const branchPath = (p, b) => `/api/v1/projects/${enc(p)}/branches/${enc(b)}`;
  // Mutations return an Operation (202) at once; the caller follows it.
  const mutate = (method, path, body, query = {}) =>
    request(method, path, { body, query: { ...query, wait: 'false' } });

  return {
    request,
    get csrfToken() {
      return csrf;
    },

    // Session. A wrong token on login is the form's error, not a redirect.
    async login(token) {
      const session = await request('POST', '/api/v1/session', {
        body: { token },
        redirectOn401: false,
      });
      setCsrf(session?.csrf_token);
      return session;
    },
    // The current session, or null without one (no redirect: the app is deciding what to show).
    async session() {
      try {
        const session = await request('GET', '/api/v1/session', { redirectOn401: false });
        if (session?.csrf_token) setCsrf(session.csrf_token);
        return session;
      } catch (e) {
        if (e.status === 401) {
          setCsrf(null);
          return null;
        }
        throw e;
      }
    },
    async logout() {
      try {
        await request('DELETE', '/api/v1/session', { redirectOn401: false });
      } finally {
        setCsrf(null);
      }
    },

    // Reads.
    status: () => request('GET', '/api/v1/status'),
    projects: () => request('GET', '/api/v1/projects'),
    project: (p) => request('GET', `/api/v1/projects/${enc(p)}`),
    branches: (p) => request('GET', `/api/v1/projects/${enc(p)}/branches`),
    branch: (p, b) => request('GET', branchPath(p, b)),
    branchLogs: (p, b, tail = 200) => request('GET', `${branchPath(p, b)}/logs`, { query: { tail } }),
    branchWal: (p, b) => request('GET', `${branchPath(p, b)}/wal`),
    snapshots: () => request('GET', '/api/v1/snapshots'),
    audit: (limit = 100) => request('GET', '/api/v1/audit', { query: { limit } }),
    doctor: () => request('GET', '/api/v1/doctor'),
    operations: () => request('GET', '/api/v1/operations'),
    operation: (id) => request('GET', `/api/v1/operations/${enc(id)}`),

    // Mutations (each returns an Operation).
    createBranch: (p, body) => mutate('POST', `/api/v1/projects/${enc(p)}/branches`, body),
    // `recursive` only when the user accepted deleting the dependents too; `force` only when
    // the user accepted deleting a protected branch.
    deleteBranch: (p, b, recursive = false, force = false) =>
      mutate('DELETE', branchPath(p, b), undefined, {
        ...(recursive ? { recursive: 'true' } : {}),
        ...(force ? { force: 'true' } : {}),
      }),
    // body: {snapshot?, force?}
    resetBranch: (p, b, body = {}) => mutate('POST', `${branchPath(p, b)}/reset`, body),
    // body (BranchSetRequest): {ttl_s?, idle_ttl_s?} | {no_ttl: true}, and/or {labels}.
    setBranch: (p, b, body) => mutate('PATCH', branchPath(p, b), body),
    protectBranch: (p, b) => mutate('POST', `${branchPath(p, b)}/protect`, {}),
    unprotectBranch: (p, b) => mutate('POST', `${branchPath(p, b)}/unprotect`, {}),
    snapshotBranch: (p, b, body = {}) => mutate('POST', `${branchPath(p, b)}/snapshots`, body),
    // verb: start | stop | suspend | resume
    branchVerb: (p, b, verb) => mutate('POST', `${branchPath(p, b)}/${verb}`, {}),
  };
}
