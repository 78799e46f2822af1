/** Business quotas: Kubernetes quantities and the used-vs-hard rows shown per cluster. */
import type { Item } from './api/platform';

/** Standard ResourceQuota keys (TKEStack console): counts, cores, MiB. */
export const QUOTA_KEYS = ['requests.cpu', 'limits.cpu', 'requests.memory', 'limits.memory', 'pods', 'services', 'persistentvolumeclaims', 'configmaps', 'secrets'];

/** Parses Kubernetes quantities ("500m", "4Gi", "2") to numbers for the used/hard bars. */
export function quantity(v: unknown): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  if (typeof v === 'number') return v;
  const m = /^(-?[\d.]+)\s*([a-zA-Z]*)$/.exec(String(v).trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const mult: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 };
  return m[2] in mult ? n * mult[m[2]] : undefined;
}

export interface QuotaRow { cluster: string; key: string; hard?: unknown; used?: unknown }

/** Normalises the quota shapes a business may carry (map per cluster or list) into rows. */
export function quotaRows(b: Item): QuotaRow[] {
  const rows: QuotaRow[] = [];
  const src = (b.quotas ?? b.quota ?? b.clusters) as unknown;
  if (Array.isArray(src)) {
    for (const q of src as Record<string, unknown>[]) {
      const cluster = String(q.cluster_id ?? q.cluster ?? '');
      const hard = (q.hard ?? {}) as Record<string, unknown>;
      const used = (q.used ?? {}) as Record<string, unknown>;
      for (const k of new Set([...Object.keys(hard), ...Object.keys(used)])) rows.push({ cluster, key: k, hard: hard[k], used: used[k] });
    }
  } else if (src && typeof src === 'object') {
    for (const [cluster, q] of Object.entries(src as Record<string, Record<string, unknown>>)) {
      const hard = (q?.hard ?? {}) as Record<string, unknown>;
      const used = (q?.used ?? {}) as Record<string, unknown>;
      for (const k of new Set([...Object.keys(hard), ...Object.keys(used)])) rows.push({ cluster, key: k, hard: hard[k], used: used[k] });
    }
  }
  return rows;
}

