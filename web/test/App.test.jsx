// @vitest-environment jsdom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { App } from '../src/components/App.jsx';
import { branches, snapshots } from './fixtures.js';

// The whole app against a fetch stub: login, the projects list, a project, and the way back to
// the login form when the session ends.
function server() {
  const state = { session: false, calls: [] };
  const json = (status, body) => ({
    ok: status >= 200 && status < 300,
    status,
    headers: { get: () => null },
    text: async () => (body === undefined ? '' : JSON.stringify(body)),
  });
  const fetchImpl = async (url, init) => {
    state.calls.push({ url, method: init.method, headers: init.headers });
    const path = url.split('?')[0];
    if (path === '/api/v1/session' && init.method === 'POST') {
      if (JSON.parse(init.body).token !== 'pgbt_1_s') return json(401, { error: { code: 'unauthenticated', message: 'bad token' } });
      state.session = true;
      return json(200, { name: 'ci', scope: 'write', csrf_token: 'c1' });
    }
    if (!state.session) return json(401, { error: { code: 'unauthenticated', message: 'no session' } });
    if (path === '/api/v1/session') return json(200, { name: 'ci', scope: 'write', csrf_token: 'c1' });
    if (path === '/api/v1/projects') return json(200, [{ name: 'demo', runtime: 'native', pg_version: '15', branch_count: 5, active_branch: 'main', created_at: '2026-12-01T00:00:00Z' }]);
    if (path === '/api/v1/status') return json(200, { pool: { kind: 'btrfs', size_bytes: 100, used_bytes: 50, free_bytes: 50 } });
    if (path === '/api/v1/projects/demo') return json(200, { name: 'demo', runtime: 'native', active_branch: 'main', branches });
    if (path === '/api/v1/projects/demo/branches') return json(200, branches);
    if (path === '/api/v1/snapshots') return json(200, snapshots);
    if (path === '/api/v1/operations') return json(200, []);
    if (path === '/api/v1/projects/demo/branches/dev/protect' && init.method === 'POST') {
      return json(202, { id: 'op-00000000000a', kind: 'branch.protect', target: 'demo/dev', status: 'queued', steps: [] });
    }
    if (path === '/api/v1/operations/op-00000000000a') {
      return json(200, { id: 'op-00000000000a', kind: 'branch.protect', target: 'demo/dev', status: 'succeeded', steps: [] });
    }
    return json(404, { error: { code: 'not_found', message: path } });
  };
  return { state, fetchImpl };
}

class NoEvents {
  constructor() {
    this.readyState = 0;
  }
  addEventListener() {}
  close() {}
}

let root;
beforeEach(() => {
  root = document.createElement('div');
  document.body.appendChild(root);
  location.hash = '';
});
afterEach(() => {
  act(() => render(null, root));
  root.remove();
});

const $ = (id) => root.querySelector(`[data-testid="${id}"]`);
async function until(check, what, tries = 100) {
  for (let i = 0; i < tries; i++) {
    await act(async () => {
      await new Promise((r) => setTimeout(r, 5));
    });
    if (check()) return;
  }
  throw new Error(`timed out waiting for ${what}`);
}
const type = (el, value) =>
  act(() => {
    el.value = value;
    el.dispatchEvent(new Event('input', { bubbles: true }));
  });

describe('App', () => {
  it('logs in, shows projects and a project, and returns to the login form on a 401', async () => {
    const { state, fetchImpl } = server();
    act(() => render(<App fetchImpl={fetchImpl} storage={null} EventSourceImpl={NoEvents} />, root));
    await until(() => $('login-token'), 'the login form');

    type($('login-token'), 'wrong');
    act(() => $('login-submit').click());
    await until(() => $('login-error'), 'the login error');

    type($('login-token'), 'pgbt_1_s');
    act(() => $('login-submit').click());
    await until(() => $('project-link-demo'), 'the projects list');
    expect($('live-indicator')).not.toBeNull();
    await until(() => $('pool-usage-text'), 'the pool usage');
    expect($('pool-usage-text').textContent).toContain('50%');

    act(() => {
      location.hash = '#/projects/demo';
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    });
    await until(() => $('row-demo/main'), 'the branch table');
    expect($('node-branch-demo/main')).not.toBeNull();
    expect($('node-snapshot-1')).not.toBeNull();

    // The session ends on the server; the next call's 401 brings the login form back.
    state.session = false;
    act(() => {
      location.hash = '#/';
      window.dispatchEvent(new HashChangeEvent('hashchange'));
    });
    await until(() => $('login-token'), 'the login form again');
    expect(root.textContent).toContain('session has ended');
  });

  it('protects a branch with one click: POST .../protect with the CSRF header, followed in a notice', async () => {
    const { state, fetchImpl } = server();
    state.session = true;
    location.hash = '#/projects/demo';
    act(() => render(<App fetchImpl={fetchImpl} storage={null} EventSourceImpl={NoEvents} />, root));
    await until(() => $('action-protect-demo/dev'), 'the branch table');
    act(() => $('action-protect-demo/dev').click());
    await until(() => $('op-banner-op-00000000000a'), 'the operation notice');
    const call = state.calls.find((c) => c.url.startsWith('/api/v1/projects/demo/branches/dev/protect'));
    expect(call.method).toBe('POST');
    expect(call.url).toBe('/api/v1/projects/demo/branches/dev/protect?wait=false');
    expect(call.headers['X-CSRF-Token']).toBe('c1');
    await until(() => state.calls.some((c) => c.url === '/api/v1/operations/op-00000000000a'), 'the operation to be followed', 400);
    // It ended well: the notice says so.
    await until(() => $('op-banner-op-00000000000a')?.textContent.includes('succeeded'), 'the notice to say succeeded');
  });
});
