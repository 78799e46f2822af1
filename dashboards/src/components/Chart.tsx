/** Time-series chart on uPlot: aligned series, unit-aware axes, hover tooltip with values and units. */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { MatrixSeries } from '../api/prom';
import { seriesName } from '../api/prom';
import { fmt, fmtAxis, fmtTime, type Unit } from '../units';

const PALETTE = ['#2563eb', '#16a34a', '#dc2626', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#ea580c', '#4f46e5'];
export const color = (i: number) => PALETTE[i % PALETTE.length];

/** Aligns Prometheus matrix series on one time axis (union of timestamps). */
export function align(series: MatrixSeries[]): uPlot.AlignedData {
  const ts = new Set<number>();
  for (const s of series) for (const [t] of s.values) ts.add(t);
  const xs = Float64Array.from(ts).sort();
  const index = new Map<number, number>();
  xs.forEach((t, i) => index.set(t, i));
  const ys = series.map((s) => {
    const y: (number | null)[] = new Array(xs.length).fill(null);
    for (const [t, v] of s.values) y[index.get(t)!] = Number(v);
    return y;
  });
  return [xs as unknown as number[], ...ys] as uPlot.AlignedData;
}

function tooltipPlugin(unit: Unit, names: string[]): uPlot.Plugin {
  let tip: HTMLDivElement;
  return {
    hooks: {
      init: (u) => {
        tip = document.createElement('div');
        tip.className = 'chart-tip';
        tip.setAttribute('role', 'tooltip');
        tip.style.display = 'none';
        u.over.appendChild(tip);
        u.over.addEventListener('mouseleave', () => (tip.style.display = 'none'));
      },
      setCursor: (u) => {
        const idx = u.cursor.idx;
        if (idx === null || idx === undefined || u.cursor.left === undefined || u.cursor.left < 0) {
          tip.style.display = 'none';
          return;
        }
        const rows: { i: number; v: number }[] = [];
        for (let i = 1; i < u.data.length; i++) {
          const v = u.data[i][idx];
          if (v !== null && v !== undefined) rows.push({ i, v: v as number });
        }
        rows.sort((a, b) => b.v - a.v);
        const shown = rows.slice(0, 8);
        tip.replaceChildren();
        const head = document.createElement('div');
        head.className = 'chart-tip-time';
        head.textContent = fmtTime(u.data[0][idx] as number);
        tip.appendChild(head);
        for (const r of shown) {
          const line = document.createElement('div');
          const sw = document.createElement('span');
          sw.className = 'swatch';
          sw.style.background = color(r.i - 1);
          const name = document.createElement('span');
          name.className = 'chart-tip-name';
          name.textContent = names[r.i - 1];
          const val = document.createElement('b');
          val.textContent = fmt(r.v, unit);
          line.append(sw, name, val);
          tip.appendChild(line);
        }
        if (rows.length > shown.length) {
          const more = document.createElement('div');
          more.textContent = `+${rows.length - shown.length}`;
          tip.appendChild(more);
        }
        tip.style.display = rows.length ? 'block' : 'none';
        const left = u.cursor.left!;
        const w = u.over.clientWidth;
        tip.style.left = left > w / 2 ? `${left - tip.offsetWidth - 12}px` : `${left + 12}px`;
        tip.style.top = `${Math.max(0, (u.cursor.top ?? 0) - 20)}px`;
      },
    },
  };
}

export interface ChartProps {
  series: MatrixSeries[];
  unit?: Unit;
  height?: number;
  /** Names each series for tooltip and legend (default: its label set). */
  name?: (s: MatrixSeries) => string;
  title?: string;
  legend?: boolean;
  /** The time window [start, end] in seconds shown on the x axis (default: the data's extent). */
  window?: [number, number];
}

/** A line chart of matrix series. Exposes `data-points` (total points) for tests. */
export function Chart({ series, unit = 'none', height = 220, name = (s) => seriesName(s.metric), title, legend = true, window: win }: ChartProps) {
  const ref = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const names = series.map(name);
  const points = series.reduce((n, s) => n + s.values.length, 0);

  useEffect(() => {
    const el = ref.current!;
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height,
      legend: { show: false },
      cursor: { points: { size: 6 }, drag: { x: true, y: false } },
      scales: { x: win ? { time: true, range: (_u, min, max) => [Math.min(min, win[0]), Math.max(max, win[1])] } : { time: true } },
      series: [{}, ...names.map((n, i) => ({ label: n, stroke: color(i), width: 1.5, points: { show: false }, spanGaps: false }))],
      axes: [
        { stroke: '#64748b', grid: { stroke: '#e2e8f0' } },
        { stroke: '#64748b', grid: { stroke: '#e2e8f0' }, size: 84, values: (_u, vals) => vals.map((v) => fmtAxis(v, unit)) },
      ],
      plugins: [tooltipPlugin(unit, names)],
    };
    const t0 = performance.now();
    plot.current = new uPlot(opts, align(series), el);
    // Exposed for the browser tests' render-time figure: alignment, first draw, up to the next frame.
    requestAnimationFrame(() => performance.measure('tw-chart-render', { start: t0, end: performance.now(), detail: { points } }));
    const ro = new ResizeObserver(() => plot.current?.setSize({ width: Math.max(200, el.clientWidth), height }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
    // Re-create on any change of series identity, unit or height.
  }, [series, unit, height, win?.[0], win?.[1]]); // eslint-disable-line react-hooks/exhaustive-deps

  return (
    <figure class="chart" aria-label={title ?? 'chart'} data-points={points} data-series={series.length}>
      <div ref={ref} class="chart-canvas" />
      {legend && series.length > 1 && series.length <= 12 && (
        <figcaption class="legend">
          {names.map((n, i) => (
            <span key={n} class="legend-item" title={n}>
              <span class="swatch" style={{ background: color(i) }} />
              {n}
            </span>
          ))}
        </figcaption>
      )}
    </figure>
  );
}
