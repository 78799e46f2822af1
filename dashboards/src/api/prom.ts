/** Prometheus HTTP API client (query, query_range, labels, series). */
import { get, request, withQuery } from './http';

export type Labels = Record<string, string>;
export interface MatrixSeries { metric: Labels; values: [number, string][] }
export interface VectorSample { metric: Labels; value: [number, string] }
export type QueryResult =
  | { resultType: 'matrix'; result: MatrixSeries[] }
  | { resultType: 'vector'; result: VectorSample[] }
  | { resultType: 'scalar' | 'string'; result: [number, string] };

interface Envelope<T> { status: string; data: T; warnings?: string[] }

/** Instant query at `time` (seconds; now when omitted). */
export async function query(q: string, time?: number, signal?: AbortSignal): Promise<QueryResult> {
  const body: Record<string, string> = { query: q };
  if (time !== undefined) body.time = String(time);
  const r = await request<Envelope<QueryResult>>('POST', '/api/v1/query', body, { form: true, signal });
  return r.data;
}

/** Range query over [start, end] (seconds) with `step` seconds. */
export async function queryRange(q: string, start: number, end: number, step: number, signal?: AbortSignal): Promise<MatrixSeries[]> {
  const body = { query: q, start: String(start), end: String(end), step: String(step) };
  const r = await request<Envelope<QueryResult>>('POST', '/api/v1/query_range', body, { form: true, signal });
  return r.data.resultType === 'matrix' ? r.data.result : [];
}

/** Instant vector helper: the samples of an instant query, or [] for scalars. */
export async function vector(q: string, signal?: AbortSignal): Promise<VectorSample[]> {
  const r = await query(q, undefined, signal);
  return r.resultType === 'vector' ? r.result : [];
}

/** Values of one label, optionally restricted by series selectors. */
export async function labelValues(name: string, match?: string[], start?: number, end?: number): Promise<string[]> {
  const r = await get<Envelope<string[]>>(withQuery(`/api/v1/label/${encodeURIComponent(name)}/values`, { 'match[]': match, start, end }));
  return (r.data ?? []).slice().sort();
}

/** Series matching selectors. */
export async function series(match: string[], start?: number, end?: number): Promise<Labels[]> {
  const r = await get<Envelope<Labels[]>>(withQuery('/api/v1/series', { 'match[]': match, start, end }));
  return r.data ?? [];
}

/** All label names. */
export async function labels(): Promise<string[]> {
  const r = await get<Envelope<string[]>>('/api/v1/labels');
  return r.data ?? [];
}

/** Escapes a value for use inside a double-quoted PromQL/LogQL label matcher. */
export function esc(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

/** Renders `{a="x",b="y"}` from a label map, skipping empty values. */
export function selector(l: Record<string, string | undefined>): string {
  const parts = Object.entries(l)
    .filter(([, v]) => v !== undefined && v !== '')
    .map(([k, v]) => `${k}="${esc(v as string)}"`);
  return `{${parts.join(',')}}`;
}

/** `name{labels}` for display. */
export function seriesName(m: Labels): string {
  const { __name__, ...rest } = m;
  const inner = Object.entries(rest).map(([k, v]) => `${k}="${v}"`).join(', ');
  return `${__name__ ?? ''}{${inner}}`;
}
