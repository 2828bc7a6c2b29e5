import { describe, expect, it } from 'vitest';
import {
  expiryOf,
  labelEntries,
  labelProblem,
  matchesLabels,
  MAX_LIFETIME_SECONDS,
  parseDuration,
  parseLabelFilter,
  parseLabels,
  spanText,
} from '../src/lifetime.js';

describe('parseDuration', () => {
  it('reads a whole number and a unit, as the CLI\'s --ttl does', () => {
    expect(parseDuration('30m')).toEqual({ seconds: 1800, problem: '' });
    expect(parseDuration('12h')).toEqual({ seconds: 43200, problem: '' });
    expect(parseDuration('2d')).toEqual({ seconds: 172800, problem: '' });
    expect(parseDuration('45s')).toEqual({ seconds: 45, problem: '' });
    expect(parseDuration(' 2 h ').seconds).toBe(7200);
  });
  it('reads several parts, largest unit first, so that what spanText prints reads back', () => {
    expect(parseDuration('1d 12h').seconds).toBe(86400 + 43200);
    expect(parseDuration('2h30m').seconds).toBe(9000);
    expect(parseDuration(spanText(86400 + 23 * 3600)).seconds).toBe(86400 + 23 * 3600);
  });
  it('takes empty input as no duration', () => {
    expect(parseDuration('')).toEqual({ seconds: null, problem: '' });
    expect(parseDuration('   ')).toEqual({ seconds: null, problem: '' });
    expect(parseDuration(undefined)).toEqual({ seconds: null, problem: '' });
  });
  it('says what is wrong with anything else', () => {
    expect(parseDuration('90').problem).toContain('has no unit');
    expect(parseDuration('soon').problem).toContain('is not a duration');
    expect(parseDuration('-5m').problem).toContain('is not a duration');
    expect(parseDuration('1.5h').problem).toContain('is not a duration');
    expect(parseDuration('3w').problem).toContain('"w" is not a unit');
    expect(parseDuration('30M').problem).toContain('"M" is not a unit'); // months or minutes?
    expect(parseDuration('12h 1d').problem).toContain('largest first');
    expect(parseDuration('1h 1h').problem).toContain('largest first');
    expect(parseDuration('0m').problem).toBe('at least 1s');
    expect(parseDuration('36500d').seconds).toBe(MAX_LIFETIME_SECONDS);
    expect(parseDuration('36501d').problem).toBe('at most 36500 days');
    for (const bad of ['90', 'soon', '3w', '0m']) expect(parseDuration(bad).seconds).toBeNull();
  });
});

describe('spanText', () => {
  it('shows the two largest units, without zero parts, rounded down', () => {
    expect(spanText(40)).toBe('40s');
    expect(spanText(59.9)).toBe('59s');
    expect(spanText(12 * 60 + 59)).toBe('12m');
    expect(spanText(7200)).toBe('2h');
    expect(spanText(3 * 3600 + 5 * 60 + 30)).toBe('3h 5m');
    expect(spanText(86400)).toBe('1d');
    expect(spanText(86400 + 23 * 3600 + 59 * 60)).toBe('1d 23h');
    expect(spanText(-5)).toBe('0s');
    expect(spanText(null)).toBe('—');
  });
});

describe('expiryOf', () => {
  const NOW = Date.parse('2026-12-02T18:00:00Z');
  it('gives the time left of a TTL and the idle TTL, with the times in the title', () => {
    const e = expiryOf(
      { expires_at: '2026-12-04T17:30:00Z', idle_ttl_s: 7200, idle_expires_at: '2026-12-02T19:00:00Z' },
      NOW,
    );
    expect(e.ttl).toBe('in 1d 23h');
    expect(e.idle).toBe('idle 2h');
    expect(e.none).toBe(false);
    expect(e.lines).toEqual([
      'TTL: deleted at 2026-12-04 17:30:00Z (in 1d 23h)',
      'idle TTL: deleted after 2h without a client session (at 2026-12-02 19:00:00Z if none comes)',
    ]);
    expect(e.title).toBe(e.lines.join('; '));
  });
  it('says "due" once the TTL has passed, and that a protected branch is passed by', () => {
    const e = expiryOf({ expires_at: '2026-12-02T17:59:59Z', protected: true }, NOW);
    expect(e.ttl).toBe('due');
    expect(e.idle).toBeNull();
    expect(e.lines[1]).toBe('protected: expiry passes it by');
  });
  it('is none for a branch without either (protected or not)', () => {
    expect(expiryOf({ expires_at: null, idle_ttl_s: null, protected: true }, NOW)).toMatchObject({
      none: true,
      ttl: null,
      idle: null,
      title: '',
    });
    expect(expiryOf(null, NOW).none).toBe(true);
  });
});

