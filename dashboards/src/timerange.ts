/** Time ranges: presets (15m … 7d) or absolute, encoded in the URL as `range=1h` or `from=..&to=..`. */

export interface TimeRange { preset?: string; from?: number; to?: number }
export const PRESETS: Record<string, number> = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800 };

/** Resolves a range to absolute [start, end] seconds at the current moment. */
export function resolve(r: TimeRange): { start: number; end: number } {
  if (r.from !== undefined && r.to !== undefined) return { start: r.from, end: r.to };
  const end = Math.floor(Date.now() / 1000);
  return { start: end - (PRESETS[r.preset ?? '1h'] ?? 3600), end };
}

/** A step that yields about `points` points over the range (at least 1 s, rounded to nice values). */
export function stepFor(start: number, end: number, points = 240): number {
  const raw = Math.max(1, (end - start) / points);
  const nice = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400];
  return nice.find((n) => n >= raw) ?? Math.ceil(raw);
}

export function fromParams(p: URLSearchParams): TimeRange {
  const from = Number(p.get('from'));
  const to = Number(p.get('to'));
  if (from && to && to > from) return { from, to };
  return { preset: p.get('range') ?? '1h' };
}

export function toParams(r: TimeRange): Record<string, string | undefined> {
  if (r.from !== undefined && r.to !== undefined) return { range: undefined, from: String(r.from), to: String(r.to) };
  return { range: r.preset, from: undefined, to: undefined };
}
