import { describe, expect, it, vi } from 'vitest';
import { ApiError, createApi } from '../src/api.js';

// A fetch stub: answers from `routes` ("METHOD /path" -> [status, body, headers]) and records
// every call.
function stubFetch(routes) {
  const calls = [];
  const fetchImpl = vi.fn(async (url, init) => {
    calls.push({ url, ...init, headers: { ...init.headers } });
    const path = url.split('?')[0];
    const [status, body, headers = {}] = routes[`${init.method} ${path}`] ?? [404, { error: { code: 'not_found', message: `no route ${path}` } }];
    return {
      ok: status >= 200 && status < 300,
      status,
      headers: { get: (name) => headers[name] ?? null },
      text: async () => (body === undefined ? '' : JSON.stringify(body)),
    };
  });
  return { fetchImpl, calls };
}

function memoryStorage() {
  const m = new Map();
  return {
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => m.set(k, String(v)),
    removeItem: (k) => m.delete(k),
    map: m,
  };
}

const OP = { id: 'op-1', kind: 'branch.create', target: 'demo/x', status: 'queued', steps: [] };

describe('api client', () => {
  it('logs in, keeps the CSRF token and sends it on every non-GET request', async () => {
    const { fetchImpl, calls } = stubFetch({
      'POST /api/v1/session': [200, { name: 'ci', scope: 'write', csrf_token: 'csrf-123' }],
      'GET /api/v1/projects': [200, []],
      'POST /api/v1/projects/demo/branches': [202, OP],
      'DELETE /api/v1/projects/demo/branches/x': [202, OP],
      'POST /api/v1/projects/demo/branches/x/stop': [202, OP],
    });
    const storage = memoryStorage();
    const api = createApi({ fetchImpl, storage });

    const session = await api.login('pgbt_1_secret');
    expect(session.scope).toBe('write');
    expect(api.csrfToken).toBe('csrf-123');
    expect(storage.getItem('pgbranch.csrf')).toBe('csrf-123');
    // The login itself: the token in the body, JSON, same-origin credentials.
    expect(JSON.parse(calls[0].body)).toEqual({ token: 'pgbt_1_secret' });
    expect(calls[0].headers['Content-Type']).toBe('application/json');
    expect(calls[0].credentials).toBe('same-origin');

    await api.projects();
    expect(calls[1].method).toBe('GET');
    expect(calls[1].headers['X-CSRF-Token']).toBeUndefined();
    expect(calls[1].credentials).toBe('same-origin');

    await api.createBranch('demo', { name: 'x', parent: 'demo/main' });
    await api.deleteBranch('demo', 'x', false);
    await api.branchVerb('demo', 'x', 'stop');
    for (const c of calls.slice(2)) {
      expect(c.headers['X-CSRF-Token']).toBe('csrf-123');
      expect(c.credentials).toBe('same-origin');
      expect(c.url).toContain('wait=false');
    }
    expect(JSON.parse(calls[2].body)).toEqual({ name: 'x', parent: 'demo/main' });
  });

  it('sends recursive=true only when asked to', async () => {
    const { fetchImpl, calls } = stubFetch({
      'DELETE /api/v1/projects/demo/branches/x': [202, OP],
    });
    const api = createApi({ fetchImpl, storage: null });
    await api.deleteBranch('demo', 'x', false);
    await api.deleteBranch('demo', 'x', true);
    expect(calls[0].url).toBe('/api/v1/projects/demo/branches/x?wait=false');
    expect(calls[1].url).toBe('/api/v1/projects/demo/branches/x?recursive=true&wait=false');
  });

  it('sends force=true only when asked to, on delete and in the reset body', async () => {
    const { fetchImpl, calls } = stubFetch({
      'DELETE /api/v1/projects/demo/branches/x': [202, OP],
      'POST /api/v1/projects/demo/branches/x/reset': [202, OP],
    });
    const api = createApi({ fetchImpl, storage: null });
    await api.deleteBranch('demo', 'x', false, true);
    await api.deleteBranch('demo', 'x', true, true);
    await api.resetBranch('demo', 'x', { snapshot: 2, force: true });
    expect(calls[0].url).toBe('/api/v1/projects/demo/branches/x?force=true&wait=false');
    expect(calls[1].url).toBe('/api/v1/projects/demo/branches/x?recursive=true&force=true&wait=false');
    expect(JSON.parse(calls[2].body)).toEqual({ snapshot: 2, force: true });
  });

  it('sets the TTL with PATCH and protects/unprotects with POST, each with the CSRF header', async () => {
    const { fetchImpl, calls } = stubFetch({
      'POST /api/v1/session': [200, { name: 'ci', scope: 'write', csrf_token: 'c2' }],
      'PATCH /api/v1/projects/demo/branches/x': [202, OP],
      'POST /api/v1/projects/demo/branches/x/protect': [202, OP],
      'POST /api/v1/projects/demo/branches/x/unprotect': [202, OP],
    });
    const api = createApi({ fetchImpl, storage: null });
    await api.login('t');
    expect(await api.setBranch('demo', 'x', { ttl_s: 3600 })).toEqual(OP);
    await api.protectBranch('demo', 'x');
    await api.unprotectBranch('demo', 'x');
    const [patch, protect, unprotect] = calls.slice(1);
    expect(patch.method).toBe('PATCH');
    expect(patch.url).toBe('/api/v1/projects/demo/branches/x?wait=false');
    expect(JSON.parse(patch.body)).toEqual({ ttl_s: 3600 });
    expect(protect.url).toBe('/api/v1/projects/demo/branches/x/protect?wait=false');
    expect(JSON.parse(protect.body)).toEqual({});
    expect(unprotect.url).toBe('/api/v1/projects/demo/branches/x/unprotect?wait=false');
    for (const c of [patch, protect, unprotect]) {
      expect(c.headers['X-CSRF-Token']).toBe('c2');
      expect(c.headers['Content-Type']).toBe('application/json');
    }
  });

  it('picks up a CSRF token kept in session storage (a reload)', async () => {
    const { fetchImpl, calls } = stubFetch({ 'POST /api/v1/projects/demo/branches/x/start': [202, OP] });
    const storage = memoryStorage();
    storage.setItem('pgbranch.csrf', 'kept');
    const api = createApi({ fetchImpl, storage });
    await api.branchVerb('demo', 'x', 'start');
    expect(calls[0].headers['X-CSRF-Token']).toBe('kept');
  });

  it('on a 401 forgets the CSRF token and calls onUnauthorized', async () => {
    const { fetchImpl } = stubFetch({
      'POST /api/v1/session': [200, { name: 'ci', scope: 'write', csrf_token: 'c' }],
      'GET /api/v1/projects': [401, { error: { code: 'unauthenticated', message: 'list projects: no session' } }],
    });
    const onUnauthorized = vi.fn();
    const storage = memoryStorage();
    const api = createApi({ fetchImpl, storage, onUnauthorized });
    await api.login('t');
    const err = await api.projects().catch((e) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(401);
    expect(err.code).toBe('unauthenticated');
    expect(err.message).toBe('list projects: no session');
    expect(onUnauthorized).toHaveBeenCalledTimes(1);
    expect(api.csrfToken).toBe(null);
    expect(storage.getItem('pgbranch.csrf')).toBe(null);
  });

  it('does not redirect on a refused login: the form says so', async () => {
    const { fetchImpl } = stubFetch({
      'POST /api/v1/session': [401, { error: { code: 'unauthenticated', message: 'bad token' } }],
    });
    const onUnauthorized = vi.fn();
    const api = createApi({ fetchImpl, storage: null, onUnauthorized });
    await expect(api.login('wrong')).rejects.toMatchObject({ status: 401 });
    expect(onUnauthorized).not.toHaveBeenCalled();
  });

  it('session() is null without a session, and refreshes the CSRF token with one', async () => {
    const none = createApi({ fetchImpl: stubFetch({ 'GET /api/v1/session': [401, { error: { code: 'unauthenticated', message: 'x' } }] }).fetchImpl, storage: null });
    expect(await none.session()).toBe(null);
    const some = createApi({ fetchImpl: stubFetch({ 'GET /api/v1/session': [200, { name: 'ci', scope: 'read', csrf_token: 'fresh' }] }).fetchImpl, storage: null });
    expect((await some.session()).scope).toBe('read');
    expect(some.csrfToken).toBe('fresh');
  });

  it('logs out with DELETE /api/v1/session and the CSRF header, and forgets the token', async () => {
    const { fetchImpl, calls } = stubFetch({
      'POST /api/v1/session': [200, { name: 'ci', scope: 'write', csrf_token: 'c' }],
      'DELETE /api/v1/session': [204, undefined],
    });
    const api = createApi({ fetchImpl, storage: null });
    await api.login('t');
    await api.logout();
    expect(calls[1].method).toBe('DELETE');
    expect(calls[1].url).toBe('/api/v1/session');
    expect(calls[1].headers['X-CSRF-Token']).toBe('c');
    expect(api.csrfToken).toBe(null);
  });

  it("turns the server's error body into the error's code and message", async () => {
    const { fetchImpl } = stubFetch({
      'POST /api/v1/projects/demo/branches': [409, { error: { code: 'already_exists', message: 'create branch demo/x: branch demo/x already exists' } }],
      'GET /api/v1/projects': [429, { error: { code: 'too_many_requests', message: 'slow down' } }, { 'Retry-After': '30' }],
    });
    const api = createApi({ fetchImpl, storage: null });
    await expect(api.createBranch('demo', { name: 'x' })).rejects.toMatchObject({
      status: 409,
      code: 'already_exists',
      message: 'create branch demo/x: branch demo/x already exists',
    });
    await expect(api.projects()).rejects.toMatchObject({ status: 429, message: 'slow down (retry after 30 s)' });
  });

  it('reports an unreachable server as an ApiError', async () => {
    const api = createApi({ fetchImpl: async () => { throw new TypeError('Failed to fetch'); }, storage: null });
    await expect(api.projects()).rejects.toMatchObject({ status: 0, code: 'unavailable' });
  });

  it('escapes names in paths and passes query parameters', async () => {
    const { fetchImpl, calls } = stubFetch({});
    const api = createApi({ fetchImpl, storage: null });
    await api.branchLogs('demo', 'a b', 200).catch(() => {});
    await api.audit(100).catch(() => {});
    expect(calls[0].url).toBe('/api/v1/projects/demo/branches/a%20b/logs?tail=200');
    expect(calls[1].url).toBe('/api/v1/audit?limit=100');
  });
});
