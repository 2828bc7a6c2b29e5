import { afterEach, describe, expect, it, vi } from 'vitest';
import { connectEvents, keyedDebounce } from '../src/events.js';

// Enough of EventSource for connectEvents.
class FakeEventSource {
  static last = null;
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.listeners = {};
    this.closed = false;
    FakeEventSource.last = this;
  }
  addEventListener(type, fn) {
    (this.listeners[type] ??= []).push(fn);
  }
  emit(type, data) {
    for (const fn of this.listeners[type] ?? []) fn({ data: JSON.stringify(data) });
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
}

afterEach(() => vi.useRealTimers());

describe('connectEvents', () => {
  it('reports status, passes branch and operation events on, and reconnects after a close', () => {
    vi.useFakeTimers();
    const statuses = [];
    const events = [];
    const onClosed = vi.fn();
    const close = connectEvents({
      EventSourceImpl: FakeEventSource,
      onStatus: (s) => statuses.push(s),
      onEvent: (type, data) => events.push([type, data]),
      onClosed,
      retryMs: 1000,
    });
    const first = FakeEventSource.last;
    expect(first.url).toBe('/api/v1/events');
    first.onopen();
    first.emit('branch', { project: 'demo', branch: 'x', state: 'running', change: 'created' });
    first.emit('operation', { id: 'op-1', target: 'demo/x', status: 'running' });
    expect(events.map((e) => e[0])).toEqual(['branch', 'operation']);
    expect(events[0][1].project).toBe('demo');

    first.readyState = 1;
    first.onerror(); // a dropped connection: the browser retries
    expect(statuses.at(-1)).toBe('reconnecting');
    first.readyState = 2;
    first.onerror(); // refused (401): closed for good
    expect(statuses.at(-1)).toBe('offline');
    expect(onClosed).toHaveBeenCalled();
    vi.advanceTimersByTime(1000);
    expect(FakeEventSource.last).not.toBe(first);
    expect(statuses.at(-1)).toBe('connecting');
    close();
    expect(FakeEventSource.last.closed).toBe(true);
    expect(statuses).toContain('live');
  });
});

describe('keyedDebounce', () => {
  it('calls once per key after a burst', () => {
    vi.useFakeTimers();
    const fn = vi.fn();
    const trigger = keyedDebounce(fn, 300);
    trigger('demo');
    vi.advanceTimersByTime(200);
    trigger('demo');
    trigger('other');
    vi.advanceTimersByTime(299);
    expect(fn).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(fn.mock.calls).toEqual([['demo'], ['other']]);
  });
});
