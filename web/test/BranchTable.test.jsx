// @vitest-environment jsdom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BranchTable } from '../src/components/BranchTable.jsx';
import { branches } from './fixtures.js';

let root;
beforeEach(() => {
  root = document.createElement('div');
  document.body.appendChild(root);
});
afterEach(() => {
  act(() => render(null, root));
  root.remove();
});

const cells = (row) => [...row.querySelectorAll('th, td')].map((c) => c.textContent.trim());

const NOW = Date.parse('2026-12-02T18:00:00Z');

describe('BranchTable', () => {
  it('renders a row per branch with state, port, sizes, uptime, window and expiry', () => {
    act(() => render(<BranchTable project="demo" branches={branches} onAction={() => {}} now={NOW} />, root));
    const rows = root.querySelectorAll('tbody tr');
    expect(rows).toHaveLength(branches.length);

    const main = root.querySelector('[data-testid="row-demo/main"]');
    const c = cells(main);
    expect(c[0]).toContain('main');
    expect(c[0]).toContain('active'); // the active branch is marked
    expect(c[1]).toBe('running');
    expect(c[2]).toBe('5432');
    expect(c[3]).toBe('50.0 MiB');
    expect(c[4]).toBe('1.0 MiB');
    expect(c[5]).toBe('1h01m');
    expect(c[6]).toBe('2026-12-02 12:00:00Z → now');
    expect(c[7]).toBe('—'); // no TTL
    expect(root.querySelector('[data-testid="active-demo/main"]')).not.toBeNull();
    expect(root.querySelector('[data-testid="active-demo/dev"]')).toBeNull();

    const suspended = cells(root.querySelector('[data-testid="row-demo/pr-43"]'));
    expect(suspended[1]).toBe('suspended');
    expect(suspended[5]).toBe('—'); // no uptime unless running
    expect(root.querySelector('[data-testid="row-demo/pr-43"] .badge').className).toContain('state-suspended');
  });

  it('has a button per action, enabled by state, that reports verb and branch', () => {
    const onAction = vi.fn();
    act(() => render(<BranchTable project="demo" branches={branches} onAction={onAction} />, root));
    const btn = (id) => root.querySelector(`[data-testid="${id}"]`);

    for (const verb of ['create', 'reset', 'snapshot', 'start', 'stop', 'suspend', 'resume', 'protect', 'ttl', 'delete']) {
      expect(btn(`action-${verb}-demo/dev`)).not.toBeNull();
      expect(btn(`action-${verb}-demo/dev`).tagName).toBe('BUTTON');
    }
    expect(btn('action-delete-demo/main').disabled).toBe(true);
    expect(btn('action-start-demo/dev').disabled).toBe(true);
    expect(btn('action-resume-demo/pr-43').disabled).toBe(false);
    expect(btn('action-suspend-demo/pr-43').disabled).toBe(true);
    expect(btn('action-start-demo/pr-42-fix').disabled).toBe(false);

    act(() => btn('action-stop-demo/dev').click());
    expect(onAction).toHaveBeenCalledTimes(1);
    expect(onAction.mock.calls[0][0]).toBe('stop');
    expect(onAction.mock.calls[0][1].name).toBe('dev');
    expect(btn('action-stop-demo/dev').getAttribute('aria-label')).toBe('Stop demo/dev');
  });

  it('disables every action for a read-only token', () => {
    act(() => render(<BranchTable project="demo" branches={branches} onAction={() => {}} readOnly />, root));
    const buttons = root.querySelectorAll('button[data-testid^="action-"]');
    expect(buttons.length).toBe(branches.length * 10);
    for (const b of buttons) expect(b.disabled).toBe(true);
  });

  it('marks the selected row and links each name to its branch', () => {
    act(() => render(<BranchTable project="demo" branches={branches} selected="demo/dev" onAction={() => {}} />, root));
    expect(root.querySelector('[data-testid="row-demo/dev"]').getAttribute('aria-selected')).toBe('true');
    expect(root.querySelector('[data-testid="select-demo/dev"]').getAttribute('href')).toBe('#/projects/demo/branches/dev');
  });

  it('shows dashes for sizes that were not measured', () => {
    const unmeasured = [{ ...branches[1], size_bytes: null, exclusive_bytes: null, recoverable: null }];
    act(() => render(<BranchTable project="demo" branches={unmeasured} onAction={() => {}} />, root));
    const c = cells(root.querySelector('[data-testid="row-demo/dev"]'));
    expect(c[3]).toBe('—');
    expect(c[4]).toBe('—');
    expect(c[6]).toBe('—');
  });
  it('shows the time left, the idle TTL, or a dash when serve never deletes the branch', () => {
    act(() => render(<BranchTable project="demo" branches={branches} onAction={() => {}} now={NOW} />, root));
    const expires = (name) => root.querySelector(`[data-testid="expires-demo/${name}"]`);
    expect(root.querySelector('thead').textContent).toContain('Expires');
    // pr-42: expires_at 2026-12-04T17:30Z, 1d 23h 30m from NOW, and an idle TTL of 2h.
    expect(expires('pr-42').textContent).toBe('in 1d 23hidle 2h');
    expect(expires('pr-42').querySelector('.sub').textContent).toBe('idle 2h');
    expect(expires('pr-42').getAttribute('title')).toContain('TTL: deleted at 2026-12-04 17:30:00Z');
    expect(expires('pr-42').getAttribute('title')).toContain('(at 2026-12-02 19:00:00Z if none comes)');
    expect(expires('pr-43').textContent).toBe('idle 1d 1h'); // only an idle TTL
    expect(expires('dev').textContent).toBe('—');
    expect(expires('dev').hasAttribute('title')).toBe(false);
  });

  it('says in words that a protected branch with a TTL is kept', () => {
    const guarded = [{ ...branches[2], protected: true }];
    act(() => render(<BranchTable project="demo" branches={guarded} onAction={() => {}} now={NOW} />, root));
    const cell = root.querySelector('[data-testid="expires-demo/pr-42"]');
    expect(cell.textContent).toContain('(protected)');
    expect(cell.getAttribute('title')).toContain('protected: expiry passes it by');
  });

  it('marks a protected branch with a badge that has words and a label, not only a colour', () => {
    act(() => render(<BranchTable project="demo" branches={branches} onAction={() => {}} now={NOW} />, root));
    const badge = root.querySelector('[data-testid="protected-demo/main"]');
    expect(badge.textContent).toBe('protected');
    expect(badge.getAttribute('aria-label')).toBe('protected: delete, reset and expiry refuse it unless forced');
    expect(badge.closest('th').getAttribute('scope')).toBe('row');
    expect(root.querySelector('[data-testid="protected-demo/dev"]')).toBeNull();
  });

  it('lists the labels as key=value chips under the name, sorted by key', () => {
    act(() => render(<BranchTable project="demo" branches={branches} onAction={() => {}} now={NOW} />, root));
    const list = root.querySelector('[data-testid="labels-demo/pr-42"]');
    expect(list.tagName).toBe('UL');
    expect(list.getAttribute('aria-label')).toBe('Labels of demo/pr-42');
    expect([...list.querySelectorAll('li.chip')].map((li) => li.textContent)).toEqual(['pr=42', 'team=web']);
    expect(list.closest('th')).not.toBeNull();
    expect(root.querySelector('[data-testid="labels-demo/main"]')).toBeNull(); // no labels, no list
  });

  it('offers Protect or Unprotect, whichever applies, and Set TTL except for main', () => {
    const onAction = vi.fn();
    act(() => render(<BranchTable project="demo" branches={branches} onAction={onAction} now={NOW} />, root));
    const btn = (id) => root.querySelector(`[data-testid="${id}"]`);
    expect(btn('action-unprotect-demo/main').textContent).toBe('Unprotect');
    expect(btn('action-protect-demo/main')).toBeNull();
    expect(btn('action-protect-demo/dev').textContent).toBe('Protect');
    expect(btn('action-protect-demo/dev').getAttribute('aria-label')).toBe('Protect demo/dev');
    expect(btn('action-unprotect-demo/dev')).toBeNull();
    expect(btn('action-ttl-demo/main').disabled).toBe(true); // serve never expires main
    expect(btn('action-ttl-demo/dev').disabled).toBe(false);
    expect(btn('action-ttl-demo/dev').getAttribute('aria-label')).toBe('Set TTL of demo/dev');
    // Delete stays the last button of a row.
    const row = [...root.querySelectorAll('[data-testid="row-demo/dev"] .actions button')].map((b) => b.textContent);
    expect(row.slice(-3)).toEqual(['Protect', 'Set TTL', 'Delete']);

    act(() => btn('action-protect-demo/dev').click());
    act(() => btn('action-unprotect-demo/main').click());
    act(() => btn('action-ttl-demo/pr-42').click());
    expect(onAction.mock.calls.map(([verb, b]) => `${verb} ${b.name}`)).toEqual([
      'protect dev',
      'unprotect main',
      'ttl pr-42',
    ]);
    expect(btn('action-delete-demo/main').getAttribute('title')).toBe('Protected: needs force');
  });

  it('keeps the protect button (and its focus) when the branch becomes protected', () => {
    const dev = branches[1];
    act(() => render(<BranchTable project="demo" branches={[dev]} onAction={() => {}} now={NOW} />, root));
    const before = root.querySelector('[data-testid="action-protect-demo/dev"]');
    before.focus();
    act(() => render(<BranchTable project="demo" branches={[{ ...dev, protected: true }]} onAction={() => {}} now={NOW} />, root));
    const after = root.querySelector('[data-testid="action-unprotect-demo/dev"]');
    expect(after).toBe(before);
    expect(document.activeElement).toBe(after);
  });

  it('says what it was given to say when there is no row', () => {
    act(() => render(<BranchTable project="demo" branches={[]} onAction={() => {}} emptyText="No branch has these labels." />, root));
    expect(root.querySelector('[data-testid="branch-table-empty"]').textContent).toBe('No branch has these labels.');
    act(() => render(<BranchTable project="demo" branches={[]} onAction={() => {}} />, root));
    expect(root.querySelector('[data-testid="branch-table-empty"]').textContent).toBe('No branches.');
  });
});
