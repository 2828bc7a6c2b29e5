import { useState } from 'preact/hooks';
import { shortTime } from '../format.js';
import { expiryOf, parseDuration } from '../lifetime.js';
import { FormDialog } from './Dialog.jsx';
import { DurationField } from './LifetimeFields.jsx';

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
  unprotect: [
    'Unprotect',
    "delete, reset and expiry no longer refuse it; if its TTL has run out, pgbranch serve deletes it at its next look.",
  ],
};

// Shown in the delete and reset confirmations when what they would change is protected: says
// so, and offers to force it (the confirm button stays disabled until the box is ticked).
function ForceConfirm({ action, refs, checked, onChange, testid }) {
  const one = refs.length === 1;
  return (
    <div class="protected-note" data-testid={`${testid}-note`}>
      <p>
        <strong>{refs.join(', ')}</strong> {one ? 'is' : 'are'} protected: {action} refuses{' '}
        {one ? 'it' : 'them'} unless forced.
      </p>
      <label class="checkbox">
        <input
          type="checkbox"
          data-testid={testid}
          checked={checked}
          onChange={(e) => onChange(e.currentTarget.checked)}
        />
        {action === 'delete' ? 'Delete' : 'Reset'} {one ? 'it' : 'them'} anyway (force)
      </label>
    </div>
  );
}

// start / stop / suspend / resume / unprotect
export function VerbDialog({ verb, refName, onSubmit, onClose, error }) {
  const [busy, run] = useBusy(onSubmit);
  const [label, text] = VERB_TEXT[verb];
  return (
    <FormDialog
      title={`${label} ${refName}?`}
      onClose={onClose}
      onSubmit={() => run()}
      confirmLabel={label}
      danger={verb === 'stop' || verb === 'unprotect'}
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

// `snapshots`: those the branch may be reset to (its own and its parent's). A protected
// branch is reset only with {force: true}, which the user has to tick.
export function ResetDialog({ refName, parent, snapshots, isProtected = false, onSubmit, onClose, error }) {
  const [snapshotId, setSnapshotId] = useState('');
  const [force, setForce] = useState(false);
  const [busy, run] = useBusy(onSubmit);
  return (
    <FormDialog
      title={`Reset ${refName}?`}
      onClose={onClose}
      onSubmit={() =>
        run({
          ...(snapshotId ? { snapshot: Number(snapshotId) } : {}),
          ...(isProtected && force ? { force: true } : {}),
        })
      }
      confirmLabel="Reset"
      danger
      disabled={isProtected && !force}
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
      {isProtected && (
        <ForceConfirm action="reset" refs={[refName]} checked={force} onChange={setForce} testid="reset-force" />
      )}
    </FormDialog>
  );
}

// Names the branches that depend on this one first; the delete is recursive only when the
// user ticks the box that accepts deleting them too (and it cannot be sent without it).
// `protectedRefs`: which of the branch and its dependents are protected; then the delete is
// sent with force only when the user ticks that box too. onSubmit(recursive, force).
export function DeleteDialog({ refName, dependents, protectedRefs = [], onSubmit, onClose, error }) {
  const [accepted, setAccepted] = useState(false);
  const [force, setForce] = useState(false);
  const [busy, run] = useBusy(onSubmit);
  const hasDependents = dependents.length > 0;
  const needForce = protectedRefs.length > 0;
  return (
    <FormDialog
      title={`Delete ${refName}?`}
      onClose={onClose}
      onSubmit={() => run(hasDependents && accepted, needForce && force)}
      confirmLabel={hasDependents ? `Delete ${dependents.length + 1} branches` : 'Delete branch'}
      danger
      disabled={(hasDependents && !accepted) || (needForce && !force)}
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
      {needForce && (
        <ForceConfirm action="delete" refs={protectedRefs} checked={force} onChange={setForce} testid="delete-force" />
      )}
    </FormDialog>
  );
}

// "Set TTL" (PATCH .../branches/{b}): a new TTL counted from now and/or a new idle TTL (an
// empty field keeps what the branch has), or both removed. onSubmit(body) with
// {ttl_s?, idle_ttl_s?} or {no_ttl: true}; the server takes no_ttl only alone.
export function TtlDialog({ refName, branch, now = () => Date.now(), onSubmit, onClose, error }) {
  const [ttl, setTtl] = useState('');
  const [idle, setIdle] = useState('');
  const [remove, setRemove] = useState(false);
  const [touched, setTouched] = useState(false);
  const [busy, run] = useBusy(onSubmit);
  const ttlParsed = parseDuration(ttl);
  const idleParsed = parseDuration(idle);
  const current = expiryOf(branch, now());
  const nothing = !remove && !ttl.trim() && !idle.trim();

  const submit = () => {
    setTouched(true);
    if (remove) return run({ no_ttl: true });
    if (ttlParsed.problem || idleParsed.problem || nothing) {
      document.getElementById(idleParsed.problem && !ttlParsed.problem ? 'ttl-idle' : 'ttl-ttl')?.focus();
      return undefined;
    }
    return run({
      ...(ttlParsed.seconds !== null ? { ttl_s: ttlParsed.seconds } : {}),
      ...(idleParsed.seconds !== null ? { idle_ttl_s: idleParsed.seconds } : {}),
    });
  };

  return (
    <FormDialog
      title={`Set the TTL of ${refName}`}
      onClose={onClose}
      onSubmit={submit}
      confirmLabel={remove ? 'Remove TTL' : 'Set TTL'}
      busy={busy}
      error={error}
      testid="dialog-ttl"
    >
      {current.none ? (
        <p data-testid="ttl-current">
          <strong>{refName}</strong> has no TTL: pgbranch serve keeps it.
        </p>
      ) : (
        <ul class="ttl-current" data-testid="ttl-current" aria-label="Now">
          {current.lines.map((line) => (
            <li key={line}>{line}</li>
          ))}
        </ul>
      )}
      <DurationField
        id="ttl-ttl"
        label="TTL: delete it this long from now"
        value={ttl}
        onInput={setTtl}
        problem={ttlParsed.problem}
        showProblem={touched}
        disabled={remove}
        help="e.g. 30m, 12h, 2d; empty keeps the current TTL"
      />
      <DurationField
        id="ttl-idle"
        label="Idle TTL: delete it after this long without a client session"
        value={idle}
        onInput={setIdle}
        problem={idleParsed.problem}
        showProblem={touched}
        disabled={remove}
        help="e.g. 2h, 7d; empty keeps the current idle TTL"
      />
      <label class="checkbox">
        <input
          type="checkbox"
          data-testid="ttl-remove"
          checked={remove}
          onChange={(e) => setRemove(e.currentTarget.checked)}
        />
        Remove the TTL and the idle TTL
      </label>
      {touched && nothing && (
        <p class="field-error" role="alert" data-testid="ttl-nothing">
          Give a TTL or an idle TTL, or tick “Remove”.
        </p>
      )}
    </FormDialog>
  );
}
