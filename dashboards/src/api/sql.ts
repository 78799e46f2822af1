/** SQL over the `metrics`, `logs` and `events` tables (`POST /api/v1/sql`). */
import { post } from './http';

export type Row = Record<string, unknown>;

/**
 * Runs a SQL query. The aggregator answers
 * `{"status":"success","data":{"columns":[{"name","type"}],"rows":[{…}]}}`; a bare row array,
 * `{rows: [...]}` and `{columns, rows: [[...]]}` are accepted too.
 */
export async function sql(query: string): Promise<Row[]> {
  return rowsOf(await post<unknown>('/api/v1/sql', { query }));
}

/** Runs a SQL query and keeps the result's column order (from `columns` when the server sends it). */
export async function sqlTable(query: string): Promise<{ columns: string[]; rows: Row[] }> {
  const r = await post<unknown>('/api/v1/sql', { query });
  const rows = rowsOf(r);
  const data = (r as { data?: { columns?: unknown } })?.data ?? r;
  const cols = (data as { columns?: unknown })?.columns;
  const columns = Array.isArray(cols) ? cols.map((c) => (typeof c === 'string' ? c : String((c as { name?: string }).name))) : [];
  if (!columns.length) for (const row of rows.slice(0, 50)) for (const k of Object.keys(row)) if (!columns.includes(k)) columns.push(k);
  return { columns, rows };
}

function rowsOf(r: unknown): Row[] {
  if (Array.isArray(r)) return r as Row[];
  if (r && typeof r === 'object' && (r as { data?: unknown }).data && typeof (r as { data?: unknown }).data === 'object' && !Array.isArray((r as { data?: unknown }).data)) {
    return rowsOf((r as { data: unknown }).data);
  }
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
