import { useEffect, useMemo, useState } from 'preact/hooks';
import { shortTime, windowOf } from '../format.js';
import { parseDuration, parseLabels } from '../lifetime.js';
import { nameProblem, NAME_PATTERN } from '../names.js';
import { isoSeconds, pitrBounds, positionToIso, positionToMs } from '../pitr.js';
import { branchRef } from '../tree.js';
import { FormDialog } from './Dialog.jsx';
import { DurationField, LabelsField } from './LifetimeFields.jsx';

// "Create branch": from a branch's current data, from one of its snapshots, or from a point
// in time inside a branch's recoverable window (a slider from window.from_time to window.to,
// "now" for a running branch). `onSubmit(body)` sends POST .../branches with
// {name, parent} | {name, parent, snapshot} | {name, parent, pitr}, and, only when given,
// ttl_s, idle_ttl_s, protect: true and labels.
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
  const [ttl, setTtl] = useState('');
  const [idleTtl, setIdleTtl] = useState('');
  const [protect, setProtect] = useState(false);
  const [labelText, setLabelText] = useState('');
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

  const ttlParsed = parseDuration(ttl);
  const idleParsed = parseDuration(idleTtl);
  const labelsParsed = parseLabels(labelText);
  const lifetimeProblem = ttlParsed.problem || idleParsed.problem || labelsParsed.problem;

  const submit = async () => {
    setTouched(true);
    if (problem || sourceProblem || lifetimeProblem) {
      // Keyboard users land on the first field that needs fixing.
      const bad = [
        [problem, 'create-name'],
        [ttlParsed.problem, 'create-ttl'],
        [idleParsed.problem, 'create-idle-ttl'],
        [labelsParsed.problem, 'create-labels'],
      ].find(([why]) => why);
      if (bad) document.getElementById(bad[1])?.focus();
      return;
    }
    let body;
    if (kind === 'branch') body = { name, parent };
    else if (kind === 'snapshot') {
      const snap = snapshots.find((s) => String(s.id) === snapshotId);
      // The snapshot's own branch is the new branch's parent.
      body = { name, parent: snap?.branch ?? parent, snapshot: Number(snapshotId) };
    } else body = { name, parent, pitr: pitrIso };
    if (ttlParsed.seconds !== null) body.ttl_s = ttlParsed.seconds;
    if (idleParsed.seconds !== null) body.idle_ttl_s = idleParsed.seconds;
    if (protect) body.protect = true;
    if (Object.keys(labelsParsed.labels).length) body.labels = labelsParsed.labels;
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

      <fieldset class="field lifetime">
        <legend>Lifetime and labels (optional)</legend>
        <div class="field-pair">
          <DurationField
            id="create-ttl"
            label="TTL"
            value={ttl}
            onInput={setTtl}
            problem={ttlParsed.problem}
            showProblem={touched}
            help="deleted this long after creation: 30m, 12h, 2d"
          />
          <DurationField
            id="create-idle-ttl"
            label="Idle TTL"
            value={idleTtl}
            onInput={setIdleTtl}
            problem={idleParsed.problem}
            showProblem={touched}
            help="deleted after this long without a client session"
          />
        </div>
        <LabelsField
          id="create-labels"
          value={labelText}
          onInput={setLabelText}
          problem={labelsParsed.problem}
          showProblem={touched}
        />
        <label class="checkbox">
          <input
            type="checkbox"
            data-testid="create-protect"
            checked={protect}
            onChange={(e) => setProtect(e.currentTarget.checked)}
          />
          Protect it: delete, reset and expiry refuse it unless forced
        </label>
      </fieldset>

      {touched && sourceProblem && (
        <p class="field-error" role="alert">
          {sourceProblem}
        </p>
      )}
    </FormDialog>
  );
}
