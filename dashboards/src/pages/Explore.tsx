/** Explore: PromQL (instant/range, graph/table) and SQL over metrics, logs and events. */
import { useEffect, useState } from 'preact/hooks';
import { labelValues, query, queryRange, seriesName, type MatrixSeries, type QueryResult } from '../api/prom';
import { sqlTable, type Row } from '../api/sql';
import { Chart } from '../components/Chart';
import { Empty, ErrorBox, Loading, useAsync } from '../components/State';
import { Table } from '../components/Table';
import { Tabs } from '../components/Tabs';
import { TimePicker } from '../components/TimePicker';
import { t } from '../i18n';
import { setParams, useRoute } from '../router';
import { fmtTime } from '../units';
import { fromParams, resolve, stepFor, toParams } from '../timerange';

type PromOut = { kind: 'range'; series: MatrixSeries[]; ms: number; window: [number, number] } | { kind: 'instant'; result: QueryResult; ms: number };

function Editor({ id, label, value, onInput, onRun, rows = 3, placeholder }: { id: string; label: string; value: string; onInput: (v: string) => void; onRun: () => void; rows?: number; placeholder?: string }) {
  return (
    <div class="editor">
      <label for={id}>{label}</label>
      <textarea
        id={id}
        rows={rows}
        spellcheck={false}
        value={value}
        placeholder={placeholder}
        onInput={(e) => onInput(e.currentTarget.value)}
        onKeyDown={(e) => {
          if (e.key === 'Enter' && (e.ctrlKey || e.metaKey || !e.shiftKey)) {
            e.preventDefault();
            onRun();
          }
        }}
      />
      <p class="hint">{t('Enter runs the query; Shift+Enter adds a line.')}</p>
    </div>
  );
}

/** A metric-name picker that inserts the chosen name into the expression. */
function MetricPicker({ onPick }: { onPick: (name: string) => void }) {
  const names = useAsync(() => labelValues('__name__').catch(() => [] as string[]), []);
  return (
    <label class="picker">
      {t('Metric')}
      <select value="" onChange={(e) => { if (e.currentTarget.value) onPick(e.currentTarget.value); }}>
        <option value="">{t('Insert a metric name…')}</option>
        {(names.data ?? []).map((n) => <option key={n} value={n}>{n}</option>)}
      </select>
    </label>
  );
}

function PromResultTable({ out }: { out: PromOut }) {
  if (out.kind === 'range') {
    return (
      <Table
        label={t('Result')}
        rows={out.series}
        columns={[
          { key: 'series', title: t('Series'), render: (s) => <code>{seriesName(s.metric)}</code> },
          { key: 'n', title: t('Points'), render: (s) => s.values.length },
          { key: 'last', title: t('Last value'), render: (s) => s.values[s.values.length - 1]?.[1] },
        ]}
      />
    );
  }
  const r = out.result;
  if (r.resultType === 'scalar' || r.resultType === 'string') return <pre class="result-scalar">{r.result[1]}</pre>;
  if (r.resultType === 'vector')
    return (
      <Table
        label={t('Result')}
        rows={r.result}
        columns={[
          { key: 'series', title: t('Series'), render: (s) => <code>{seriesName(s.metric)}</code> },
          { key: 'value', title: t('Value'), render: (s) => s.value[1] },
          { key: 'time', title: t('Time'), render: (s) => fmtTime(s.value[0]) },
        ]}
      />
    );
  return (
    <Table
      label={t('Result')}
      rows={r.result as MatrixSeries[]}
      columns={[
        { key: 'series', title: t('Series'), render: (s) => <code>{seriesName(s.metric)}</code> },
        { key: 'values', title: t('Values'), render: (s) => s.values.map(([ts, v]) => `${v} @${ts}`).join(', ') },
      ]}
    />
  );
}

