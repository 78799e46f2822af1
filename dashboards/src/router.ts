/** History-API router: the server falls back to index.html for unknown paths. */
import { store, useStore } from './store';

export interface Route { path: string; params: URLSearchParams }

const current = () => ({ path: location.pathname, params: new URLSearchParams(location.search) });
export const route = store<Route>(current());
window.addEventListener('popstate', () => route.set(current()));

/** Navigates to `to` (a path with optional query); `replace` keeps history clean for filter changes. */
export function navigate(to: string, replace = false): void {
  if (to === location.pathname + location.search) return;
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  route.set(current());
}

/** Updates query parameters of the current page (undefined removes one). */
export function setParams(p: Record<string, string | undefined>, replace = true): void {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(p)) {
    if (v === undefined || v === '') q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  navigate(location.pathname + (s ? `?${s}` : ''), replace);
}

export const useRoute = () => useStore(route);

/** Builds a link target with query params. */
export function href(path: string, params: Record<string, string | undefined> = {}): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
