// Which branch actions make sense in which state. The server has the last word (it refuses
// with failed_precondition); this only keeps buttons that cannot work disabled.
//
// States (src/state/catalog.h and BranchInfo::state): creating, running, stopped, suspended,
// failed, deleting, and the runtime's "exited"/"restarting" for containers.

export const VERBS = ['create', 'reset', 'snapshot', 'start', 'stop', 'suspend', 'resume', 'delete'];

export const VERB_LABELS = {
  create: 'Branch',
  reset: 'Reset',
  snapshot: 'Snapshot',
  start: 'Start',
  stop: 'Stop',
  suspend: 'Suspend',
  resume: 'Resume',
  delete: 'Delete',
};

const SETTLED = new Set(['running', 'stopped', 'suspended']);

export function allowedActions(branch) {
  const state = branch?.state ?? '';
  const settled = SETTLED.has(state);
  const busy = state === 'creating' || state === 'deleting';
  return {
    create: settled,
    reset: settled,
    snapshot: settled,
    start: ['stopped', 'failed', 'exited'].includes(state),
    stop: ['running', 'suspended', 'restarting'].includes(state),
    suspend: state === 'running',
    resume: state === 'suspended',
    // main goes with its project (`project delete`), never alone.
    delete: !!branch?.parent && !busy,
    // Lifetime and guard (PATCH, .../protect, .../unprotect): any branch not in an operation.
    // serve never expires main, so a TTL is offered only for the others.
    protect: !!state && !busy && !branch?.protected,
    unprotect: !!state && !busy && !!branch?.protected,
    ttl: !!branch?.parent && !!state && !busy,
  };
}

// The lifetime actions, shown after VERBS: one button that protects or unprotects (whichever
// applies), and "Set TTL".
export const LIFETIME_LABELS = {
  protect: 'Protect',
  unprotect: 'Unprotect',
  ttl: 'Set TTL',
};
