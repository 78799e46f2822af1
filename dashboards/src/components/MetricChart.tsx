/** A chart panel that runs one range query and shows loading, error, empty or the chart. */
import { queryRange, type MatrixSeries } from '../api/prom';
import { t } from '../i18n';
import { stepFor } from '../timerange';
import type { Unit } from '../units';
import { Chart } from './Chart';
import { Empty, ErrorBox, useAsync } from './State';

/** Names series by metric name plus the labels that differ between them. */
export function shortNames(series: MatrixSeries[]): (s: MatrixSeries) => string {
  const keys = new Set<string>();
  for (const s of series) for (const k of Object.keys(s.metric)) keys.add(k);
  const varying = [...keys].filter((k) => k !== '__name__' && new Set(series.map((s) => s.metric[k])).size > 1);
  const names = new Set(series.map((s) => s.metric.__name__));
  return (s) => {
    const parts = varying.map((k) => s.metric[k]).filter(Boolean);
    const base = names.size > 1 || !parts.length ? s.metric.__name__ ?? '' : '';
    return [base, ...parts].filter(Boolean).join(' ') || '{}';
  };
}

export function MetricChart({ title, expr, unit, start, end, height }: { title: string; expr: string; unit: Unit; start: number; end: number; height?: number }) {
  const step = stepFor(start, end);
  const a = useAsync((sig) => queryRange(expr, start, end, step, sig), [expr, start, end]);
  return (
    <section class="panel" aria-label={title}>
      <h3 title={expr}>{title}</h3>
      {a.error ? (
        <ErrorBox error={a.error} onRetry={a.reload} />
      ) : a.data === undefined ? (
        <div class="chart-placeholder" style={{ height: height ?? 200 }} aria-busy="true" />
      ) : a.data.length === 0 ? (
        <Empty>
          {t('No data')}
          <code class="empty-expr">{expr}</code>
        </Empty>
      ) : (
        <Chart series={a.data} unit={unit} title={title} height={height ?? 200} name={shortNames(a.data)} window={[start, end]} />
      )}
    </section>
  );
}
