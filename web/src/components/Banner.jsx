import { OperationSteps, StatusBadge } from './OperationsView.jsx';

// The notices at the top of the page: operations this dashboard started, with their steps as
// they happen, and errors. Every notice can be dismissed; errors stay until they are.
export function Banners({ notices, onDismiss }) {
  return (
    <div class="banners" aria-live="polite">
      {notices.map((n) =>
        n.kind === 'error' ? (
          <div key={n.id} class="banner banner-error" role="alert" data-testid="error-banner">
            <div class="banner-text">
              <strong>{n.title}</strong>
              {n.message && <span data-testid="error-message"> — {n.message}</span>}
              {n.op && <OperationSteps op={n.op} />}
            </div>
            <button
              type="button"
              class="btn btn-small"
              data-testid="error-dismiss"
              aria-label={`Dismiss: ${n.title}`}
              onClick={() => onDismiss(n.id)}
            >
              Dismiss
            </button>
          </div>
        ) : (
          <div
            key={n.id}
            class={`banner ${n.kind === 'success' ? 'banner-ok' : 'banner-progress'}`}
            data-testid={`op-banner-${n.op?.id ?? n.id}`}
          >
            <div class="banner-text">
              <strong>{n.title}</strong> {n.op && <StatusBadge op={n.op} />}
              {n.op && <OperationSteps op={n.op} />}
            </div>
            <button
              type="button"
              class="btn btn-small"
              aria-label={`Dismiss: ${n.title}`}
              onClick={() => onDismiss(n.id)}
            >
              Dismiss
            </button>
          </div>
        ),
      )}
    </div>
  );
}
