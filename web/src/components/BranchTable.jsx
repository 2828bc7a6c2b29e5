import { allowedActions, VERBS, VERB_LABELS } from '../actions.js';
import { DASH, humanBytes, humanDuration, windowOf, windowText } from '../format.js';
import { branchHref } from '../router.js';
import { branchRef } from '../tree.js';
import { StateBadge } from './StateBadge.jsx';

// The branches of one project with their numbers and per-branch actions. `onAction(verb,
// branch)` opens the confirmation for that action. On narrow screens the table scrolls
// sideways inside its wrapper (the branch column stays put).
export function BranchTable({ project, branches, selected, onAction, readOnly = false }) {
  if (!branches.length) return <p class="muted">No branches.</p>;
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
            <th scope="col" title="Time to live (not yet in the API)">TTL</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {branches.map((b) => {
            const ref = branchRef(b);
            const allowed = allowedActions(b);
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
                  {b.active && (
                    <span class="badge active" title="The project route of the proxy leads here" data-testid={`active-${ref}`}>
                      active
                    </span>
                  )}
                  {b.parent && <div class="sub">from {b.parent.split('/').slice(1).join('/')}</div>}
                </th>
                <td>
                  <StateBadge state={b.state} />
                </td>
                <td class="num">{b.port || DASH}</td>
                <td class="num">{humanBytes(b.size_bytes)}</td>
                <td class="num">{humanBytes(b.exclusive_bytes)}</td>
                <td class="num">{b.state === 'running' ? humanDuration(b.uptime_seconds) : DASH}</td>
                <td class="nowrap">{windowText(windowOf(b))}</td>
                <td>{DASH}</td>
                <td>
                  <div class="actions">
                    {VERBS.map((verb) => (
                      <button
                        type="button"
                        key={verb}
                        class={`btn btn-small${verb === 'delete' ? ' btn-danger-outline' : ''}`}
                        data-testid={`action-${verb}-${ref}`}
                        aria-label={verb === 'create' ? `New branch from ${ref}` : `${VERB_LABELS[verb]} ${ref}`}
                        title={readOnly ? 'This token may only read' : undefined}
                        disabled={readOnly || !allowed[verb]}
                        onClick={() => onAction(verb, b)}
                      >
                        {VERB_LABELS[verb]}
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
