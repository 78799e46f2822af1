/** SQL over the `metrics`, `logs` and `events` tables (`POST /api/v1/sql`). */
import { post } from './http';

export type Row = Record<string, unknown>;

/** Runs a SQL query; accepts a bare row array or `{rows|data: [...]}`. */
export async function sql(query: string): Promise<Row[]> {
  const r = await post<unknown>('/api/v1/sql', { query });
  if (Array.isArray(r)) return r as Row[];
  if (r && typeof r === 'object') {
    const o = r as Record<string, unknown>;
    for (const k of ['rows', 'data', 'items', 'result']) {
      const v = o[k];
      if (Array.isArray(v)) {
        // {columns:[..], rows:[[..]]} form
        if (Array.isArray(o.columns) && Array.isArray(v[0])) {
          const cols = (o.columns as unknown[]).map((c) => (typeof c === 'string' ? c : String((c as { name?: string }).name)));
          return (v as unknown[][]).map((row) => Object.fromEntries(cols.map((c, i) => [c, row[i]])));
        }
        return v as Row[];
      }
    }
  }
  return [];
}

/** Quotes a string literal for SQL. */
export const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
