import { useLoad } from '../hooks.js';
import { shortTime } from '../format.js';

// GET /api/v1/audit?limit=100: every storage and runtime operation and external command,
// oldest first as the server sends them; shown newest first.
export function AuditView({ api, version }) {
  const { data, error } = useLoad(() => api.audit(100), [version]);
  const rows = data ? [...data].reverse() : [];
  return (
    <section aria-labelledby="audit-title">
      <header class="view-head">
        <h2 id="audit-title">Audit trail</h2>
        <p class="muted">The newest 100 storage and runtime operations.</p>
      </header>
      <section class="panel">
        {error && <p class="field-error" role="alert">{error}</p>}
        {!data && !error && <p class="muted">Loading…</p>}
        {data && rows.length === 0 && <p class="muted">Nothing recorded yet.</p>}
        {rows.length > 0 && (
          <div class="table-scroll" tabIndex={0} aria-label="Audit rows">
            <table data-testid="audit-table">
              <thead>
                <tr>
                  <th scope="col">At</th>
                  <th scope="col">Command</th>
                  <th scope="col">Operation</th>
                  <th scope="col">Object</th>
                  <th scope="col" class="num">ms</th>
                  <th scope="col">Result</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((r) => (
                  <tr key={r.id}>
                    <td class="nowrap">{shortTime(r.at)}</td>
                    <td>{r.command}</td>
                    <td>
                      <code>{r.operation}</code>
                      {r.step ? <span class="muted small"> ({r.step})</span> : null}
                    </td>
                    <td title={r.detail}>{r.object}</td>
                    <td class="num">{Number(r.duration_ms ?? 0).toFixed(1)}</td>
                    <td>{r.ok ? <span class="badge state-running">ok</span> : <span class="badge state-failed" title={r.error}>failed</span>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </section>
    </section>
  );
}
