/** A tiny observable value with a Preact hook, for app-wide state (language, user, route). */
import { useEffect, useState } from 'preact/hooks';

export interface Store<T> { get(): T; set(v: T): void; subscribe(f: (v: T) => void): () => void }

export function store<T>(initial: T): Store<T> {
  let value = initial;
  const subs = new Set<(v: T) => void>();
  return {
    get: () => value,
    set(v) {
      value = v;
      subs.forEach((f) => f(v));
    },
    subscribe(f) {
      subs.add(f);
      return () => subs.delete(f);
    },
  };
}

/** Re-renders the calling component whenever the store changes. */
export function useStore<T>(s: Store<T>): T {
  const [v, setV] = useState(s.get());
  useEffect(() => s.subscribe(setV), [s]);
  return v;
}
