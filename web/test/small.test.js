import { describe, expect, it } from 'vitest';
import { allowedActions } from '../src/actions.js';
import { nameProblem } from '../src/names.js';
import { branchHref, parseRoute, projectHref } from '../src/router.js';

describe('routes', () => {
  it('parses hashes', () => {
    expect(parseRoute('')).toEqual({ view: 'projects' });
    expect(parseRoute('#/')).toEqual({ view: 'projects' });
    expect(parseRoute('#/projects/demo')).toEqual({ view: 'project', project: 'demo', branch: null });
    expect(parseRoute(branchHref('demo', 'pr-42'))).toEqual({ view: 'project', project: 'demo', branch: 'pr-42' });
    expect(parseRoute('#/audit')).toEqual({ view: 'audit' });
    expect(parseRoute('#/nonsense')).toEqual({ view: 'projects' });
    expect(projectHref('demo')).toBe('#/projects/demo');
  });
});

describe('names', () => {
  it('follows the server rule', () => {
    expect(nameProblem('pr-42')).toBe('');
    expect(nameProblem('a_b9')).toBe('');
    expect(nameProblem('')).not.toBe('');
    expect(nameProblem('-x')).not.toBe('');
    expect(nameProblem('Upper')).not.toBe('');
    expect(nameProblem('a/b')).not.toBe('');
    expect(nameProblem('a'.repeat(64))).not.toBe('');
  });
});

describe('allowedActions', () => {
  it('depends on the state', () => {
    const running = allowedActions({ state: 'running', parent: 'demo/main' });
    expect(running).toMatchObject({ stop: true, suspend: true, start: false, resume: false, delete: true, create: true });
    const suspended = allowedActions({ state: 'suspended', parent: 'demo/main' });
    expect(suspended).toMatchObject({ resume: true, suspend: false, stop: true });
    const stopped = allowedActions({ state: 'stopped', parent: 'demo/main' });
    expect(stopped).toMatchObject({ start: true, stop: false });
    expect(allowedActions({ state: 'creating', parent: 'demo/main' })).toMatchObject({ delete: false, create: false });
  });
  it('offers protect or unprotect, whichever applies, and a TTL except for main', () => {
    expect(allowedActions({ state: 'running', parent: 'demo/main', protected: false })).toMatchObject({
      protect: true,
      unprotect: false,
      ttl: true,
    });
    expect(allowedActions({ state: 'stopped', parent: 'demo/main', protected: true })).toMatchObject({
      protect: false,
      unprotect: true,
    });
    expect(allowedActions({ state: 'running', parent: null }).ttl).toBe(false);
    expect(allowedActions({ state: 'running', parent: null }).protect).toBe(true);
    expect(allowedActions({ state: 'deleting', parent: 'demo/main', protected: true })).toMatchObject({
      unprotect: false,
      ttl: false,
    });
  });
  it('never offers to delete main', () => {
    expect(allowedActions({ state: 'running', parent: null }).delete).toBe(false);
  });
});
