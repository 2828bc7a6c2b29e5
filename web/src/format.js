// Numbers and times for people. The units follow the CLI (src/common/bytes.cc FormatBytes and
// src/common/time.cc FormatAge), so the dashboard and `pgbranch branch list` read alike.

export const DASH = '—';

const BYTE_UNITS = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

// Binary units with one decimal: "512 B", "1.5 KiB", "160.0 MiB". null/undefined (a size the
// server did not measure) is a dash.
export function humanBytes(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(Number(bytes))) return DASH;
  let n = Math.max(0, Number(bytes));
  if (n < 1024) return `${Math.round(n)} B`;
  n /= 1024;
  let unit = 0;
  // Move up a unit also when rounding to one decimal would show "1024.0".
  while (n >= 1023.95 && unit < BYTE_UNITS.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${n.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

// A compact duration: "45s", "12m", "3h05m", "2d04h". null/undefined is a dash.
export function humanDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return DASH;
  const s = Math.max(0, Math.floor(Number(seconds)));
  const pad = (v) => String(v).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`;
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`;
}

// Step timings as the CLI prints them: "0.03s".
export function humanSeconds(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return DASH;
  return `${Number(seconds).toFixed(2)}s`;
}

// An ISO 8601 time shortened for a table, in UTC so every viewer sees the server's times:
// "2026-12-02 17:00:00Z". Text that is not a time is returned unchanged.
export function shortTime(iso) {
  if (!iso) return DASH;
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return String(iso);
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

// The recoverable window of a branch, as text: "2026-12-02 17:00:00Z → now". The branch JSON
// names it "recoverable" (output.cc); WalInfo names the same object "window".
export function windowOf(branch) {
  if (!branch) return null;
  return branch.recoverable ?? branch.window ?? null;
}

export function windowText(window) {
  if (!window || !window.from_time) return DASH;
  const to = window.to === 'now' || !window.to ? 'now' : shortTime(window.to);
  return `${shortTime(window.from_time)} → ${to}`;
}

// Seconds between two ISO times, or null when either is missing.
export function secondsBetween(fromIso, toIso) {
  if (!fromIso || !toIso) return null;
  const a = Date.parse(fromIso);
  const b = Date.parse(toIso);
  if (Number.isNaN(a) || Number.isNaN(b)) return null;
  return (b - a) / 1000;
}

// A connection URI with its password replaced by ****, for showing (the copy keeps it).
export function maskUri(uri) {
  if (!uri) return '';
  return String(uri).replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@?#]*:)[^@/?#]*@/i, '$1****@');
}

// The proxy connection string of a branch, if the server put one in the branch JSON. The
// contract names no such field yet; these are the names it would most likely get.
export function proxyUriOf(branch) {
  if (!branch) return null;
  const v = branch.proxy_uri ?? branch.proxy_url ?? branch.proxy?.uri ?? null;
  return typeof v === 'string' && v ? v : null;
}
