// @vitest-environment jsdom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeleteDialog, VerbDialog } from '../src/components/BranchDialogs.jsx';
import { CreateBranchDialog } from '../src/components/CreateBranchDialog.jsx';
import { LineageTree } from '../src/components/LineageTree.jsx';
import { dependentsOf } from '../src/tree.js';
import { branches, snapshots } from './fixtures.js';

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
const key = (el, k, extra = {}) =>
  act(() => el.dispatchEvent(new KeyboardEvent('keydown', { key: k, bubbles: true, ...extra })));
const type = (el, value) =>
  act(() => {
    el.value = value;
    el.dispatchEvent(new Event('input', { bubbles: true }));
  });
const flush = () => act(async () => {});

describe('Dialog', () => {
  it('moves focus in, traps Tab, closes on Escape and gives focus back', () => {
    const opener = document.createElement('button');
    document.body.appendChild(opener);
    opener.focus();
    const onClose = vi.fn();
    act(() => render(<VerbDialog verb="stop" refName="demo/dev" onSubmit={() => {}} onClose={onClose} />, root));
    const cancel = $('dialog-cancel');
    const confirm = $('dialog-confirm');
    expect(root.querySelector('[role="dialog"]').getAttribute('aria-modal')).toBe('true');
    expect(document.activeElement).toBe(cancel);

    confirm.focus();
    key(confirm, 'Tab');
    expect(document.activeElement).toBe(cancel); // wrapped from the last to the first
    key(cancel, 'Tab', { shiftKey: true });
    expect(document.activeElement).toBe(confirm);

    key(confirm, 'Escape');
    expect(onClose).toHaveBeenCalledTimes(1);
    act(() => render(null, root));
    expect(document.activeElement).toBe(opener);
    opener.remove();
  });
});

describe('DeleteDialog', () => {
  it('names the dependents first and sends recursive only once accepted', async () => {
    const onSubmit = vi.fn(async () => {});
    const deps = dependentsOf(branches, 'demo/pr-42');
    act(() => render(<DeleteDialog refName="demo/pr-42" dependents={deps} onSubmit={onSubmit} onClose={() => {}} />, root));
    expect($('delete-dependents').textContent).toContain('demo/pr-42-fix');
    expect($('dialog-confirm').disabled).toBe(true);
    act(() => $('dialog-confirm').closest('form').dispatchEvent(new Event('submit', { cancelable: true })));
    expect(onSubmit).not.toHaveBeenCalled();

    act(() => $('delete-recursive').click());
    expect($('dialog-confirm').disabled).toBe(false);
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith(true);
  });

  it('sends a plain delete for a branch without dependents', async () => {
    const onSubmit = vi.fn(async () => {});
    act(() => render(<DeleteDialog refName="demo/dev" dependents={[]} onSubmit={onSubmit} onClose={() => {}} />, root));
    expect($('delete-recursive')).toBeNull();
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith(false);
  });

  it('shows why the server refused', () => {
    act(() => render(<DeleteDialog refName="demo/dev" dependents={[]} onSubmit={() => {}} onClose={() => {}} error="delete branch demo/dev: busy" />, root));
    expect($('dialog-error').textContent).toBe('delete branch demo/dev: busy');
  });
});

describe('CreateBranchDialog', () => {
  const demoSnaps = snapshots.filter((s) => s.branch.startsWith('demo/'));
  const NOW = Date.parse('2026-12-02T18:00:00Z');
  const mount = (props) => {
    const onSubmit = vi.fn(async () => {});
    act(() =>
      render(
        <CreateBranchDialog
          project="demo"
          branches={branches}
          snapshots={demoSnaps}
          onSubmit={onSubmit}
          onClose={() => {}}
          now={() => NOW}
          {...props}
        />,
        root,
      ),
    );
    return onSubmit;
  };

  it('creates from a branch', async () => {
    const onSubmit = mount({ initial: { kind: 'branch', parent: 'demo/dev' } });
    expect(document.activeElement).toBe($('create-name'));
    type($('create-name'), 'feature-1');
    expect($('create-parent').value).toBe('demo/dev');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith({ name: 'feature-1', parent: 'demo/dev' });
  });

  it('refuses a bad name without sending', async () => {
    const onSubmit = mount({});
    type($('create-name'), 'Bad/Name');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).not.toHaveBeenCalled();
    expect($('create-name').getAttribute('aria-invalid')).toBe('true');
  });

  it('creates from a snapshot, with the snapshot\'s branch as parent', async () => {
    const onSubmit = mount({ initial: { kind: 'snapshot', snapshotId: 2 } });
    expect($('create-source-snapshot').checked).toBe(true);
    expect($('create-snapshot').value).toBe('2');
    type($('create-name'), 'from-snap');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith({ name: 'from-snap', parent: 'demo/main', snapshot: 2 });
  });

  it('creates at a point in time chosen on the slider, inside the window', async () => {
    const onSubmit = mount({ initial: { kind: 'branch', parent: 'demo/main' } });
    act(() => $('create-source-pitr').click());
    const slider = $('create-pitr');
    expect(slider.type).toBe('range');
    expect(slider.min).toBe('0');
    expect(slider.max).toBe('1000');
    // Starts at the newest point: now.
    expect($('create-pitr-time').textContent).toBe('2026-12-02T18:00:00Z');
    type(slider, '500');
    expect($('create-pitr-time').textContent).toBe('2026-12-02T15:00:00Z');
    type($('create-name'), 'before-oops');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith({ name: 'before-oops', parent: 'demo/main', pitr: '2026-12-02T15:00:00Z' });
  });

  it('asks the WAL endpoint for a window the list did not carry', async () => {
    const loadWindow = vi.fn(async () => ({ from_time: '2026-12-02T17:00:00Z', to: '2026-12-02T17:10:00Z' }));
    mount({ initial: { kind: 'pitr', parent: 'demo/dev' }, loadWindow });
    await flush();
    expect(loadWindow).toHaveBeenCalledWith('demo/dev');
    expect($('create-pitr').max).toBe('600');
    expect($('create-pitr-time').textContent).toBe('2026-12-02T17:10:00Z');
  });

  it('says so when a branch has no window', async () => {
    mount({ initial: { kind: 'pitr', parent: 'demo/dev' }, loadWindow: async () => null });
    await flush();
    expect($('create-pitr')).toBeNull();
    expect($('create-pitr-none').textContent).toContain('no recoverable window');
  });
});

describe('LineageTree', () => {
  it('draws a node per branch and snapshot with test ids, and edges between them', () => {
    const onSnapshot = vi.fn();
    act(() => render(<LineageTree project="demo" branches={branches} snapshots={snapshots} selected="demo/dev" onSnapshot={onSnapshot} />, root));
    for (const b of branches) expect($(`node-branch-demo/${b.name}`)).not.toBeNull();
    expect($('node-branch-demo/pr-43').getAttribute('data-state')).toBe('suspended');
    expect($('node-branch-demo/pr-43').getAttribute('class')).toContain('state-suspended');
    expect($('node-branch-demo/dev').getAttribute('class')).toContain('selected');
    expect($('node-snapshot-1')).not.toBeNull();
    expect($('node-snapshot-3')).toBeNull(); // another project's
    expect($('edge-branch:demo/main-snapshot:1')).not.toBeNull();
    expect($('edge-snapshot:1-branch:demo/dev')).not.toBeNull();
    expect(root.querySelectorAll('path.edge')).toHaveLength(7);

    key($('node-snapshot-2'), 'Enter');
    expect(onSnapshot).toHaveBeenCalledWith(expect.objectContaining({ id: 2 }));
  });
});
