import { describe, expect, it } from 'vitest';
import { isoToPosition, msToPosition, pitrBounds, positionToIso, positionToMs } from '../src/pitr.js';

const NOW = Date.parse('2026-12-02T18:00:00.700Z');

describe('pitrBounds', () => {
  it('spans from_time to now for a running branch', () => {
    const b = pitrBounds({ from_time: '2026-12-02T17:00:00Z', to: 'now' }, NOW);
    expect(b.fromMs).toBe(Date.parse('2026-12-02T17:00:00Z'));
    expect(b.toMs).toBe(Date.parse('2026-12-02T18:00:00Z')); // rounded down to a whole second
    expect(b.steps).toBe(1000);
  });
  it('spans from_time to the newest WAL time for a stopped branch', () => {
    const b = pitrBounds({ from_time: '2026-12-02T17:00:00.250Z', to: '2026-12-02T17:30:00Z' }, NOW);
    expect(b.fromMs).toBe(Date.parse('2026-12-02T17:00:01Z')); // rounded up: inside the window
    expect(b.toMs).toBe(Date.parse('2026-12-02T17:30:00Z'));
  });
  it('takes one step per second for a short window', () => {
    const b = pitrBounds({ from_time: '2026-12-02T17:59:00Z', to: 'now' }, NOW);
    expect(b.steps).toBe(60);
  });
  it('is null without a usable window', () => {
    expect(pitrBounds(null, NOW)).toBe(null);
    expect(pitrBounds({ from_time: 'garbage', to: 'now' }, NOW)).toBe(null);
    expect(pitrBounds({ from_time: '2026-12-03T00:00:00Z', to: 'now' }, NOW)).toBe(null);
  });
  it('gives a one-point window a slider that stays on it', () => {
    const b = pitrBounds({ from_time: '2026-12-02T17:00:00Z', to: '2026-12-02T17:00:00Z' }, NOW);
    expect(positionToIso(0, b)).toBe('2026-12-02T17:00:00Z');
    expect(positionToIso(b.steps, b)).toBe('2026-12-02T17:00:00Z');
  });
});

describe('slider position <-> time', () => {
  const b = pitrBounds({ from_time: '2026-12-02T17:00:00Z', to: 'now' }, NOW);

  it('maps the ends to the ends of the window', () => {
    expect(positionToIso(0, b)).toBe('2026-12-02T17:00:00Z');
    expect(positionToIso(b.steps, b)).toBe('2026-12-02T18:00:00Z');
  });
  it('maps linearly in between, to whole seconds', () => {
    expect(positionToIso(500, b)).toBe('2026-12-02T17:30:00Z');
    expect(positionToIso(250, b)).toBe('2026-12-02T17:15:00Z');
    expect(positionToIso(1, b)).toBe('2026-12-02T17:00:04Z'); // 3.6 s, rounded
  });
  it('clamps positions outside the slider', () => {
    expect(positionToIso(-10, b)).toBe('2026-12-02T17:00:00Z');
    expect(positionToIso(5000, b)).toBe('2026-12-02T18:00:00Z');
  });
  it('round-trips position -> time -> position', () => {
    for (const p of [0, 1, 2, 137, 500, 999, 1000]) {
      expect(msToPosition(positionToMs(p, b), b)).toBe(p);
      expect(isoToPosition(positionToIso(p, b), b)).toBe(p);
    }
  });
  it('maps times outside the window to its ends', () => {
    expect(isoToPosition('2026-12-01T00:00:00Z', b)).toBe(0);
    expect(isoToPosition('2027-01-01T00:00:00Z', b)).toBe(b.steps);
  });
  it('every position yields a time inside the window', () => {
    for (let p = 0; p <= b.steps; p += 7) {
      const ms = positionToMs(p, b);
      expect(ms).toBeGreaterThanOrEqual(b.fromMs);
      expect(ms).toBeLessThanOrEqual(b.toMs);
      expect(ms % 1000).toBe(0);
    }
  });
});
