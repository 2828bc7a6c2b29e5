import { useEffect, useMemo, useState } from 'preact/hooks';
import { shortTime, windowOf } from '../format.js';
import { nameProblem, NAME_PATTERN } from '../names.js';
import { isoSeconds, pitrBounds, positionToIso, positionToMs } from '../pitr.js';
import { branchRef } from '../tree.js';
import { FormDialog } from './Dialog.jsx';

// "Create branch": from a branch's current data, from one of its snapshots, or from a point
// in time inside a branch's recoverable window (a slider from window.from_time to window.to,
// "now" for a running branch). `onSubmit(body)` sends POST .../branches with
// {name, parent} | {name, parent, snapshot} | {name, parent, pitr}.
export function CreateBranchDialog({
  project,
  branches,
  snapshots,
  initial = {},
  onSubmit,
  onClose,
  loadWindow,
  now = () => Date.now(),
  error,
}) {
  const refs = branches.map(branchRef);
  const [name, setName] = useState('');
  const [kind, setKind] = useState(initial.kind ?? 'branch');
  const [parent, setParent] = useState(initial.parent ?? refs.find((r) => r.endsWith('/main')) ?? refs[0] ?? '');
  const [snapshotId, setSnapshotId] = useState(
    initial.snapshotId != null ? String(initial.snapshotId) : snapshots[0] ? String(snapshots[0].id) : '',
  );
  const [touched, setTouched] = useState(false);
  const [busy, setBusy] = useState(false);

  // The parent's window: from the branch list (measured with sizes), else asked of the WAL
  // endpoint once the point-in-time source is picked.
  const parentBranch = branches.find((b) => branchRef(b) === parent);
  const [fetchedWindow, setFetchedWindow] = useState({ ref: null, window: null, loading: false });
  const listedWindow = windowOf(parentBranch);
  useEffect(() => {
    if (kind !== 'pitr' || listedWindow || !loadWindow || fetchedWindow.ref === parent) return;
    setFetchedWindow({ ref: parent, window: null, loading: true });
    loadWindow(parent)
      .then((w) => setFetchedWindow({ ref: parent, window: w ?? null, loading: false }))
      .catch(() => setFetchedWindow({ ref: parent, window: null, loading: false }));
  }, [kind, parent, listedWindow]);
  const win = listedWindow ?? (fetchedWindow.ref === parent ? fetchedWindow.window : null);

  // "now" is fixed when the window is first looked at, so the slider does not drift.
  const openedAt = useMemo(() => now(), [parent]);
  const bounds = useMemo(() => pitrBounds(win, openedAt), [win, openedAt]);
  const [pos, setPos] = useState(null);
  useEffect(() => setPos(null), [parent]);
  const position = pos ?? bounds?.steps ?? 0;
  const pitrIso = bounds ? positionToIso(position, bounds) : '';

  const problem = nameProblem(name);
  let sourceProblem = '';
  if (kind === 'branch' && !parent) sourceProblem = 'choose a parent branch';
  if (kind === 'snapshot' && !snapshotId) sourceProblem = 'choose a snapshot';
  if (kind === 'pitr' && !bounds) sourceProblem = 'this branch has no recoverable window';

  const submit = async () => {
    setTouched(true);
    if (problem || sourceProblem) return;
    let body;
    if (kind === 'branch') body = { name, parent };
    else if (kind === 'snapshot') {
      const snap = snapshots.find((s) => String(s.id) === snapshotId);
      // The snapshot's own branch is the new branch's parent.
      body = { name, parent: snap?.branch ?? parent, snapshot: Number(snapshotId) };
    } else body = { name, parent, pitr: pitrIso };
    setBusy(true);
    try {
      await onSubmit(body);
    } finally {
      setBusy(false);
    }
  };

  return (
    <FormDialog
      title={`Create a branch in ${project}`}
      onClose={onClose}
      onSubmit={submit}
      confirmLabel="Create branch"
      busy={busy}
      error={error}
      testid="dialog-create"
    >
      <div class="field">
        <label for="create-name">Name</label>
        <input
          id="create-name"
          data-testid="create-name"
          data-autofocus
          value={name}
          pattern={NAME_PATTERN}
          maxLength={63}
          autoComplete="off"
          spellcheck={false}
          aria-invalid={touched && problem ? 'true' : undefined}
          aria-describedby="create-name-help"
          onInput={(e) => setName(e.currentTarget.value.trim())}
        />
        <small id="create-name-help" class={touched && problem ? 'field-error' : 'muted'}>
          {touched && problem ? problem : 'lowercase letters, digits, - and _'}
        </small>
      </div>

      <fieldset class="field">
        <legend>Source</legend>
        {[
          ['branch', 'A branch, as it is now'],
          ['snapshot', 'A snapshot'],
          ['pitr', 'A branch at a point in time'],
        ].map(([value, label]) => (
          <label class="radio" key={value}>
            <input
              type="radio"
              name="create-source"
              value={value}
              data-testid={`create-source-${value}`}
              checked={kind === value}
              onChange={() => setKind(value)}
            />
            {label}
          </label>
        ))}
      </fieldset>

      {kind !== 'snapshot' && (
        <div class="field">
          <label for="create-parent">Parent branch</label>
          <select
            id="create-parent"
            data-testid="create-parent"
            value={parent}
            onChange={(e) => setParent(e.currentTarget.value)}
          >
            {refs.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        </div>
      )}

      {kind === 'snapshot' && (
        <div class="field">
          <label for="create-snapshot">Snapshot</label>
          <select
            id="create-snapshot"
            data-testid="create-snapshot"
            value={snapshotId}
            onChange={(e) => setSnapshotId(e.currentTarget.value)}
          >
            {snapshots.length === 0 && <option value="">no snapshots</option>}
            {snapshots.map((s) => (
              <option key={s.id} value={String(s.id)}>
                #{s.id} of {s.branch}
                {s.label ? ` “${s.label}”` : s.implicit ? ' (implicit)' : ''} — {shortTime(s.created_at)}
              </option>
            ))}
          </select>
        </div>
      )}

      {kind === 'pitr' && (
        <div class="field">
          <label for="create-pitr">Point in time</label>
          {bounds ? (
            <>
              <input
                id="create-pitr"
                type="range"
                data-testid="create-pitr"
                min={0}
                max={bounds.steps}
                step={1}
                value={position}
                aria-valuetext={pitrIso}
                aria-describedby="create-pitr-window"
                onInput={(e) => setPos(Number(e.currentTarget.value))}
              />
              <output for="create-pitr" data-testid="create-pitr-time" class="pitr-time">
                {pitrIso}
              </output>
              <small id="create-pitr-window" class="muted">
                Recoverable window: {isoSeconds(bounds.fromMs)} …{' '}
                {win.to === 'now' ? `now (${isoSeconds(bounds.toMs)})` : isoSeconds(bounds.toMs)}
              </small>
            </>
          ) : (
            <p class="muted" data-testid="create-pitr-none">
              {fetchedWindow.loading
                ? 'Reading the recoverable window…'
                : `${parent} has no recoverable window (no base snapshot with archived WAL).`}
            </p>
          )}
          {bounds && positionToMs(position, bounds) === bounds.toMs && win?.to === 'now' && (
            <small class="muted">The newest point: the parent as it is now.</small>
          )}
        </div>
      )}

      {touched && sourceProblem && (
        <p class="field-error" role="alert">
          {sourceProblem}
        </p>
      )}
    </FormDialog>
  );
}