function PromQLTab() {
  const r = useRoute();
  const [q, setQ] = useState(r.params.get('q') ?? '');
  const mode = r.params.get('mode') === 'instant' ? 'instant' : 'range';
  const view = r.params.get('view') === 'table' ? 'table' : 'graph';
  const range = fromParams(r.params);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [out, setOut] = useState<PromOut>();

  const run = async (expr = q, m = mode, rg = range) => {
    if (!expr.trim()) return;
    setParams({ q: expr });
    setBusy(true);
    setError(undefined);
    const t0 = performance.now();
    try {
      if (m === 'range') {
        const { start, end } = resolve(rg);
        const series = await queryRange(expr, start, end, stepFor(start, end, 500));
        setOut({ kind: 'range', series, ms: performance.now() - t0, window: [start, end] });
      } else {
        setOut({ kind: 'instant', result: await query(expr), ms: performance.now() - t0 });
      }
    } catch (e) {
      setError(e);
      setOut(undefined);
    } finally {
      setBusy(false);
    }
  };

  // A deep link (?q=…) runs its query once on arrival.
  useEffect(() => {
    if (q.trim()) run();
  }, []);

  const count = out ? (out.kind === 'range' ? out.series.length : Array.isArray(out.result.result) && out.result.resultType !== 'scalar' && out.result.resultType !== 'string' ? out.result.result.length : 1) : 0;
  return (
    <section aria-label="PromQL">
      <Editor id="promql" label={t('PromQL expression')} value={q} onInput={setQ} onRun={() => run()} placeholder='k8s_node_cpu_usage{cluster_id="local"}' />
      <div class="toolbar">
        <div class="seg-group" role="group" aria-label={t('Query type')}>
          <button class={mode === 'range' ? 'seg active' : 'seg'} aria-pressed={mode === 'range'} onClick={() => setParams({ mode: undefined })}>{t('Range')}</button>
          <button class={mode === 'instant' ? 'seg active' : 'seg'} aria-pressed={mode === 'instant'} onClick={() => setParams({ mode: 'instant', view: 'table' })}>{t('Instant')}</button>
        </div>
        <MetricPicker onPick={(n) => setQ((old) => (old.trim() ? `${old}${/\s$/.test(old) ? '' : ' '}${n}` : n))} />
        {mode === 'range' && <TimePicker value={range} onChange={(nr) => { setParams(toParams(nr)); run(q, mode, nr); }} />}
        <div class="spacer" />
        <button class="primary" onClick={() => run()} disabled={busy}>{busy ? t('Running…') : t('Run query')}</button>
      </div>
      {out && (
        <div class="toolbar">
          <div class="seg-group" role="group" aria-label={t('View')}>
            <button class={view === 'graph' ? 'seg active' : 'seg'} aria-pressed={view === 'graph'} disabled={out.kind !== 'range'} onClick={() => setParams({ view: undefined })}>{t('Graph')}</button>
            <button class={view === 'table' || out.kind !== 'range' ? 'seg active' : 'seg'} aria-pressed={view === 'table'} onClick={() => setParams({ view: 'table' })}>{t('Table')}</button>
          </div>
          <span class="muted result-meta">{t('{n} series in {ms} ms', { n: count, ms: Math.round(out.ms) })}</span>
        </div>
      )}
      {busy && !out && <Loading />}
      {!busy && !out && error === undefined && <Empty>{t('Write a PromQL expression and run it.')}</Empty>}
      {error !== undefined && <ErrorBox error={error} />}
      {out && count === 0 && <Empty>{t('The query returned no data.')}</Empty>}
      {out && count > 0 && (out.kind === 'range' && view === 'graph' ? <Chart series={out.series} height={320} title={t('Result')} window={out.window} /> : <PromResultTable out={out} />)}
    </section>
  );
}

function SQLTab() {
  const r = useRoute();
  const [q, setQ] = useState(r.params.get('sql') ?? 'SELECT * FROM events ORDER BY 1 DESC LIMIT 100');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const [rows, setRows] = useState<{ rows: Row[]; columns: string[]; ms: number }>();
  const run = async () => {
    setParams({ sql: q });
    setBusy(true);
    setError(undefined);
    const t0 = performance.now();
    try {
      setRows({ ...(await sqlTable(q)), ms: performance.now() - t0 });
    } catch (e) {
      setError(e);
      setRows(undefined);
    } finally {
      setBusy(false);
    }
  };
  // A deep link (?sql=…) runs its query once on arrival.
  useEffect(() => {
    if (r.params.get('sql')) run();
  }, []);
  return (
    <section aria-label="SQL">
      <Editor id="sql" label={t('SQL over the metrics, logs and events tables')} value={q} onInput={setQ} onRun={run} rows={4} />
      <div class="toolbar">
        <div class="spacer" />
        <button class="primary" onClick={run} disabled={busy}>{busy ? t('Running…') : t('Run query')}</button>
      </div>
      {error !== undefined && <ErrorBox error={error} />}
      {rows && <p class="muted result-meta">{t('{n} rows in {ms} ms', { n: rows.rows.length, ms: Math.round(rows.ms) })}</p>}
      {rows && <Table label={t('Result')} rows={rows.rows} columns={rows.columns.map((c) => ({ key: c, title: c }))} empty={t('The query returned no rows.')} />}
    </section>
  );
}

export function ExplorePage() {
  const r = useRoute();
  const tab = r.params.get('tab') === 'sql' ? 'sql' : 'promql';
  return (
    <div class="page">
      <div class="page-head">
        <h1>{t('Explore')}</h1>
        <Tabs label={t('Query language')} active={tab} tabs={[['promql', 'PromQL'], ['sql', 'SQL']]} />
      </div>
      {tab === 'promql' ? <PromQLTab /> : <SQLTab />}
    </div>
  );
}
