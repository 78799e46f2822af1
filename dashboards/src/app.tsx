/** The application shell: session check, navigation by role, language switch, page routing. */
import { useEffect } from 'preact/hooks';
import { me, logout } from './api/platform';
import { setUnauthorizedHandler } from './api/http';
import { canSee, user, type PageId } from './auth';
import { Link } from './components/Link';
import { Loading } from './components/State';
import { setLang, t, useLang } from './i18n';
import { navigate, useRoute } from './router';
import { useStore } from './store';
import { LoginPage } from './pages/Login';
import { OverviewPage } from './pages/Overview';
import { MonitoringPage } from './pages/Monitoring';
import { ExplorePage } from './pages/Explore';
import { LogsPage } from './pages/Logs';
import { EventsPage } from './pages/Events';
import { AlertingPage } from './pages/Alerting';
import { PlatformPage } from './pages/Platform';

const PAGES: { id: PageId; path: string; title: string; view: () => preact.JSX.Element }[] = [
  { id: 'overview', path: '/', title: 'Overview', view: () => <OverviewPage /> },
  { id: 'monitoring', path: '/monitoring', title: 'Monitoring', view: () => <MonitoringPage /> },
  { id: 'explore', path: '/explore', title: 'Explore', view: () => <ExplorePage /> },
  { id: 'logs', path: '/logs', title: 'Logs', view: () => <LogsPage /> },
  { id: 'events', path: '/events', title: 'Events', view: () => <EventsPage /> },
  { id: 'alerting', path: '/alerting', title: 'Alerting', view: () => <AlertingPage /> },
  { id: 'platform', path: '/platform', title: 'Platform', view: () => <PlatformPage /> },
];

setUnauthorizedHandler(() => {
  if (user.get()) user.set(null);
});

function LangSwitch() {
  const l = useLang();
  return (
    <button class="lang" onClick={() => setLang(l === 'en' ? 'zh' : 'en')} aria-label={t('Switch language')} title={t('Switch language')}>
      {l === 'en' ? '中文' : 'English'}
    </button>
  );
}

export function App() {
  useLang();
  const u = useStore(user);
  const r = useRoute();

  useEffect(() => {
    me().then((m) => user.set(m));
  }, []);

  if (u === undefined) return <Loading />;
  if (u === null || r.path === '/login') {
    return <LoginPage langSwitch={<LangSwitch />} onDone={(nu) => { user.set(nu); if (r.path === '/login') navigate('/'); }} />;
  }

  const visible = PAGES.filter((p) => canSee(u, p.id));
  const page = PAGES.find((p) => (p.path === '/' ? r.path === '/' : r.path === p.path || r.path.startsWith(p.path + '/')));
  document.title = `${page ? t(page.title) + ' · ' : ''}Tidewatch`;

  return (
    <div class="shell">
      <header class="topbar">
        <Link to="/" class="brand">Tidewatch</Link>
        <nav aria-label={t('Main navigation')}>
          {visible.map((p) => (
            <Link key={p.id} to={p.path} class={page?.id === p.id ? 'nav active' : 'nav'} aria-current={page?.id === p.id ? 'page' : undefined}>
              {t(p.title)}
            </Link>
          ))}
        </nav>
        <div class="spacer" />
        <LangSwitch />
        <span class="who" title={u.roles.join(', ')}>{u.display_name || u.name}</span>
        <button
          class="link"
          onClick={async () => {
            await logout().catch(() => {});
            user.set(null);
            navigate('/login');
          }}
        >
          {t('Log out')}
        </button>
      </header>
      <main>
        {page && canSee(u, page.id) ? page.view() : <div class="state empty"><h1>{t('Page not found')}</h1></div>}
      </main>
    </div>
  );
}
