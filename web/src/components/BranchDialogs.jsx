import { useState } from 'preact/hooks';
import { shortTime } from '../format.js';
import { FormDialog } from './Dialog.jsx';

// The confirmations of the per-branch actions other than create. Each calls onSubmit with
// what the request needs and leaves closing to the caller (after the request was accepted).

function useBusy(onSubmit) {
  const [busy, setBusy] = useState(false);
  const run = async (...args) => {
    setBusy(true);
    try {
      await onSubmit(...args);
    } finally {
      setBusy(false);
    }
  };
  return [busy, run];
}

const VERB_TEXT = {
  start: ['Start', 'starts its PostgreSQL server.'],
  stop: ['Stop', 'stops its PostgreSQL server; clients are disconnected.'],
  suspend: ['Suspend', 'stops its server until a client connects through its port or the proxy.'],
  resume: ['Resume', 'starts its suspended server now.'],
};

// start / stop / suspend / resume
export function VerbDialog({ verb, refName, onSubmit, onClose, error }) {
  const [busy, run] = useBusy(onSubmit);
  const [label, text] = VERB_TEXT[verb];
  return (
    <FormDialog
      title={`${label} ${refName}?`}
      onClose={onClose}
      onSubmit={() => run()}
      confirmLabel={label}
      danger={verb === 'stop'}
      busy={busy}
      error={error}
      testid={`dialog-${verb}`}
    >
      <p>
        {label} <strong>{refName}</strong>: {text}
      </p>
    </FormDialog>
  );
}

export function SnapshotDialog({ refName, onSubmit, onClose, error }) {
  const [label, setLabel] = useState('');
  const [busy, run] = useBusy(onSubmit);
  return (
    <FormDialog
      title={`Snapshot ${refName}`}
      onClose={onClose}
      onSubmit={() => run(label.trim() ? { label: label.trim() } : {})}
      confirmLabel="Take snapshot"
      busy={busy}
      error={error}
      testid="dialog-snapshot"
    >
      <p>A consistent, read-only copy of the branch's data as it is now.</p>
      <div class="field">
        <label for="snapshot-label">Label (optional)</label>
        <input
          id="snapshot-label"
          data-testid="snapshot-label"
          value={label}
          maxLength={200}
          autoComplete="off"
          onInput={(e) => setLabel(e.currentTarget.value)}
        />
      </div>
    </FormDialog>
  );
}

// `snapshots`: those the branch may be reset to (its own and its parent's).
export function ResetDialog({ refName, parent, snapshots, onSubmit, onClose, error }) {
  const [snapshotId, setSnapshotId] = useState('');
  const [busy, run] = useBusy(onSubmit);
  return (
    <FormDialog
      title={`Reset ${refName}?`}
      onClose={onClose}
      onSubmit={() => run(snapshotId ? { snapshot: Number(snapshotId) } : {})}
      confirmLabel="Reset"
      danger
      busy={busy}
      error={error}
      testid="dialog-reset"
    >
      <p>
        The data of <strong>{refName}</strong> is replaced; everything written to it since is lost.
        Its port and password stay.
      </p>
      <div class="field">
        <label for="reset-snapshot">Reset to</label>
        <select
          id="reset-snapshot"
          data-testid="reset-snapshot"
          value={snapshotId}
          onChange={(e) => setSnapshotId(e.currentTarget.value)}
        >
          <option value="" disabled={!parent}>
            {parent ? `${parent} as it is now` : 'choose a snapshot (main has no parent)'}
          </option>
          {snapshots.map((s) => (
            <option key={s.id} value={String(s.id)}>
              snapshot #{s.id} of {s.branch}
              {s.label ? ` “${s.label}”` : ''} — {shortTime(s.created_at)}
            </option>
          ))}
        </select>
      </div>
    </FormDialog>
  );
}

// Names the branches that depend on this one first; the delete is recursive only when the
// user ticks the box that accepts deleting them too (and it cannot be sent without it).
export function DeleteDialog({ refName, dependents, onSubmit, onClose, error }) {
  const [accepted, setAccepted] = useState(false);
  const [busy, run] = useBusy(onSubmit);
  const hasDependents = dependents.length > 0;
  return (
    <FormDialog
      title={`Delete ${refName}?`}
      onClose={onClose}
      onSubmit={() => run(hasDependents && accepted)}
      confirmLabel={hasDependents ? `Delete ${dependents.length + 1} branches` : 'Delete branch'}
      danger
      disabled={hasDependents && !accepted}
      busy={busy}
      error={error}
      testid="dialog-delete"
    >
      {hasDependents ? (
        <>
          <p>
            These branches were made from <strong>{refName}</strong> and would be deleted with it:
          </p>
          <ul class="dependents" data-testid="delete-dependents">
            {dependents.map((d) => (
              <li key={d}>{d}</li>
            ))}
          </ul>
          <label class="checkbox">
            <input
              type="checkbox"
              data-testid="delete-recursive"
              checked={accepted}
              onChange={(e) => setAccepted(e.currentTarget.checked)}
            />
            Also delete these {dependents.length} branch{dependents.length === 1 ? '' : 'es'}
          </label>
        </>
      ) : (
        <p>
          <strong>{refName}</strong>, its server, data and snapshots are deleted. This cannot be undone.
        </p>
      )}
    </FormDialog>
  );
}
