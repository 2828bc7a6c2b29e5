// The point-in-time slider: a range input from 0 to `steps` maps linearly onto a branch's
// recoverable window, from window.from_time to window.to ("now" for a running branch: the
// moment the dialog opened). Times are whole seconds in UTC, which ParseRecoveryTarget on the
// server takes as ISO 8601.

// {fromMs, toMs, steps} for a window, or null when it cannot be used (no window, bad times,
// an empty span). `from` is rounded up and `to` down to whole seconds, so every time the
// slider yields lies inside the window.
export function pitrBounds(window, nowMs = Date.now(), maxSteps = 1000) {
  if (!window || !window.from_time) return null;
  const from = Date.parse(window.from_time);
  const to = !window.to || window.to === 'now' ? nowMs : Date.parse(window.to);
  if (Number.isNaN(from) || Number.isNaN(to)) return null;
  const fromMs = Math.ceil(from / 1000) * 1000;
  const toMs = Math.floor(to / 1000) * 1000;
  if (toMs < fromMs) return null;
  // At most one step per second: a short window gets a coarse but exact slider.
  const steps = Math.max(1, Math.min(maxSteps, (toMs - fromMs) / 1000));
  return { fromMs, toMs, steps };
}

// The time at slider position `pos` (clamped to 0..steps), in whole seconds.
export function positionToMs(pos, bounds) {
  const p = Math.min(bounds.steps, Math.max(0, Number(pos) || 0));
  const ms = bounds.fromMs + ((bounds.toMs - bounds.fromMs) * p) / bounds.steps;
  return Math.min(bounds.toMs, Math.max(bounds.fromMs, Math.round(ms / 1000) * 1000));
}

// The slider position nearest to `ms` (clamped into the window).
export function msToPosition(ms, bounds) {
  if (bounds.toMs === bounds.fromMs) return bounds.steps;
  const clamped = Math.min(bounds.toMs, Math.max(bounds.fromMs, ms));
  return Math.round(((clamped - bounds.fromMs) / (bounds.toMs - bounds.fromMs)) * bounds.steps);
}

// "2026-12-02T17:00:00Z"
export function isoSeconds(ms) {
  return new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');
}

export function positionToIso(pos, bounds) {
  return isoSeconds(positionToMs(pos, bounds));
}

export function isoToPosition(iso, bounds) {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return bounds.steps;
  return msToPosition(ms, bounds);
}
