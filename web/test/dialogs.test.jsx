// @vitest-environment jsdom
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeleteDialog, ResetDialog, TtlDialog, VerbDialog } from '../src/components/BranchDialogs.jsx';
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
    expect(onSubmit).toHaveBeenCalledWith(true, false);
  });

  it('sends a plain delete for a branch without dependents', async () => {
    const onSubmit = vi.fn(async () => {});
    act(() => render(<DeleteDialog refName="demo/dev" dependents={[]} onSubmit={onSubmit} onClose={() => {}} />, root));
    expect($('delete-recursive')).toBeNull();
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith(false, false);
    expect($('delete-force')).toBeNull(); // nothing protected, nothing to force
  });

  it('names the protected branch and sends force only once the user ticks it', async () => {
    const onSubmit = vi.fn(async () => {});
    act(() =>
      render(<DeleteDialog refName="demo/dev" dependents={[]} protectedRefs={['demo/dev']} onSubmit={onSubmit} onClose={() => {}} />, root),
    );
    expect($('delete-force-note').textContent).toContain('demo/dev is protected: delete refuses it unless forced');
    expect($('dialog-confirm').disabled).toBe(true);
    act(() => $('dialog-confirm').closest('form').dispatchEvent(new Event('submit', { cancelable: true })));
    expect(onSubmit).not.toHaveBeenCalled();
    act(() => $('delete-force').click());
    expect($('dialog-confirm').disabled).toBe(false);
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith(false, true);
  });

  it('needs both boxes when a dependent is protected', async () => {
    const onSubmit = vi.fn(async () => {});
    act(() =>
      render(
        <DeleteDialog refName="demo/pr-42" dependents={['demo/pr-42-fix']} protectedRefs={['demo/pr-42-fix']} onSubmit={onSubmit} onClose={() => {}} />,
        root,
      ),
    );
    expect($('delete-force-note').textContent).toContain('demo/pr-42-fix is protected');
    act(() => $('delete-recursive').click());
    expect($('dialog-confirm').disabled).toBe(true);
    act(() => $('delete-force').click());
    expect($('dialog-confirm').disabled).toBe(false);
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith(true, true);
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

  it('sends TTL, idle TTL, protect and labels only when given', async () => {
    const onSubmit = mount({ initial: { kind: 'branch', parent: 'demo/dev' } });
    type($('create-name'), 'pr-7');
    type($('create-ttl'), '2d');
    type($('create-idle-ttl'), '12h');
    type($('create-labels'), 'team=web,\npr=7');
    act(() => $('create-protect').click());
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith({
      name: 'pr-7',
      parent: 'demo/dev',
      ttl_s: 172800,
      idle_ttl_s: 43200,
      protect: true,
      labels: { team: 'web', pr: '7' },
    });
  });

  it('refuses a bad TTL or bad labels with a message next to the field', async () => {
    const onSubmit = mount({ initial: { kind: 'branch', parent: 'demo/dev' } });
    type($('create-name'), 'pr-7');
    type($('create-ttl'), '2 weeks');
    type($('create-labels'), 'team=web, owner');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).not.toHaveBeenCalled();
    expect($('create-ttl').getAttribute('aria-invalid')).toBe('true');
    expect($('create-ttl-help').textContent).toContain('"weeks" is not a unit');
    expect($('create-labels').getAttribute('aria-invalid')).toBe('true');
    expect($('create-labels-help').textContent).toBe('label "owner": write key=value');
    expect($('create-idle-ttl').getAttribute('aria-invalid')).toBeNull();
    expect(document.activeElement).toBe($('create-ttl')); // the first field to fix

    type($('create-ttl'), '2w');
    expect($('create-ttl-help').textContent).toContain('"w" is not a unit');
    type($('create-ttl'), '14d');
    type($('create-labels'), 'team=web, owner=me');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith({
      name: 'pr-7',
      parent: 'demo/dev',
      ttl_s: 14 * 86400,
      labels: { team: 'web', owner: 'me' },
    });
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

describe('ResetDialog', () => {
  const snaps = snapshots.filter((x) => x.branch === 'demo/main');
  it('sends no force for a branch that is not protected', async () => {
    const onSubmit = vi.fn(async () => {});
    act(() => render(<ResetDialog refName="demo/dev" parent="demo/main" snapshots={snaps} onSubmit={onSubmit} onClose={() => {}} />, root));
    expect($('reset-force')).toBeNull();
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith({});
  });

  it('explains that a protected branch is protected and sends force once ticked', async () => {
    const onSubmit = vi.fn(async () => {});
    act(() =>
      render(<ResetDialog refName="demo/dev" parent="demo/main" snapshots={snaps} isProtected onSubmit={onSubmit} onClose={() => {}} />, root),
    );
    expect($('reset-force-note').textContent).toContain('demo/dev is protected: reset refuses it unless forced');
    expect($('dialog-confirm').disabled).toBe(true);
    act(() => {
      $('reset-snapshot').value = '2';
      $('reset-snapshot').dispatchEvent(new Event('change', { bubbles: true }));
    });
    act(() => $('reset-force').click());
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith({ snapshot: 2, force: true });
  });
});

describe('VerbDialog for unprotect', () => {
  it('asks before unprotecting and says what that means', async () => {
    const onSubmit = vi.fn(async () => {});
    act(() => render(<VerbDialog verb="unprotect" refName="demo/main" onSubmit={onSubmit} onClose={() => {}} />, root));
    expect($('dialog-unprotect').textContent).toContain('Unprotect demo/main?');
    expect($('dialog-unprotect').textContent).toContain('delete, reset and expiry no longer refuse it');
    expect($('dialog-confirm').textContent).toBe('Unprotect');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledTimes(1);
  });
});

describe('TtlDialog', () => {
  const NOW = Date.parse('2026-12-02T18:00:00Z');
  const mount = (b = branches[2]) => {
    const onSubmit = vi.fn(async () => {});
    act(() => render(<TtlDialog refName={`demo/${b.name}`} branch={b} now={() => NOW} onSubmit={onSubmit} onClose={() => {}} />, root));
    return onSubmit;
  };

  it('shows the current TTL, focuses the first field and sends what was typed', async () => {
    const onSubmit = mount();
    expect($('ttl-current').textContent).toContain('TTL: deleted at 2026-12-04 17:30:00Z (in 1d 23h)');
    expect(document.activeElement).toBe($('ttl-ttl'));
    type($('ttl-ttl'), '2d');
    type($('ttl-idle'), '30m');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith({ ttl_s: 172800, idle_ttl_s: 1800 });
  });

  it('sends only the field that was filled in (the other stays as it is)', async () => {
    const onSubmit = mount();
    type($('ttl-idle'), '7d');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith({ idle_ttl_s: 604800 });
  });

  it('refuses bad input with a message next to the field, and sends nothing', async () => {
    const onSubmit = mount();
    type($('ttl-ttl'), 'tomorrow');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).not.toHaveBeenCalled();
    expect($('ttl-ttl').getAttribute('aria-invalid')).toBe('true');
    expect($('ttl-ttl-help').textContent).toContain('"tomorrow" is not a duration');
    expect($('ttl-ttl').getAttribute('aria-describedby')).toBe('ttl-ttl-help');
    expect(document.activeElement).toBe($('ttl-ttl'));
    expect($('ttl-nothing')).toBeNull(); // something was given: only what is wrong with it
  });

  it('shows a bad value once the user leaves the field', () => {
    mount();
    type($('ttl-idle'), '5');
    expect($('ttl-idle').getAttribute('aria-invalid')).toBeNull();
    act(() => $('ttl-idle').dispatchEvent(new FocusEvent('blur')));
    expect($('ttl-idle').getAttribute('aria-invalid')).toBe('true');
    expect($('ttl-idle-help').textContent).toContain('has no unit');
  });

  it('asks for something when both fields are empty', async () => {
    const onSubmit = mount();
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).not.toHaveBeenCalled();
    expect($('ttl-nothing').textContent).toContain('Give a TTL or an idle TTL');
  });

  it('removes both with no_ttl alone, the fields disabled', async () => {
    const onSubmit = mount();
    type($('ttl-ttl'), 'junk');
    act(() => $('ttl-remove').click());
    expect($('ttl-ttl').disabled).toBe(true);
    expect($('ttl-idle').disabled).toBe(true);
    expect($('dialog-confirm').textContent).toBe('Remove TTL');
    act(() => $('dialog-confirm').click());
    await flush();
    expect(onSubmit).toHaveBeenCalledWith({ no_ttl: true });
  });

  it('says when a branch has no TTL', () => {
    mount(branches[1]);
    expect($('ttl-current').textContent).toBe('demo/dev has no TTL: pgbranch serve keeps it.');
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
