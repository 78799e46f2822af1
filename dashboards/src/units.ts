/** Value formatting with units, as TKEStack's metric catalogue uses them. */

export type Unit = 'percent' | 'bytes' | 'Bps' | 'cores' | 'count' | 'ops' | 'pps' | 'seconds' | 'bool' | 'none';

const si = ['', 'K', 'M', 'G', 'T', 'P'];
const bin = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

function scaled(v: number, base: number, names: string[], sep = ' '): string {
  let i = 0;
  let x = Math.abs(v);
  while (x >= base && i < names.length - 1) {
    x /= base;
    i++;
  }
  const s = x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2);
  return `${v < 0 ? '-' : ''}${s}${sep}${names[i]}`.trimEnd();
}

/** Formats one value for display with its unit. */
export function fmt(v: number | null | undefined, unit: Unit = 'none'): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  switch (unit) {
    case 'percent':
      return `${v.toFixed(v >= 10 ? 1 : 2)} %`;
    case 'bytes':
      return scaled(v, 1024, bin);
    case 'Bps':
      return scaled(v, 1024, bin.map((b) => `${b}/s`));
    case 'cores':
      return `${v.toFixed(v >= 10 ? 1 : 3)} cores`;
    case 'ops':
      return scaled(v, 1000, si.map((s) => `${s} ops/s`.trim()));
    case 'pps':
      return scaled(v, 1000, si.map((s) => `${s}pkt/s`));
    case 'seconds':
      return v < 1 ? `${(v * 1000).toFixed(1)} ms` : `${v.toFixed(2)} s`;
    case 'bool':
      return v >= 1 ? 'true' : 'false';
    case 'count':
      return Number.isInteger(v) ? String(v) : v.toFixed(2);
    default:
      return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(3) : String(Math.round(v * 1e4) / 1e4);
  }
}

/** Short axis label variant. */
export const fmtAxis = (v: number, unit: Unit) => fmt(v, unit).replace(' cores', 'c').replace(' %', '%');

/** Formats epoch seconds as a local date-time. */
export function fmtTime(sec: number): string {
  const d = new Date(sec * 1000);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}
