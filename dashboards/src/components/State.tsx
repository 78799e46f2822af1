/** Loading, error and empty states, plus an async-data hook that drives them. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { t } from '../i18n';

export function Loading() {
  return <div class="state loading" role="status" aria-live="polite">{t('Loading…')}</div>;
}

export function ErrorBox({ error, onRetry, title }: { error: unknown; onRetry?: () => void; title?: string }) {
  const msg = error instanceof Error ? error.message : String(error);
  return (
    <div class="state error" role="alert">
      <strong>{title ?? t('Error')}:</strong> <span class="error-message">{msg}</span>
      {onRetry && <button class="link" onClick={onRetry}>{t('Retry')}</button>}
    </div>
  );
}

export function Empty({ children }: { children?: ComponentChildren }) {
  return <div class="state empty">{children ?? t('No data')}</div>;
}

export interface Async<T> { data?: T; error?: unknown; loading: boolean; reload: () => void }

/**
 * Runs `fn` when `deps` change (and on reload), cancelling stale results.
 * Keeps the previous data while reloading so charts do not flash on auto refresh.
 */
export function useAsync<T>(fn: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data?: T; error?: unknown; loading: boolean }>({ loading: true });
  const [tick, setTick] = useState(0);
  const ctl = useRef<AbortController | null>(null);
  useEffect(() => {
    ctl.current?.abort();
    const c = new AbortController();
    ctl.current = c;
    setState((s) => ({ ...s, loading: true }));
    fn(c.signal).then(
      (data) => !c.signal.aborted && setState({ data, loading: false }),
      (error) => !c.signal.aborted && (error as Error)?.name !== 'AbortError' && setState({ error, loading: false }),
    );
    return () => c.abort();
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((x) => x + 1), []);
  return { ...state, reload };
}

/** Renders loading / error / children(data) for an Async. */
export function Show<T>({ a, children, empty }: { a: Async<T>; children: (d: T) => ComponentChildren; empty?: (d: T) => boolean }) {
  if (a.error) return <ErrorBox error={a.error} onRetry={a.reload} />;
  if (a.data === undefined) return <Loading />;
  if (empty?.(a.data)) return <Empty />;
  return <>{children(a.data)}</>;
}
