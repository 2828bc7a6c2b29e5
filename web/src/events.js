// Live updates from GET /api/v1/events (Server-Sent Events; the session cookie goes along as
// for any same-origin GET). "branch" and "operation" events tell the app which project
// changed, from this dashboard, another one or the CLI.

export const LIVE_CONNECTING = 'connecting';
export const LIVE_OPEN = 'live';
export const LIVE_RECONNECTING = 'reconnecting';
export const LIVE_OFFLINE = 'offline';

// Opens the stream; returns a function that closes it. The browser reconnects by itself
// after a network error; when it gives up (an HTTP error such as 401 closes the stream for
// good) this opens a new stream after `retryMs` and calls onClosed, so that the app can check
// whether the session is still there.
export function connectEvents(options) {
  const {
    url = '/api/v1/events',
    onEvent = () => {},
    onStatus = () => {},
    onClosed = () => {},
    EventSourceImpl = globalThis.EventSource,
    retryMs = 5000,
  } = options;
  if (!EventSourceImpl) {
    onStatus(LIVE_OFFLINE);
    return () => {};
  }
  let source = null;
  let timer = null;
  let stopped = false;

  const open = () => {
    onStatus(LIVE_CONNECTING);
    source = new EventSourceImpl(url);
    source.onopen = () => onStatus(LIVE_OPEN);
    for (const type of ['hello', 'branch', 'operation']) {
      source.addEventListener(type, (event) => {
        let data = null;
        try {
          data = JSON.parse(event.data);
        } catch {
          return; // not ours to guess at
        }
        onStatus(LIVE_OPEN);
        onEvent(type, data);
      });
    }
    source.onerror = () => {
      if (stopped) return;
      if (source.readyState === 2 /* CLOSED */) {
        source.close();
        onStatus(LIVE_OFFLINE);
        onClosed();
        timer = setTimeout(open, retryMs);
      } else {
        onStatus(LIVE_RECONNECTING);
      }
    };
  };
  open();

  return () => {
    stopped = true;
    clearTimeout(timer);
    source?.close();
  };
}

// Calls fn(key) once per key, `delayMs` after the last trigger of that key: a burst of events
// about one project makes one refresh.
export function keyedDebounce(fn, delayMs) {
  const timers = new Map();
  const trigger = (key) => {
    clearTimeout(timers.get(key));
    timers.set(
      key,
      setTimeout(() => {
        timers.delete(key);
        fn(key);
      }, delayMs),
    );
  };
  trigger.cancel = () => {
    for (const t of timers.values()) clearTimeout(t);
    timers.clear();
  };
  return trigger;
}
