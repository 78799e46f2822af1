/** Login form: POST /api/platform/v1/login sets the session cookie. */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { login, type User } from '../api/platform';
import { t } from '../i18n';

export function LoginPage({ onDone, langSwitch }: { onDone: (u: User) => void; langSwitch: ComponentChildren }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  return (
    <div class="login-page">
      <form
        class="login card"
        aria-label={t('Sign in')}
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError('');
          try {
            const r = await login(username, password);
            onDone(r.user);
          } catch (err) {
            setError((err as Error).message);
          } finally {
            setBusy(false);
          }
        }}
      >
        <div class="login-head">
          <h1>Tidewatch</h1>
          {langSwitch}
        </div>
        <p class="muted">{t('Observability and container platform console')}</p>
        <label>
          {t('Username')}
          <input name="username" autocomplete="username" required value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        </label>
        <label>
          {t('Password')}
          <input name="password" type="password" autocomplete="current-password" required value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
        </label>
        {error && <div class="state error" role="alert">{error}</div>}
        <button type="submit" class="primary" disabled={busy}>{busy ? t('Signing in…') : t('Sign in')}</button>
      </form>
    </div>
  );
}
