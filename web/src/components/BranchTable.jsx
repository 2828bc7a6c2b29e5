import { allowedActions, LIFETIME_LABELS, VERBS, VERB_LABELS } from '../actions.js';
import { DASH, humanBytes, humanDuration, windowOf, windowText } from '../format.js';
import { useNow } from '../hooks.js';
import { expiryOf, labelEntries } from '../lifetime.js';
import { branchHref } from '../router.js';
import { branchRef } from '../tree.js';
import { StateBadge } from './StateBadge.jsx';

const LABELS = { ...VERB_LABELS, ...LIFETIME_LABELS };
const PROTECTED_TEXT = 'Delete, reset and expiry refuse it unless forced';

// The buttons of a row, in order: the VERBS but delete, Protect or Unprotect (whichever
// applies), Set TTL, and Delete last.
function rowVerbs(branch) {
  return [...VERBS.filter((v) => v !== 'delete'), branch.protected ? 'unprotect' : 'protect', 'ttl', 'delete'];
}

function actionLabel(verb, ref) {
  if (verb === 'create') return `New branch from ${ref}`;
  if (verb === 'ttl') return `Set TTL of ${ref}`;
  return `${LABELS[verb]} ${ref}`;
}

// When serve deletes the branch: "in 1d 23h" over "idle 2h", a dash when never.
function ExpiresCell({ branch, refName, now }) {
  const e = expiryOf(branch, now);
  const lines = [e.ttl, e.idle].filter(Boolean);
  return (
    <td class="expires" data-testid={`expires-${refName}`} title={e.title || undefined}>
      {e.none ? (
        DASH
      ) : (
        <>
          <span class="nowrap">{lines[0]}</span>
          {lines[1] && <div class="sub nowrap">{lines[1]}</div>}
          {branch.protected && <div class="sub nowrap">(protected)</div>}
        </>
      )}
    </td>
  );
}

// The branches of one project with their numbers and per-branch actions. `onAction(verb,
// branch)` opens the confirmation for that action (or, for protect, does it). On narrow
// screens the table scrolls sideways inside its wrapper (the branch column stays put).
// `now` (ms) is for tests; the table otherwise keeps its own clock for the time left.
export function BranchTable({
  project,
  branches,
  selected,
  onAction,
  readOnly = false,
  now,
  emptyText = 'No branches.',
}) {
  const ticking = useNow(30000);
  const nowMs = now ?? ticking;
  if (!branches.length) return <p class="muted" data-testid="branch-table-empty">{emptyText}</p>;
  return (
    <div class="table-scroll" tabIndex={0} aria-label={`Branches of ${project}`}>
      <table class="branch-table" data-testid="branch-table">
        <thead>
          <tr>
            <th scope="col" class="sticky-col">Branch</th>
            <th scope="col">State</th>
            <th scope="col" class="num">Port</th>
            <th scope="col" class="num" title="Logical size of the data directory">Size</th>
            <th scope="col" class="num" title="Bytes only this branch holds in the pool">Exclusive</th>
            <th scope="col" class="num">Uptime</th>
            <th scope="col">Recoverable</th>
            <th
              scope="col"
              title="When pgbranch serve deletes it: its TTL, or its idle TTL (time without a client session)"
            >
              Expires
            </th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {branches.map((b) => {
            const ref = branchRef(b);
            const allowed = allowedActions(b);
            const labels = labelEntries(b.labels);
            return (
              <tr
                key={ref}
                data-testid={`row-${ref}`}
                class={ref === selected ? 'selected' : ''}
                aria-selected={ref === selected ? 'true' : undefined}
              >
                <th scope="row" class="sticky-col">
                  <a href={branchHref(b.project, b.name)} data-testid={`select-${ref}`}>
                    {b.name}
                  </a>
                  {b.protected && (
                    <span
                      class="badge protected"
                      role="img"
                      aria-label={`protected: ${PROTECTED_TEXT.toLowerCase()}`}
                      title={PROTECTED_TEXT}
                      data-testid={`protected-${ref}`}
                    >
                      protected
                    </span>
                  )}
                  {b.active && (
                    <span class="badge active" title="The project route of the proxy leads here" data-testid={`active-${ref}`}>
                      active
                    </span>
                  )}
                  {b.parent && <div class="sub">from {b.parent.split('/').slice(1).join('/')}</div>}
                  {labels.length > 0 && (
                    <ul class="chips" aria-label={`Labels of ${ref}`} data-testid={`labels-${ref}`}>
                      {labels.map(([k, v]) => (
                        <li class="chip" key={k}>
                          {k}={v}
                        </li>
                      ))}
                    </ul>
                  )}
                </th>
                <td>
                  <StateBadge state={b.state} />
                </td>
                <td class="num">{b.port || DASH}</td>
                <td class="num">{humanBytes(b.size_bytes)}</td>
                <td class="num">{humanBytes(b.exclusive_bytes)}</td>
                <td class="num">{b.state === 'running' ? humanDuration(b.uptime_seconds) : DASH}</td>
                <td class="nowrap">{windowText(windowOf(b))}</td>
                <ExpiresCell branch={b} refName={ref} now={nowMs} />
                <td>
                  <div class="actions">
                    {rowVerbs(b).map((verb) => (
                      <button
                        type="button"
                        // One key for Protect and Unprotect: the button stays (and keeps focus)
                        // when the branch changes between them.
                        key={verb === 'unprotect' ? 'protect' : verb}
                        class={`btn btn-small${verb === 'delete' ? ' btn-danger-outline' : ''}`}
                        data-testid={`action-${verb}-${ref}`}
                        aria-label={actionLabel(verb, ref)}
                        title={
                          readOnly
                            ? 'This token may only read'
                            : b.protected && (verb === 'delete' || verb === 'reset')
                              ? 'Protected: needs force'
                              : undefined
                        }
                        disabled={readOnly || !allowed[verb]}
                        onClick={() => onAction(verb, b)}
                      >
                        {LABELS[verb]}
                      </button>
                    ))}
                  </div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
