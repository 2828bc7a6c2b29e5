// A project as the API returns it (shapes from src/cli/output.cc): main, two branches cloned
// from one snapshot of main, one from a second snapshot, a grandchild taken straight from its
// parent (no snapshot in the list), and a suspended branch. main is protected; pr-42 has a TTL,
// an idle TTL and labels; dev has a label; pr-43 only an idle TTL.
export function branch(name, fields = {}) {
  return {
    name,
    project: 'demo',
    parent: 'demo/main',
    state: 'running',
    runtime_detail: 'running',
    port: 5500,
    host: '127.0.0.1',
    user: 'postgres',
    uri: `postgresql://postgres:****@127.0.0.1:5500/postgres`,
    size_bytes: 50 * 1024 * 1024,
    exclusive_bytes: 1024 * 1024,
    created_at: '2026-12-02T17:00:00Z',
    started_at: '2026-12-02T17:00:01Z',
    uptime_seconds: 3700,
    pid: 1234,
    pg_version: '16',
    data_dir: `/var/lib/pgbranch/volumes/${name}/data`,
    log_path: '',
    container: '',
    snapshot_id: null,
    recovery_target: null,
    recoverable: null,
    active: false,
    suspend_after_s: null,
    expires_at: null,
    idle_ttl_s: null,
    idle_expires_at: null,
    protected: false,
    labels: {},
    ...fields,
  };
}

export function snapshot(id, branchRef, fields = {}) {
  return {
    id,
    branch: branchRef,
    label: '',
    implicit: true,
    created_at: '2026-12-02T17:00:00Z',
    size_bytes: 4096,
    logical_bytes: 50 * 1024 * 1024,
    dependents: [],
    name: `snap-${id}`,
    ...fields,
  };
}

export const branches = [
  branch('main', {
    parent: null,
    active: true,
    protected: true,
    port: 5432,
    created_at: '2026-12-01T10:00:00Z',
    recoverable: {
      from_time: '2026-12-02T12:00:00Z',
      from_lsn: '0/3000060',
      from_snapshot: 1,
      to: 'now',
    },
  }),
  branch('dev', { snapshot_id: 1, port: 5501, created_at: '2026-12-02T12:00:01Z', labels: { team: 'db' } }),
  branch('pr-42', {
    snapshot_id: 1,
    port: 5502,
    created_at: '2026-12-02T12:00:02Z',
    expires_at: '2026-12-04T17:30:00Z',
    idle_ttl_s: 7200,
    idle_expires_at: '2026-12-02T19:00:00Z',
    labels: { team: 'web', pr: '42' },
  }),
  branch('pr-43', {
    snapshot_id: 2,
    port: 5503,
    state: 'suspended',
    uptime_seconds: null,
    created_at: '2026-12-02T13:00:00Z',
    idle_ttl_s: 86400 + 3600,
  }),
  branch('pr-42-fix', { parent: 'demo/pr-42', snapshot_id: 99, port: 5504, state: 'stopped', created_at: '2026-12-02T14:00:00Z' }),
];

export const snapshots = [
  snapshot(1, 'demo/main', { dependents: ['demo/dev', 'demo/pr-42'], created_at: '2026-12-02T12:00:00Z' }),
  snapshot(2, 'demo/main', { implicit: false, label: 'before migration', dependents: ['demo/pr-43'], created_at: '2026-12-02T13:00:00Z' }),
  // Another project's: never in demo's tree.
  snapshot(3, 'other/main', { dependents: ['other/x'] }),
  // An implicit snapshot nobody uses any more: left out.
  snapshot(4, 'demo/dev', { created_at: '2026-12-02T15:00:00Z' }),
  // An explicit one without dependents: shown under its branch.
  snapshot(5, 'demo/dev', { implicit: false, label: 'nightly', created_at: '2026-12-02T16:00:00Z' }),
];
