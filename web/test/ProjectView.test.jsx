// @vitest-environment jsdom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ApiError } from '../src/api.js';
import { BranchDetails } from '../src/components/BranchDetails.jsx';
import { ProjectView } from '../src/components/ProjectView.jsx';
import { branches, snapshots } from './fixtures.js';

// The project view against a fake API whose mutations answer with an operation, and a
// runMutation that just sends the request (App's follows the operation in a notice).
function fakeApi(overrides = {}) {
  const op = { id: 'op-000000000001', status: 'queued', steps: [] };
  return {
    project: vi.fn(async () => ({ name: 'demo', runtime: 'native', pg_version: '16', active_branch: 'main' })),
    branches: vi.fn(async () => branches),
    snapshots: vi.fn(async () => snapshots),
    operations: vi.fn(async () => []),
    protectBranch: vi.fn(async () => op),
    unprotectBranch: vi.fn(async () => op),
    setBranch: vi.fn(async () => op),
    deleteBranch: vi.fn(async () => op),
    resetBranch: vi.fn(async () => op),
    ...overrides,
  };
}

let root;
beforeEach(() => {
  root = document.createElement('div');
  document.body.appendChild(root);
});
afterEach(() => {
  act(() => render(null, root));
  root.remove();
});

const $ = (id) => root.querySelector(`[data-testid="${id}"]`);
// Enough turns for button -> dialog -> send -> runMutation -> request -> state to settle.
const flush = () => act(() => new Promise((r) => setTimeout(r, 0)));
const type = (el, value) =>
  act(() => {
    el.value = value;
    el.dispatchEvent(new Event('input', { bubbles: true }));
  });
const rows = () => [...root.querySelectorAll('tbody tr')].map((r) => r.getAttribute('data-testid'));

async function mount(api = fakeApi()) {
  const runMutation = vi.fn(async (title, project, target, request) => request());
  act(() => render(<ProjectView api={api} project="demo" version={0} runMutation={runMutation} readOnly={false} />, root));
  await flush();
  await flush();
  return { api, runMutation };
}

