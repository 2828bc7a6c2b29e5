import { useLoad } from '../hooks.js';
import { DASH, humanSeconds, shortTime } from '../format.js';
import { opErrorMessage, opFailed, opSeconds, opStatus, stepSeconds } from '../operations.js';

// One operation's steps with their timings: "Checkpoint 0.03s". A step without an end is
// still running.
export function OperationSteps({ op }) {
  const steps = op?.steps ?? [];
  if (!steps.length) return null;
  return (
    <ol class="steps">
      {steps.map((s, i) => {
        const secs = stepSeconds(s);
        return (
          <li key={`${i}-${s.name}`} class={s.ended_at ? 'done' : 'running'}>
            <span>{s.name}</span> <span class="muted">{s.ended_at ? humanSeconds(secs) : '…'}</span>
          </li>
        );
      })}
    </ol>
  );
}

export function StatusBadge({ op }) {
  const status = opStatus(op);
  const cls = opFailed(op) ? 'failed' : status === 'succeeded' || status === 'done' ? 'running' : 'creating';
  return <span class={`badge state-${cls}`}>{status}</span>;
}

// Operations with their steps and timings, each folding open.
export function OperationList({ ops, testid = 'operations-list' }) {
  return (
    <ul class="op-list" data-testid={testid}>
      {ops.map((op) => (
        <li key={op.id} data-testid={`operation-${op.id}`}>
          <details>
            <summary>
              <StatusBadge op={op} /> <strong>{op.kind}</strong> {op.target}{' '}
              <span class="muted small">
                {shortTime(op.created_at ?? op.started_at)} · {humanSeconds(opSeconds(op))}
                {op.token ? ` · by ${op.token}` : ''}
              </span>
            </summary>
            <OperationSteps op={op} />
            {opErrorMessage(op) && <p class="field-error">{opErrorMessage(op)}</p>}
            {(op.notes ?? []).length > 0 && (
              <ul class="notes">
                {op.notes.map((n, i) => (
                  <li key={i}>{n}</li>
                ))}
              </ul>
            )}
            <p class="muted small">
              {op.id} · started {shortTime(op.started_at)} · ended{' '}
              {op.ended_at ? shortTime(op.ended_at) : DASH}
            </p>
          </details>
        </li>
      ))}
    </ul>
  );
}

// The operations of one project (their target is the project or one of its branches).
export function ProjectOperations({ api, project, version }) {
  const { data, error } = useLoad(() => api.operations(), [version]);
  const ops = (data ?? []).filter((op) => op.target === project || String(op.target).startsWith(`${project}/`));
  return (
    <section class="panel" aria-labelledby="project-ops-title">
      <h3 id="project-ops-title">Recent operations</h3>
      {error && <p class="field-error">{error}</p>}
      {data && ops.length === 0 && <p class="muted">None since serve started.</p>}
      {ops.length > 0 && <OperationList ops={ops.slice(0, 10)} testid="project-operations" />}
    </section>
  );
}

// GET /api/v1/operations: what this serve ran, newest first.
export function OperationsView({ api, version }) {
  const { data, error } = useLoad(() => api.operations(), [version]);
  return (
    <section aria-labelledby="ops-title">
      <header class="view-head">
        <h2 id="ops-title">Recent operations</h2>
      </header>
      <section class="panel">
        {error && <p class="field-error" role="alert">{error}</p>}
        {!data && !error && <p class="muted">Loading…</p>}
        {data && data.length === 0 && <p class="muted">No operations yet.</p>}
        {data && data.length > 0 && <OperationList ops={data.slice(0, 100)} />}
      </section>
    </section>
  );
}
