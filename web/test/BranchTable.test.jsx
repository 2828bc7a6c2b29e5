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

describe('BranchTable', () => {
  it('renders a row per branch with state, port, sizes, uptime, window and TTL', () => {
    act(() => render(<BranchTable project="demo" branches={branches} onAction={() => {}} />, root));
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
    expect(c[7]).toBe('—'); // TTL: not in the API yet
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

    for (const verb of ['create', 'reset', 'snapshot', 'start', 'stop', 'suspend', 'resume', 'delete']) {
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
    expect(buttons.length).toBe(branches.length * 8);
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
});
