import { describe, expect, it, vi } from 'vitest';
import {
  followOperation,
  opEnded,
  opErrorMessage,
  opFailed,
  projectOfTarget,
  stepSeconds,
} from '../src/operations.js';

describe('operation helpers', () => {
  it('reads the contract shape', () => {
    expect(opEnded({ status: 'queued' })).toBe(false);
    expect(opEnded({ status: 'running' })).toBe(false);
    expect(opEnded({ status: 'succeeded' })).toBe(true);
    expect(opFailed({ status: 'succeeded', error: null })).toBe(false);
    const failed = { status: 'failed', error: { code: 'resource_exhausted', message: 'create branch demo/x: pool full' } };
    expect(opFailed(failed)).toBe(true);
    expect(opErrorMessage(failed)).toBe('create branch demo/x: pool full');
  });
  it("reads the CLI record's shape too", () => {
    expect(opEnded({ state: 'running', ended_at: null })).toBe(false);
    expect(opEnded({ state: 'done' })).toBe(true);
    expect(opFailed({ state: 'undone', error: 'cancelled' })).toBe(true);
    expect(opErrorMessage({ state: 'undone', error: 'cancelled' })).toBe('cancelled');
  });
  it('times steps from "seconds" or from their start and end', () => {
    expect(stepSeconds({ seconds: 0.031 })).toBe(0.031);
    expect(stepSeconds({ started_at: '2026-12-02T17:00:00.000Z', ended_at: '2026-12-02T17:00:01.500Z' })).toBe(1.5);
    expect(stepSeconds({ started_at: '2026-12-02T17:00:00Z', ended_at: null })).toBe(null);
  });
  it('finds the project of a target', () => {
    expect(projectOfTarget('demo/pr-42')).toBe('demo');
    expect(projectOfTarget('demo')).toBe('demo');
    expect(projectOfTarget('')).toBe(null);
  });
});

describe('followOperation', () => {
  it('polls until the operation ends and reports each version', async () => {
    const versions = [
      { id: 'op-1', status: 'running', steps: [{ name: 'Checkpoint', ended_at: null }] },
      { id: 'op-1', status: 'succeeded', steps: [{ name: 'Checkpoint', ended_at: 'x', seconds: 0.03 }] },
    ];
    const api = { operation: vi.fn(async () => versions.shift()) };
    const seen = [];
    const final = await followOperation(api, { id: 'op-1', status: 'queued' }, {
      onUpdate: (op) => seen.push(op.status),
      sleep: async () => {},
    });
    expect(final.status).toBe('succeeded');
    expect(seen).toEqual(['queued', 'running', 'succeeded']);
    expect(api.operation).toHaveBeenCalledWith('op-1');
  });
  it('returns a failed operation with its error', async () => {
    const api = { operation: async () => ({ id: 'op-2', status: 'failed', error: { code: 'x', message: 'boom' } }) };
    const final = await followOperation(api, { id: 'op-2', status: 'running' }, { sleep: async () => {} });
    expect(opErrorMessage(final)).toBe('boom');
  });
  it('rides out a few failed polls but gives up on a 401', async () => {
    let n = 0;
    const api = {
      operation: async () => {
        n += 1;
        if (n < 3) throw Object.assign(new Error('unavailable'), { status: 503 });
        return { id: 'op-3', status: 'succeeded' };
      },
    };
    expect((await followOperation(api, { id: 'op-3', status: 'queued' }, { sleep: async () => {} })).status).toBe('succeeded');
    const gone = { operation: async () => { throw Object.assign(new Error('no session'), { status: 401 }); } };
    await expect(followOperation(gone, { id: 'op-4', status: 'queued' }, { sleep: async () => {} })).rejects.toMatchObject({ status: 401 });
  });
});
