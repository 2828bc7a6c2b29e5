import { useState } from 'preact/hooks';
import { useLoad } from '../hooks.js';

const ORDER = { fail: 0, warn: 1, fixed: 2, ok: 3 };

// GET /api/v1/doctor: the checks, problems first. Reading only; repairs are the CLI's or an
// admin's POST.
export function DoctorView({ api, version }) {
  const [runs, setRuns] = useState(0);
  const { data, error, loading } = useLoad(() => api.doctor(), [version, runs]);
  const rows = data ? [...data].sort((a, b) => (ORDER[a.status] ?? 9) - (ORDER[b.status] ?? 9)) : [];
  return (
    <section aria-labelledby="doctor-title">
      <header class="view-head">
        <div>
          <h2 id="doctor-title">Doctor</h2>
          <p class="muted">Checks of tools, the pool, operations and orphans (no repairs).</p>
        </div>
        <button type="button" class="btn" data-testid="doctor-rerun" disabled={loading} onClick={() => setRuns((n) => n + 1)}>
          {loading ? 'Checking…' : 'Check again'}
        </button>
      </header>
      <section class="panel">
        {error && <p class="field-error" role="alert">{error}</p>}
        {loading && !data && <p class="muted">Running the checks…</p>}
        {data && (
          <ul class="findings" data-testid="doctor-findings">
            {rows.map((f, i) => (
              <li key={i} class={`finding finding-${f.status}`}>
                <span class={`badge finding-${f.status}`}>{f.status}</span> <strong>{f.check}</strong>
                <span class="detail">{f.detail}</span>
              </li>
            ))}
          </ul>
        )}
      </section>
    </section>
  );
}
