/** Loki API client: range queries (streams and metric queries), labels, live tail. */
import { get, withQuery } from './http';
import type { MatrixSeries } from './prom';

export interface LogLine { ts: number; /* ns as float ms precision */ tsNs: string; line: string; labels: Record<string, string> }
interface StreamsResult { resultType: 'streams'; result: { stream: Record<string, string>; values: [string, string][] }[] }
interface MatrixResult { resultType: 'matrix'; result: MatrixSeries[] }
interface Envelope { status: string; data: StreamsResult | MatrixResult }

const ns = (sec: number) => `${Math.floor(sec * 1e9)}`;

function flatten(r: StreamsResult): LogLine[] {
  const out: LogLine[] = [];
  for (const s of r.result) {
    for (const [t, line] of s.values) out.push({ ts: Number(t) / 1e6, tsNs: t, line, labels: s.stream });
  }
  return out;
}

/** Log lines of a LogQL stream query in [start, end] (seconds), newest first. */
export async function queryLogs(q: string, start: number, end: number, limit = 1000, signal?: AbortSignal): Promise<LogLine[]> {
  const r = await get<Envelope>(withQuery('/loki/api/v1/query_range', { query: q, start: ns(start), end: ns(end), limit, direction: 'backward' }), signal);
  if (r.data.resultType !== 'streams') throw new Error('expected a log stream query, got a metric query');
  return flatten(r.data).sort((a, b) => b.ts - a.ts);
}

/** A LogQL metric query (count_over_time …) as matrix series. */
export async function queryMetric(q: string, start: number, end: number, step: number, signal?: AbortSignal): Promise<MatrixSeries[]> {
  const r = await get<Envelope>(withQuery('/loki/api/v1/query_range', { query: q, start: ns(start), end: ns(end), step: `${step}s` }), signal);
  return r.data.resultType === 'matrix' ? r.data.result : [];
}

export async function labelNames(): Promise<string[]> {
  const r = await get<{ data?: string[] }>('/loki/api/v1/labels');
  return r.data ?? [];
}

export async function labelValues(name: string, query?: string): Promise<string[]> {
  const r = await get<{ data?: string[] }>(withQuery(`/loki/api/v1/label/${encodeURIComponent(name)}/values`, { query }));
  return (r.data ?? []).slice().sort();
}

/** Opens a live tail websocket; calls `onLines` for each batch. Returns a close function. */
export function tail(q: string, onLines: (l: LogLine[]) => void, onError: (msg: string) => void): () => void {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${proto}//${location.host}${withQuery('/loki/api/v1/tail', { query: q, start: ns(Date.now() / 1000 - 5) })}`;
  let closed = false;
  const ws = new WebSocket(url);
  ws.onmessage = (ev) => {
    try {
      const msg = JSON.parse(ev.data as string) as { streams?: StreamsResult['result'] };
      if (msg.streams) onLines(flatten({ resultType: 'streams', result: msg.streams }));
    } catch (e) {
      onError(`bad tail message: ${(e as Error).message}`);
    }
  };
  ws.onerror = () => { if (!closed) onError('live tail connection failed'); };
  ws.onclose = (ev) => { if (!closed && ev.code !== 1000) onError(`live tail closed (${ev.code}${ev.reason ? ': ' + ev.reason : ''})`); };
  return () => { closed = true; ws.close(); };
}
