/** A plain accessible data table with optional per-column renderers. */
import type { ComponentChildren } from 'preact';
import { t } from '../i18n';

export interface Column<T> { key: string; title: string; render?: (row: T) => ComponentChildren; class?: string }

export function Table<T>({ rows, columns, label, rowKey, empty }: { rows: T[]; columns: Column<T>[]; label: string; rowKey?: (r: T, i: number) => string | number; empty?: string }) {
  if (!rows.length) return <div class="state empty">{empty ?? t('No data')}</div>;
  return (
    <div class="table-wrap">
      <table aria-label={label}>
        <thead>
          <tr>{columns.map((c) => <th key={c.key} scope="col">{c.title}</th>)}</tr>
        </thead>
        <tbody>
          {rows.map((r, i) => (
            <tr key={rowKey ? rowKey(r, i) : i}>
              {columns.map((c) => (
                <td key={c.key} class={c.class}>{c.render ? c.render(r) : cell((r as Record<string, unknown>)[c.key])}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Renders an arbitrary JSON value compactly. */
export function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Columns for arbitrary row objects (union of keys, in first-seen order). */
export function autoColumns(rows: Record<string, unknown>[], max = 12): Column<Record<string, unknown>>[] {
  const keys: string[] = [];
  for (const r of rows.slice(0, 50)) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
  return keys.slice(0, max).map((k) => ({ key: k, title: k }));
}
