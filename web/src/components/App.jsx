import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { createApi } from '../api.js';
import { connectEvents, keyedDebounce, LIVE_CONNECTING, LIVE_OFFLINE, LIVE_OPEN } from '../events.js';
import { followOperation, opErrorMessage, opFailed, projectOfTarget } from '../operations.js';
import { parseRoute } from '../router.js';
import { AuditView } from './AuditView.jsx';
import { Banners } from './Banner.jsx';
import { DoctorView } from './DoctorView.jsx';
import { Login } from './Login.jsx';
import { OperationsView } from './OperationsView.jsx';
import { ProjectsView } from './ProjectsView.jsx';
import { ProjectView } from './ProjectView.jsx';

const LIVE_TEXT = {
  [LIVE_OPEN]: 'Live',
  [LIVE_CONNECTING]: 'Connecting…',
  reconnecting: 'Reconnecting…',
  [LIVE_OFFLINE]: 'Offline',
};

let noticeSeq = 0;

// The dashboard: the login form until there is a session, then the views, the notices of
// running operations and errors, and the live event stream that keeps the views current.
// `fetchImpl`, `storage` and `EventSourceImpl` are for tests; a browser uses its own.
export function App({ fetchImpl, storage, EventSourceImpl } = {}) {
  const [auth, setAuth] = useState({ state: 'checking', session: null, notice: '' });
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  const [versions, setVersions] = useState({});
  const [notices, setNotices] = useState([]);
  const [live, setLive] = useState(LIVE_OFFLINE);

  const apiRef = useRef(null);
  if (!apiRef.current) {
    apiRef.current = createApi({
      ...(fetchImpl ? { fetchImpl } : {}),
      ...(storage !== undefined ? { storage } : {}),
      // Any 401: the session has ended (expired, logged out elsewhere, serve restarted).
      onUnauthorized: () =>
        setAuth({ state: 'out', session: null, notice: 'Your session has ended. Log in again.' }),
    });
  }
  const api = apiRef.current;

  useEffect(() => {
    api
      .session()
      .then((session) =>
        setAuth(session ? { state: 'in', session, notice: '' } : { state: 'out', session: null, notice: '' }),
      )
      .catch((e) => setAuth({ state: 'out', session: null, notice: e.message }));
  }, []);

  useEffect(() => {
    const onHash = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const bump = useCallback((...keys) => {
    setVersions((v) => {
      const next = { ...v };
      for (const k of keys) next[k] = (next[k] ?? 0) + 1;
      return next;
    });
  }, []);

  const dismiss = useCallback((id) => setNotices((list) => list.filter((n) => n.id !== id)), []);
  const updateNotice = useCallback(
    (id, change) => setNotices((list) => list.map((n) => (n.id === id ? { ...n, ...change } : n))),
    [],
  );

  // A project changed (an event, or an operation of ours ended): reload what shows it, once
  // per burst.
  const refreshRef = useRef(null);
  if (!refreshRef.current) {
    refreshRef.current = keyedDebounce((project) => {
      bump(`p:${project}`, 'projects', 'ops', 'audit');
    }, 300);
  }
  const refresh = refreshRef.current;
  useEffect(() => () => refresh.cancel(), []);

  // Sends a mutation and follows its operation in a notice. Throws if the server refused the
  // request (the dialog shows why); what happens afterwards is the notice's.
  const runMutation = useCallback(async (title, project, target, request) => {
    const op = await request();
    if (!op?.id) {
      refresh(project);
      return op;
    }
    const id = `n${++noticeSeq}`;
    setNotices((list) => [...list, { id, kind: 'progress', title, op }]);
    followOperation(api, op, { onUpdate: (o) => updateNotice(id, { op: o }) })
      .then((final) => {
        if (opFailed(final)) {
          updateNotice(id, { kind: 'error', op: final, message: opErrorMessage(final) || 'failed' });
        } else {
          updateNotice(id, { kind: 'success', op: final });
          setTimeout(() => dismiss(id), 6000);
        }
      })
      .catch((e) => {
        if (e.status !== 401) updateNotice(id, { kind: 'error', message: e.message });
      })
      .finally(() => refresh(projectOfTarget(target) ?? project));
    return op;
  }, []);

  // The live stream, while logged in.
  useEffect(() => {
    if (auth.state !== 'in') return undefined;
    const close = connectEvents({
      EventSourceImpl,
      onStatus: setLive,
      onEvent: (type, data) => {
        if (type === 'branch' && data?.project) refresh(data.project);
        if (type === 'operation' && data?.id) {
          const project = projectOfTarget(data.target);
          if (project) refresh(project);
          else bump('ops');
          // Newer news of an operation a notice follows.
          setNotices((list) =>
            list.map((n) => (n.op?.id === data.id && n.kind === 'progress' ? { ...n, op: data } : n)),
          );
        }
      },
      // The stream was refused: maybe the session is gone.
      onClosed: () => {
        api.session().then((s) => {
          if (!s) setAuth({ state: 'out', session: null, notice: 'Your session has ended. Log in again.' });
        }).catch(() => {});
      },
    });
    return close;
  }, [auth.state]);

  const logout = async () => {
    try {
      await api.logout();
    } catch {
      // logged out locally either way
    }
    setNotices([]);
    setAuth({ state: 'out', session: null, notice: 'Logged out.' });
  };

  if (auth.state === 'checking') return <p class="muted center" aria-busy="true">Loading…</p>;
  if (auth.state === 'out') {
    return (
      <Login
        api={api}
        notice={auth.notice}
        onLoggedIn={(session) => setAuth({ state: 'in', session, notice: '' })}
      />
    );
  }

  const readOnly = auth.session?.scope === 'read';
  const navItem = (href, label, active) => (
    <a href={href} aria-current={active ? 'page' : undefined} data-testid={`nav-${label.toLowerCase()}`}>
      {label}
    </a>
  );

  let view;
  if (route.view === 'project') {
    view = (
      <ProjectView
        api={api}
        project={route.project}
        selectedBranch={route.branch}
        version={versions[`p:${route.project}`] ?? 0}
        runMutation={runMutation}
        readOnly={readOnly}
      />
    );
  } else if (route.view === 'operations') view = <OperationsView api={api} version={versions.ops ?? 0} />;
  else if (route.view === 'audit') view = <AuditView api={api} version={versions.audit ?? 0} />;
  else if (route.view === 'doctor') view = <DoctorView api={api} version={0} />;
  else view = <ProjectsView api={api} version={versions.projects ?? 0} />;

  return (
    <>
      <a href="#main" class="skip" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>
        Skip to content
      </a>
      <header class="topbar">
        <a href="#/" class="brand">pgbranch</a>
        <nav aria-label="Main">
          {navItem('#/', 'Projects', route.view === 'projects' || route.view === 'project')}
          {navItem('#/operations', 'Operations', route.view === 'operations')}
          {navItem('#/audit', 'Audit', route.view === 'audit')}
          {navItem('#/doctor', 'Doctor', route.view === 'doctor')}
        </nav>
        <div class="topbar-right">
          <span class={`live live-${live}`} data-testid="live-indicator" data-state={live} role="status" title="Live updates from the server">
            <span class="dot" aria-hidden="true" />
            {LIVE_TEXT[live] ?? live}
          </span>
          <span class="muted small who" title="Token name and scope">
            {auth.session?.name} ({auth.session?.scope})
          </span>
          <button type="button" class="btn btn-small" data-testid="logout" onClick={logout}>
            Log out
          </button>
        </div>
      </header>
      <Banners notices={notices} onDismiss={dismiss} />
      <main id="main" tabIndex={-1}>
        {view}
      </main>
    </>
  );
}