describe('labels', () => {
  it('follows the server\'s rule for keys and values', () => {
    expect(labelProblem('app.kubernetes.io/name', 'web-1')).toBe('');
    expect(labelProblem('pr', '')).toBe('');
    expect(labelProblem('A_1', 'x')).toBe('');
    expect(labelProblem('', 'x')).toContain('the key must be 1-63 characters');
    expect(labelProblem('-a', 'x')).toContain('starting with a letter or digit');
    expect(labelProblem('a'.repeat(63), 'x')).toBe('');
    expect(labelProblem('a'.repeat(64), 'x')).toContain('the key must be 1-63');
    expect(labelProblem('a', 'b'.repeat(64))).toContain('the value must be at most 63');
    expect(labelProblem('a b', 'x')).toContain("use only letters, digits, '-', '_', '.' and '/'");
    expect(labelProblem('a', 'x=y')).toBe('label "a=x=y": use only letters, digits, \'-\', \'_\', \'.\' and \'/\'');
    expect(labelProblem('a', 'ü')).toContain('use only');
  });

  it('parses key=value items separated by commas or lines', () => {
    expect(parseLabels('team=web, pr=42\nenv=')).toEqual({ labels: { team: 'web', pr: '42', env: '' }, problem: '' });
    expect(parseLabels(' , \n')).toEqual({ labels: {}, problem: '' });
    expect(parseLabels('')).toEqual({ labels: {}, problem: '' });
  });

  it('says which item is wrong', () => {
    expect(parseLabels('team=web, novalue').problem).toBe('label "novalue": write key=value');
    expect(parseLabels('a=b=c').problem).toContain('label "a=b=c": use only');
    expect(parseLabels('-x=1').problem).toContain('starting with a letter or digit');
    expect(parseLabels('pr=1, pr=2')).toEqual({ labels: {}, problem: 'label "pr" is given twice' });
  });

  it('lists a branch\'s labels sorted by key', () => {
    expect(labelEntries({ team: 'web', pr: '42' })).toEqual([
      ['pr', '42'],
      ['team', 'web'],
    ]);
    expect(labelEntries(null)).toEqual([]);
    expect(labelEntries(undefined)).toEqual([]);
  });
});

describe('label filter', () => {
  const labels = { team: 'web', pr: '42' };
  it('matches "key" and "key=value" terms, all of them', () => {
    const match = (text) => {
      const f = parseLabelFilter(text);
      expect(f.problem).toBe('');
      return matchesLabels(labels, f.terms);
    };
    expect(match('')).toBe(true);
    expect(match('team')).toBe(true);
    expect(match('team=web')).toBe(true);
    expect(match('team=db')).toBe(false);
    expect(match('team=')).toBe(false); // the empty value is a value
    expect(match('team=web, pr=42')).toBe(true);
    expect(match('team pr=43')).toBe(false);
    expect(match('owner')).toBe(false);
    expect(matchesLabels(null, parseLabelFilter('team').terms)).toBe(false);
    expect(matchesLabels({ env: '' }, parseLabelFilter('env=').terms)).toBe(true);
  });
  it('reads terms and refuses malformed ones', () => {
    expect(parseLabelFilter('team=web pr')).toEqual({
      terms: [
        { key: 'team', value: 'web' },
        { key: 'pr', value: null },
      ],
      problem: '',
    });
    expect(parseLabelFilter('-x').problem).toBe(
      'label "-x": the key must be 1-63 characters starting with a letter or digit',
    );
    expect(parseLabelFilter('a=b=c').terms).toEqual([]);
  });
});
