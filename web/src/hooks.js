import { useEffect, useState } from 'preact/hooks';

// Loads `load()` when `deps` change; keeps the last data while reloading, so a refresh does
// not blank the view. Returns {data, error, loading}.
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: '', loading: true });
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    Promise.resolve()
      .then(load)
      .then((data) => live && setState({ data, error: '', loading: false }))
      .catch((e) => live && setState((s) => ({ data: s.data, error: e.message, loading: false })));
    return () => {
      live = false;
    };
  }, deps);
  return state;
}

// The current time in ms, renewed every `intervalMs` while the component is shown: enough for
// "in 1d 23h" to count down without a reload.
export function useNow(intervalMs = 30000) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}
