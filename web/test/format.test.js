import { describe, expect, it } from 'vitest';
import {
  humanBytes,
  humanDuration,
  humanSeconds,
  maskUri,
  proxyUriOf,
  shortTime,
  windowOf,
  windowText,
} from '../src/format.js';

describe('humanBytes', () => {
  it('uses binary units with one decimal, as the CLI does', () => {
    expect(humanBytes(0)).toBe('0 B');
    expect(humanBytes(512)).toBe('512 B');
    expect(humanBytes(1023)).toBe('1023 B');
    expect(humanBytes(1024)).toBe('1.0 KiB');
    expect(humanBytes(1536)).toBe('1.5 KiB');
    expect(humanBytes(160 * 1024 * 1024)).toBe('160.0 MiB');
    expect(humanBytes(64 * 1024 ** 3)).toBe('64.0 GiB');
    expect(humanBytes(3 * 1024 ** 4)).toBe('3.0 TiB');
  });
  it('moves up a unit rather than showing 1024.0', () => {
    expect(humanBytes(1024 * 1024 - 1)).toBe('1.0 MiB');
  });
  it('shows a dash for a size that was not measured', () => {
    expect(humanBytes(null)).toBe('—');
    expect(humanBytes(undefined)).toBe('—');
    expect(humanBytes('x')).toBe('—');
  });
});

describe('humanDuration', () => {
  it('is compact like FormatAge', () => {
    expect(humanDuration(0)).toBe('0s');
    expect(humanDuration(45)).toBe('45s');
    expect(humanDuration(60)).toBe('1m');
    expect(humanDuration(12 * 60 + 59)).toBe('12m');
    expect(humanDuration(3 * 3600 + 5 * 60)).toBe('3h05m');
    expect(humanDuration(2 * 86400 + 4 * 3600 + 59)).toBe('2d04h');
  });
  it('handles missing and negative values', () => {
    expect(humanDuration(null)).toBe('—');
    expect(humanDuration(-5)).toBe('0s');
  });
  it('prints step timings with two decimals', () => {
    expect(humanSeconds(0.031)).toBe('0.03s');
    expect(humanSeconds(null)).toBe('—');
  });
});

describe('times and windows', () => {
  it('shortens ISO times to UTC seconds', () => {
    expect(shortTime('2026-12-02T17:00:00.123Z')).toBe('2026-12-02 17:00:00Z');
    expect(shortTime('2026-12-02T18:00:00+01:00')).toBe('2026-12-02 17:00:00Z');
    expect(shortTime(null)).toBe('—');
    expect(shortTime('soon')).toBe('soon');
  });
  it('reads the window from "recoverable" (a branch) or "window" (WAL info)', () => {
    const w = { from_time: '2026-12-02T12:00:00Z', to: 'now' };
    expect(windowOf({ recoverable: w })).toBe(w);
    expect(windowOf({ window: w })).toBe(w);
    expect(windowOf({ recoverable: null })).toBe(null);
    expect(windowText(w)).toBe('2026-12-02 12:00:00Z → now');
    expect(windowText({ from_time: '2026-12-02T12:00:00Z', to: '2026-12-02T13:00:00Z' })).toBe(
      '2026-12-02 12:00:00Z → 2026-12-02 13:00:00Z',
    );
    expect(windowText(null)).toBe('—');
  });
});

describe('connection strings', () => {
  it('masks the password only', () => {
    expect(maskUri('postgresql://postgres:s3cr%40t@127.0.0.1:5501/postgres?sslmode=verify-full')).toBe(
      'postgresql://postgres:****@127.0.0.1:5501/postgres?sslmode=verify-full',
    );
    expect(maskUri('postgresql://127.0.0.1:5501/postgres')).toBe('postgresql://127.0.0.1:5501/postgres');
  });
  it('finds a proxy URI only when the branch has one', () => {
    expect(proxyUriOf({ uri: 'postgresql://x' })).toBe(null);
    expect(proxyUriOf({ proxy_uri: 'postgresql://p' })).toBe('postgresql://p');
    expect(proxyUriOf({ proxy_url: 'postgresql://q' })).toBe('postgresql://q');
  });
});
