// A branch's lifetime and labels as the dashboard reads and writes them: TTL and idle TTL
// (`expires_at`, `idle_ttl_s`, `idle_expires_at`), protection and key=value labels. Pure
// functions, no DOM.
//
// The rules follow the server: durations as the CLI's --ttl/--idle-ttl take them (a whole
// number and a unit s, m, h, d; src/cli/inputs.cc) up to the API's bound (ttl_s and idle_ttl_s
// at most 36500 days, api/openapi.json); labels as ValidateLabel and ParseLabelFilter in
// src/engine (names.cc, engine_lifetime.cc) check them.

import { DASH, shortTime } from './format.js';

const UNIT_SECONDS = { d: 86400, h: 3600, m: 60, s: 1 };
const UNIT_ORDER = ['d', 'h', 'm', 's'];
export const MAX_LIFETIME_DAYS = 36500;
export const MAX_LIFETIME_SECONDS = MAX_LIFETIME_DAYS * 86400;
const DURATION_HINT = 'write a whole number and a unit, e.g. 30m, 12h, 2d';

// "30m" -> {seconds: 1800, problem: ''}. Units s, m, h, d, lowercase; several parts go from the
// largest unit down, each unit once ("1d 12h", "2h30m"), so what spanText prints reads back.
// Empty input is no duration: {seconds: null, problem: ''}. Otherwise `problem` says what is
// wrong, for the form, and seconds is null.
export function parseDuration(text) {
  const input = String(text ?? '').trim();
  if (!input) return { seconds: null, problem: '' };
  const bad = (why) => ({ seconds: null, problem: why });
  if (!/^(\d+\s*[a-zA-Z]+\s*)+$/.test(input)) {
    return bad(
      /^\d+$/.test(input)
        ? `"${input}" has no unit: add s, m, h or d, e.g. ${input}m`
        : `"${input}" is not a duration: ${DURATION_HINT}`,
    );
  }
  let seconds = 0;
  let lastUnit = -1;
  for (const [, digits, unit] of input.matchAll(/(\d+)\s*([a-zA-Z]+)/g)) {
    const index = UNIT_ORDER.indexOf(unit);
    if (index < 0) return bad(`"${unit}" is not a unit: use s, m, h or d, e.g. 30m, 12h, 2d`);
    if (index <= lastUnit) return bad(`"${input}": give each unit once, the largest first (1d 12h)`);
    lastUnit = index;
    seconds += Number(digits) * UNIT_SECONDS[unit];
  }
  if (seconds < 1) return bad('at least 1s');
  if (seconds > MAX_LIFETIME_SECONDS) return bad(`at most ${MAX_LIFETIME_DAYS} days`);
  return { seconds, problem: '' };
}

// A span for people, to the two largest units and without zero parts: "40s", "12m", "2h",
// "3h 5m", "1d", "1d 23h". Rounded down (time left never looks longer than it is).
export function spanText(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return DASH;
  const s = Math.max(0, Math.floor(Number(seconds)));
  const two = (big, bigUnit, small, smallUnit) =>
    small ? `${big}${bigUnit} ${small}${smallUnit}` : `${big}${bigUnit}`;
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return two(Math.floor(s / 3600), 'h', Math.floor((s % 3600) / 60), 'm');
  return two(Math.floor(s / 86400), 'd', Math.floor((s % 86400) / 3600), 'h');
}

