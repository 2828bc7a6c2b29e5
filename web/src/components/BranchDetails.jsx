import { useEffect, useState } from 'preact/hooks';
import { copyText } from '../clipboard.js';
import { DASH, humanBytes, maskUri, proxyUriOf, shortTime, windowOf, windowText } from '../format.js';
import { expiryOf, labelEntries } from '../lifetime.js';
import { StateBadge } from './StateBadge.jsx';

// The selected branch: its connection strings (copied with the password, shown without),
// facts, and the tail of its server log.
export function BranchDetails({ api, project, branch, listed, version, onClose }) {
  const ref = `${project}/${branch}`;
  const [full, setFull] = useState(null);
  const [error, setError] = useState('');
  const [logs, setLogs] = useState(null);
  const [logError, setLogError] = useState('');
  const [copied, setCopied] = useState('');

  useEffect(() => {
    let live = true;
    setError('');
    api
      .branch(project, branch)
      .then((b) => live && setFull(b))
      .catch((e) => live && setError(e.message));
    return () => {
      live = false;
    };
  }, [project, branch, version]);

  const loadLogs = () => {
    setLogError('');
    return api
      .branchLogs(project, branch, 200)
      .then((r) => setLogs(r?.lines ?? []))
      .catch((e) => setLogError(e.message));
  };
  useEffect(() => {
    setLogs(null);
    loadLogs();
  }, [project, branch]);

  const b = full ?? listed;
  const copy = async (which, text) => {
    const ok = await copyText(text);
    setCopied(ok ? which : `${which}-failed`);
    setTimeout(() => setCopied(''), 2000);
  };
  const direct = full?.uri ?? null;
  const proxy = proxyUriOf(full);
  const expiry = expiryOf(b, Date.now());
  const labels = labelEntries(b?.labels);

  return (
    <section class="panel details" aria-labelledby="details-title" data-testid={`details-${ref}`}>
      <header class="panel-head">
        <h3 id="details-title">
          {ref} {b && <StateBadge state={b.state} />}
        </h3>
        <button type="button" class="btn btn-small" onClick={onClose} data-testid="details-close" aria-label="Close branch details">
          Close
        </button>
      </header>
      {error && <p class="field-error">{error}</p>}

      <h4>Connection strings</h4>
      <dl class="conn">
        <dt>Direct</dt>
        <dd>
          <code data-testid={`uri-direct-${ref}`}>{maskUri(direct ?? listed?.uri) || DASH}</code>
          <button
            type="button"
            class="btn btn-small"
            data-testid={`copy-direct-${ref}`}
            disabled={!direct}
            onClick={() => copy('direct', direct)}
          >
            {copied === 'direct' ? 'Copied' : copied === 'direct-failed' ? 'Copy failed' : 'Copy'}
          </button>
        </dd>
        {proxy && (
          <>
            <dt>Through the proxy</dt>
            <dd>
              <code data-testid={`uri-proxy-${ref}`}>{maskUri(proxy)}</code>
              <button
                type="button"
                class="btn btn-small"
                data-testid={`copy-proxy-${ref}`}
                onClick={() => copy('proxy', proxy)}
              >
                {copied === 'proxy' ? 'Copied' : copied === 'proxy-failed' ? 'Copy failed' : 'Copy'}
              </button>
            </dd>
          </>
        )}
      </dl>
      <p class="sr-only" aria-live="polite">
        {copied === 'direct' || copied === 'proxy' ? 'Copied to the clipboard' : ''}
      </p>

      {b && (
        <dl class="facts">
          <dt>Parent</dt>
          <dd>{b.parent ?? DASH}</dd>
          <dt>From snapshot</dt>
          <dd>{b.snapshot_id != null ? `#${b.snapshot_id}` : DASH}</dd>
          <dt>Point in time</dt>
          <dd>{b.recovery_target ?? DASH}</dd>
          <dt>Created</dt>
          <dd>{shortTime(b.created_at)}</dd>
          <dt>Expires</dt>
          <dd data-testid="details-expires">
            {expiry.none ? 'never (no TTL)' : expiry.lines.join('; ')}
          </dd>
          <dt>Protected</dt>
          <dd data-testid="details-protected">
            {b.protected ? 'yes: delete, reset and expiry refuse it unless forced' : 'no'}
          </dd>
          <dt>Labels</dt>
          <dd>
            {labels.length ? (
              <ul class="chips" aria-label="Labels" data-testid="details-labels">
                {labels.map(([k, v]) => (
                  <li class="chip" key={k}>
                    {k}={v}
                  </li>
                ))}
              </ul>
            ) : (
              DASH
            )}
          </dd>
          <dt>Recoverable</dt>
          <dd>{windowText(windowOf(b))}</dd>
          <dt>PostgreSQL</dt>
          <dd>{b.pg_version || DASH}</dd>
          <dt>Runtime</dt>
          <dd>{b.runtime_detail || DASH}</dd>
          <dt>Space limit</dt>
          <dd>{full?.limit_bytes != null ? humanBytes(full.limit_bytes) : DASH}</dd>
          <dt>Data directory</dt>
          <dd>
            <code>{b.data_dir || DASH}</code>
          </dd>
        </dl>
      )}

      <div class="panel-head">
        <h4>Server log (last 200 lines)</h4>
        <button type="button" class="btn btn-small" data-testid="logs-refresh" onClick={loadLogs}>
          Refresh
        </button>
      </div>
      {logError && <p class="field-error">{logError}</p>}
      <pre class="log" data-testid="branch-logs" tabIndex={0} aria-label={`Server log of ${ref}`}>
        {logs === null ? 'Loading…' : logs.length ? logs.join('\n') : '(empty)'}
      </pre>
    </section>
  );
}
