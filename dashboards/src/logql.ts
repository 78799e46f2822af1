/** LogQL helpers for the logs page: query building, volume query, match highlighting. */
import { esc } from './api/prom';

/** Builds a LogQL query from picked labels and a search text. */
export function buildLogQL(labels: Record<string, string>, search: string): string {
  const m = Object.entries(labels).filter(([, v]) => v).map(([k, v]) => `${k}="${esc(v)}"`);
  const sel = m.length ? `{${m.join(',')}}` : '{cluster_id=~".+"}';
  return search ? `${sel} |= "${esc(search)}"` : sel;
}

/** The log-volume metric query for a LogQL stream query: matching lines per step. */
export const volumeQuery = (q: string, step: number) => `sum(count_over_time(${q} [${step}s]))`;

/** Patterns to highlight: the literal or regex line filters of a LogQL query. */
export function highlightPattern(q: string): RegExp | null {
  const parts: string[] = [];
  const re = /\|([=~])\s*(?:"((?:[^"\\]|\\.)*)"|`([^`]*)`)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(q))) {
    const raw = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3];
    if (!raw) continue;
    if (m[1] === '=') parts.push(raw.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    else {
      try {
        new RegExp(raw);
        parts.push(raw);
      } catch {
        /* not a JS-compatible regex: no highlight */
      }
    }
  }
  return parts.length ? new RegExp(`(${parts.join('|')})`, 'gi') : null;
}