// When `pgbranch serve` deletes the branch, for the table, its tooltip and the TTL dialog:
// {ttl: "in 1d 23h" | "due" | null, idle: "idle 2h" | null, lines: [sentences], title, none}.
// `none` when the branch has neither; "due" once expires_at has passed (serve deletes it at
// its next look, unless it is protected, main, or has children).
export function expiryOf(branch, nowMs) {
  const out = { ttl: null, idle: null, lines: [], title: '', none: true };
  if (!branch) return out;
  if (branch.expires_at) {
    const at = Date.parse(branch.expires_at);
    if (Number.isNaN(at)) {
      out.ttl = String(branch.expires_at);
    } else {
      const left = (at - nowMs) / 1000;
      out.ttl = left >= 1 ? `in ${spanText(left)}` : 'due';
    }
    out.lines.push(`TTL: deleted at ${shortTime(branch.expires_at)} (${out.ttl})`);
  }
  if (branch.idle_ttl_s != null && Number(branch.idle_ttl_s) > 0) {
    const span = spanText(branch.idle_ttl_s);
    out.idle = `idle ${span}`;
    let line = `idle TTL: deleted after ${span} without a client session`;
    if (branch.idle_expires_at) line += ` (at ${shortTime(branch.idle_expires_at)} if none comes)`;
    out.lines.push(line);
  }
  out.none = out.lines.length === 0;
  if (!out.none && branch.protected) out.lines.push('protected: expiry passes it by');
  out.title = out.lines.join('; ');
  return out;
}

function isAlnum(c) {
  return /^[A-Za-z0-9]$/.test(c);
}
const LABEL_CHARS = /^[A-Za-z0-9._/-]*$/;
const CHARS_HINT = "use only letters, digits, '-', '_', '.' and '/'";

// '' when key=value is a valid label, else why not: keys 1-63 characters starting with a
// letter or digit, values 0-63, both of letters, digits, '-', '_', '.' and '/'.
export function labelProblem(key, value = '') {
  const k = String(key ?? '');
  const v = String(value ?? '');
  const shown = `label "${k}${value === null ? '' : `=${v}`}"`;
  if (!k || k.length > 63 || !isAlnum(k[0])) {
    return `${shown}: the key must be 1-63 characters starting with a letter or digit`;
  }
  if (v.length > 63) return `${shown}: the value must be at most 63 characters`;
  if (!LABEL_CHARS.test(k) || !LABEL_CHARS.test(v)) return `${shown}: ${CHARS_HINT}`;
  return '';
}

// Labels as typed: "key=value" items separated by commas or line breaks, blanks around them
// ignored. Returns {labels: {key: value}, problem}; the first problem found, '' if none (then
// `labels` holds them all). A key given twice is a problem, not a silent overwrite.
export function parseLabels(text) {
  const labels = {};
  const items = String(text ?? '')
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter(Boolean);
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq < 0) return { labels: {}, problem: `label "${item}": write key=value` };
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    const problem = labelProblem(key, value);
    if (problem) return { labels: {}, problem };
    if (Object.prototype.hasOwnProperty.call(labels, key)) {
      return { labels: {}, problem: `label "${key}" is given twice` };
    }
    labels[key] = value;
  }
  return { labels, problem: '' };
}

// A branch's labels as sorted [key, value] pairs (the JSON object may be missing or null).
export function labelEntries(labels) {
  if (!labels || typeof labels !== 'object') return [];
  return Object.entries(labels)
    .map(([k, v]) => [k, v == null ? '' : String(v)])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

// The label filter above the table, like `branch list --label`: terms separated by commas or
// blanks, each "key" (has the label) or "key=value" (has it with that value); a branch must
// match all of them. Returns {terms: [{key, value|null}], problem}.
export function parseLabelFilter(text) {
  const terms = [];
  const items = String(text ?? '')
    .split(/[\s,]+/)
    .filter(Boolean);
  for (const item of items) {
    const eq = item.indexOf('=');
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? null : item.slice(eq + 1);
    const problem = labelProblem(key, value);
    if (problem) return { terms: [], problem };
    terms.push({ key, value });
  }
  return { terms, problem: '' };
}

export function matchesLabels(labels, terms) {
  const own = labels && typeof labels === 'object' ? labels : {};
  return terms.every(
    ({ key, value }) =>
      Object.prototype.hasOwnProperty.call(own, key) && (value === null || String(own[key]) === value),
  );
}
