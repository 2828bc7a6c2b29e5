import { useLoad } from '../hooks.js';
import { DASH, humanBytes, shortTime } from '../format.js';
import { projectHref } from '../router.js';

// The pool's size and use (GET /api/v1/status -> pool; the byte counts are there when the
// pool reports usage).
export function PoolUsage({ api, version }) {
  const { data, error } = useLoad(() => api.status(), [version]);
  const pool = data?.pool;
  const hasUsage = pool && pool.size_bytes != null && pool.used_bytes != null;
  const pct = hasUsage && pool.size_bytes > 0 ? Math.min(100, (pool.used_bytes / pool.size_bytes) * 100) : 0;
  return (
    <section class="panel" aria-labelledby="pool-title" data-testid="pool-usage">
      <h3 id="pool-title">Storage pool</h3>
      {error && <p class="field-error">{error}</p>}
      {!pool && !error && <p class="muted">Loading…</p>}
      {pool && (
        <>
          <p>
            <strong>{pool.kind || 'not configured'}</strong>
            {pool.description ? ` — ${pool.description}` : ''}
          </p>
          {hasUsage ? (
            <>
              <div
                class={`meter${pct >= 90 ? ' meter-bad' : pct >= 75 ? ' meter-warn' : ''}`}
                role="meter"
                aria-valuemin={0}
                aria-valuemax={100}
                aria-valuenow={Math.round(pct)}
                aria-label="Pool space used"
              >
                <span style={{ width: `${pct}%` }} />
              </div>
              <p class="muted" data-testid="pool-usage-text">
                {humanBytes(pool.used_bytes)} used of {humanBytes(pool.size_bytes)} ·{' '}
                {humanBytes(pool.free_bytes)} free ({Math.round(pct)}%)
              </p>
            </>
          ) : (
            <p class="muted">This pool does not report its usage.</p>
          )}
          <p class="muted small">
            copy-on-write: {pool.copy_on_write ? 'yes' : 'no'} · atomic snapshots:{' '}
            {pool.atomic_snapshots ? 'yes' : 'no'}
          </p>
        </>
      )}
    </section>
  );
}

export function ProjectsView({ api, version }) {
  const { data, error } = useLoad(() => api.projects(), [version]);
  return (
    <section aria-labelledby="projects-title">
      <header class="view-head">
        <h2 id="projects-title">Projects</h2>
      </header>
      <div class="grid">
        <section class="panel" aria-label="Project list">
          {error && <p class="field-error" role="alert">{error}</p>}
          {!data && !error && <p class="muted">Loading…</p>}
          {data && data.length === 0 && (
            <p class="muted">
              No projects yet. Create one with <code>pgbranch project create NAME</code>.
            </p>
          )}
          {data && data.length > 0 && (
            <ul class="project-list" data-testid="project-list">
              {data.map((p) => (
                <li key={p.name}>
                  <a href={projectHref(p.name)} data-testid={`project-link-${p.name}`} class="project-link">
                    <span class="project-name">{p.name}</span>
                    <span class="muted small">
                      {p.branch_count} branch{p.branch_count === 1 ? '' : 'es'} · {p.runtime || DASH} ·
                      PostgreSQL {p.pg_version || DASH} · active: {p.active_branch || DASH} · created{' '}
                      {shortTime(p.created_at)}
                    </span>
                  </a>
                </li>
              ))}
            </ul>
          )}
        </section>
        <PoolUsage api={api} version={version} />
      </div>
    </section>
  );
}