describe('ProjectView', () => {
  it('filters the table by label: "key", "key=value", several terms', async () => {
    await mount();
    expect(rows()).toHaveLength(5);
    const filter = $('label-filter');
    expect(root.querySelector('label[for="label-filter"]').textContent).toBe('Filter by label');

    type(filter, 'team');
    expect(rows()).toEqual(['row-demo/dev', 'row-demo/pr-42']);
    expect($('label-filter-status').textContent).toBe('2 of 5 branches have team');

    type(filter, 'team=web');
    expect(rows()).toEqual(['row-demo/pr-42']);
    type(filter, 'team=web, pr=41');
    expect(rows()).toEqual([]);
    expect($('branch-table-empty').textContent).toBe('No branch has these labels.');

    // A malformed filter filters nothing and says why.
    type(filter, '-team');
    expect(rows()).toHaveLength(5);
    expect(filter.getAttribute('aria-invalid')).toBe('true');
    expect($('label-filter-status').textContent).toContain('starting with a letter or digit');

    type(filter, '');
    expect(rows()).toHaveLength(5);
    expect($('label-filter-status').textContent).toBe('');
  });

  it('protects at once, without a dialog', async () => {
    const { api, runMutation } = await mount();
    act(() => $('action-protect-demo/dev').click());
    await flush();
    expect(root.querySelector('[role="dialog"]')).toBeNull();
    expect(runMutation).toHaveBeenCalledWith('Protect demo/dev', 'demo', 'demo/dev', expect.any(Function));
    expect(api.protectBranch).toHaveBeenCalledWith('demo', 'dev');
  });

  it('says above the table why the server refused to protect', async () => {
    const api = fakeApi({
      protectBranch: vi.fn(async () => {
        throw new ApiError(409, 'failed_precondition', 'protect demo/dev: busy');
      }),
    });
    await mount(api);
    act(() => $('action-protect-demo/dev').click());
    await flush();
    expect($('action-error').textContent).toContain('Protect demo/dev: protect demo/dev: busy');
    act(() => $('action-error').querySelector('button').click());
    expect($('action-error')).toBeNull();
  });

  it('unprotects only after the confirmation', async () => {
    const { api } = await mount();
    act(() => $('action-unprotect-demo/main').click());
    expect($('dialog-unprotect')).not.toBeNull();
    expect(api.unprotectBranch).not.toHaveBeenCalled();
    act(() => $('dialog-confirm').click());
    await flush();
    expect(api.unprotectBranch).toHaveBeenCalledWith('demo', 'main');
    expect($('dialog-unprotect')).toBeNull();
  });

  it('deletes a protected branch with force only once ticked', async () => {
    const guarded = branches.map((b) => (b.name === 'dev' ? { ...b, protected: true } : b));
    const { api } = await mount(fakeApi({ branches: vi.fn(async () => guarded) }));
    act(() => $('action-delete-demo/dev').click());
    expect($('delete-force-note').textContent).toContain('demo/dev is protected');
    act(() => $('delete-force').click());
    act(() => $('dialog-confirm').click());
    await flush();
    expect(api.deleteBranch).toHaveBeenCalledWith('demo', 'dev', false, true);
  });

  it('resets a protected branch with {force: true} once ticked', async () => {
    const { api } = await mount();
    act(() => $('action-reset-demo/main').click());
    expect($('reset-force-note').textContent).toContain('demo/main is protected');
    act(() => {
      $('reset-snapshot').value = '1';
      $('reset-snapshot').dispatchEvent(new Event('change', { bubbles: true }));
    });
    act(() => $('reset-force').click());
    act(() => $('dialog-confirm').click());
    await flush();
    expect(api.resetBranch).toHaveBeenCalledWith('demo', 'main', { snapshot: 1, force: true });
  });

  it('sets a TTL with PATCH from the Set TTL dialog', async () => {
    const { api } = await mount();
    act(() => $('action-ttl-demo/dev').click());
    type($('ttl-ttl'), '12h');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(api.setBranch).toHaveBeenCalledWith('demo', 'dev', { ttl_s: 43200 });
    expect($('dialog-ttl')).toBeNull();
  });

  it('keeps the Set TTL dialog open with the server\'s reason when it refuses', async () => {
    const api = fakeApi({
      setBranch: vi.fn(async () => {
        throw new ApiError(400, 'invalid_argument', 'set demo/dev: --ttl must be between 1 second and 36500 days');
      }),
    });
    await mount(api);
    act(() => $('action-ttl-demo/dev').click());
    act(() => $('ttl-remove').click());
    act(() => $('dialog-confirm').click());
    await flush();
    expect(api.setBranch).toHaveBeenCalledWith('demo', 'dev', { no_ttl: true });
    expect($('dialog-error').textContent).toContain('36500 days');
  });
});

describe('BranchDetails', () => {
  it('shows the expiry, the protection and the labels of the branch', async () => {
    const pr42 = branches.find((b) => b.name === 'pr-42');
    const api = {
      branch: vi.fn(async () => ({ ...pr42, protected: true })),
      branchLogs: vi.fn(async () => ({ lines: [] })),
    };
    act(() => render(<BranchDetails api={api} project="demo" branch="pr-42" listed={pr42} version={0} onClose={() => {}} />, root));
    await flush();
    expect($('details-expires').textContent).toContain('TTL: deleted at 2026-12-04 17:30:00Z');
    expect($('details-expires').textContent).toContain('idle TTL: deleted after 2h without a client session');
    expect($('details-protected').textContent).toBe('yes: delete, reset and expiry refuse it unless forced');
    expect([...$('details-labels').querySelectorAll('li')].map((li) => li.textContent)).toEqual(['pr=42', 'team=web']);
  });

  it('says never and no for a branch without either', async () => {
    const dev = branches.find((b) => b.name === 'dev');
    const api = { branch: vi.fn(async () => ({ ...dev, labels: {} })), branchLogs: vi.fn(async () => ({ lines: [] })) };
    act(() => render(<BranchDetails api={api} project="demo" branch="dev" listed={dev} version={0} onClose={() => {}} />, root));
    await flush();
    expect($('details-expires').textContent).toBe('never (no TTL)');
    expect($('details-protected').textContent).toBe('no');
    expect($('details-labels')).toBeNull();
  });
});
