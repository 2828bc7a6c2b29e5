// Operations (the contract's "Operations (asynchronous mutations)"): a mutation answers 202
// with an Operation at once, and the dashboard follows it by polling GET
// /api/v1/operations/{id} (SSE "operation" events are merged in as they come) until it ends.
//
// The contract's Operation has "status" (queued|running|succeeded|failed), "error" as
// {code, message} or null, and steps with "seconds". The CLI's record (output.cc, OperationInfo)
// says "state" (running|committed|done|failed|undone) and "error" as a string. Both are read.

import { secondsBetween } from './format.js';

const ENDED_OK = new Set(['succeeded', 'done', 'committed']);
const ENDED_BAD = new Set(['failed', 'undone', 'cancelled']);

export function opStatus(op) {
  return op?.status ?? op?.state ?? 'unknown';
}

export function opEnded(op) {
  const s = opStatus(op);
  if (ENDED_OK.has(s) || ENDED_BAD.has(s)) return true;
  // "committed" in the CLI's record may still run its finish actions; ended_at says it's over.
  return !op?.status && !!op?.ended_at;
}

export function opFailed(op) {
  return ENDED_BAD.has(opStatus(op)) || (opEnded(op) && !!opErrorMessage(op));
}

export function opErrorMessage(op) {
  const e = op?.error;
  if (!e) return '';
  if (typeof e === 'string') return e;
  return e.message || e.code || 'failed';
}

export function stepSeconds(step) {
  if (step?.seconds !== undefined && step?.seconds !== null) return Number(step.seconds);
  return secondsBetween(step?.started_at, step?.ended_at);
}

export function opSeconds(op) {
  return secondsBetween(op?.started_at ?? op?.created_at, op?.ended_at);
}

// "demo/pr-42" -> "demo"; "demo" (project.create) -> "demo".
export function projectOfTarget(target) {
  if (!target) return null;
  return String(target).split('/')[0] || null;
}

const sleepMs = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Polls the operation until it ends; calls onUpdate with each new version. Resolves with the
// last one. `shouldStop()` ends the polling early (the component went away).
export async function followOperation(api, op, options = {}) {
  const { onUpdate = () => {}, intervalMs = 700, shouldStop = () => false, sleep = sleepMs } =
    options;
  let current = op;
  onUpdate(current);
  let failures = 0;
  while (!opEnded(current) && !shouldStop()) {
    await sleep(intervalMs);
    try {
      current = await api.operation(current.id);
      failures = 0;
      onUpdate(current);
    } catch (e) {
      // A 401 has already sent the app to the login form; anything else gets a few retries
      // (serve restarting) before it is reported.
      failures += 1;
      if (e.status === 401 || e.status === 404 || failures >= 5) throw e;
    }
  }
  return current;
}
