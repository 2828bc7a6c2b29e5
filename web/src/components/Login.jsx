import { useState } from 'preact/hooks';

// The token form: POST /api/v1/session {"token"}. The token itself is not kept anywhere;
// the session cookie and the CSRF token stand for it afterwards.
export function Login({ api, onLoggedIn, notice }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (e) => {
    e.preventDefault();
    if (!token.trim()) {
      setError('Enter an API token.');
      return;
    }
    setBusy(true);
    setError('');
    try {
      const session = await api.login(token.trim());
      setToken('');
      onLoggedIn(session);
    } catch (err) {
      setError(err.status === 401 ? 'That token was not accepted.' : err.message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="login" id="main">
      <form class="panel login-form" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">pgbranch</h1>
        <p class="muted">Log in with an API token.</p>
        {notice && <p class="muted" role="status">{notice}</p>}
        <div class="field">
          <label for="login-token">API token</label>
          <input
            id="login-token"
            type="password"
            data-testid="login-token"
            autoComplete="off"
            spellcheck={false}
            value={token}
            placeholder="pgbt_…"
            aria-invalid={error ? 'true' : undefined}
            aria-describedby="login-help"
            onInput={(e) => setToken(e.currentTarget.value)}
            autoFocus
          />
          <small id="login-help" class="muted">
            Make one with <code>pgbranch token create NAME --scope write</code>.
          </small>
        </div>
        {error && (
          <p class="field-error" role="alert" data-testid="login-error">
            {error}
          </p>
        )}
        <button type="submit" class="btn btn-primary" data-testid="login-submit" disabled={busy}>
          {busy ? 'Logging in…' : 'Log in'}
        </button>
      </form>
    </main>
  );
}
