/** Events (PersistentEvent): the `events` table via SQL, filterable by cluster, namespace, object, type, reason and text. */
import { useMemo, useState } from 'preact/hooks';
import { sql, type Row } from '../api/sql';
import { Show, useAsync } from '../components/State';
import { Table } from '../components/Table';
import { t } from '../i18n';
import { setParams, useRoute } from '../router';

/** Column aliases: the aggregator's `events` table uses `involved_*` for the object; other names are accepted. */
const COLS: Record<string, string[]> = {
  time: ['last_timestamp', 'timestamp', 'time', 'ts', 'event_time', 'first_timestamp'],
  cluster: ['cluster_id', 'cluster'],
  namespace: ['involved_namespace', 'namespace', 'involved_object_namespace'],
  kind: ['involved_kind', 'kind', 'involved_object_kind', 'object_kind'],
  name: ['involved_name', 'involved_object_name', 'object_name', 'name'],
  type: ['type'],
  reason: ['reason'],
  message: ['message'],
  count: ['count'],
};

const val = (r: Row, f: string) => {
  for (const k of COLS[f]) if (r[k] !== undefined && r[k] !== null && r[k] !== '') return r[k];
  return undefined;
};
const str = (v: unknown) => (v === undefined ? '' : String(v));

/** Event time as a display string (accepts epoch s/ms/ns or ISO text). */
function when(v: unknown): string {
  if (typeof v === 'number') {
    const ms = v > 1e17 ? v / 1e6 : v > 1e14 ? v / 1e3 : v > 1e11 ? v : v * 1000;
    return new Date(ms).toLocaleString();
  }
  const d = typeof v === 'string' ? new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(v) ? v : `${v}Z`) : null;
  return d && !Number.isNaN(d.getTime()) ? d.toLocaleString() : str(v);
}

async function loadEvents(): Promise<Row[]> {
  for (const q of ['SELECT * FROM events ORDER BY last_timestamp DESC LIMIT 2000', 'SELECT * FROM events ORDER BY timestamp DESC LIMIT 2000']) {
    try {
      return await sql(q);
    } catch {
      /* try the next ordering column */
    }
  }
  return sql('SELECT * FROM events LIMIT 2000');
}

const FILTERS = ['cluster', 'namespace', 'kind', 'name', 'type', 'reason'] as const;

export function EventsPage() {
  const r = useRoute();
  const a = useAsync(loadEvents, []);
  const f = Object.fromEntries(FILTERS.map((k) => [k, r.params.get(k) ?? '']));
  const [text, setText] = useState(r.params.get('q') ?? '');
  const rows = useMemo(() => {
    const q = (r.params.get('q') ?? '').toLowerCase();
    return (a.data ?? []).filter(
      (row) => FILTERS.every((k) => !f[k] || str(val(row, k)) === f[k]) && (!q || JSON.stringify(row).toLowerCase().includes(q)),
    );
  }, [a.data, r.params.toString()]);
  const options = (k: string) => [...new Set((a.data ?? []).map((row) => str(val(row, k))).filter(Boolean))].sort();
  return (
    <div class="page">
      <div class="page-head">
        <h1>{t('Events')}</h1>
        <button onClick={a.reload}>{t('Refresh')}</button>
      </div>
      <div class="toolbar">
        {FILTERS.map((k) => (
          <label class="picker" key={k}>
            {t(k[0].toUpperCase() + k.slice(1))}
            <select value={f[k]} onChange={(e) => setParams({ [k]: e.currentTarget.value })}>
              <option value="">{t('All')}</option>
              {options(k).map((o) => <option key={o} value={o}>{o}</option>)}
            </select>
          </label>
        ))}
        <form role="search" class="search" onSubmit={(e) => { e.preventDefault(); setParams({ q: text }); }}>
          <label>
            {t('Contains')}
            <input type="search" value={text} onInput={(e) => setText(e.currentTarget.value)} />
          </label>
          <button type="submit">{t('Filter')}</button>
        </form>
      </div>
      <Show a={a}>
        {() => (
          <Table
            label={t('Events')}
            rows={rows}
            empty={t('No events match.')}
            columns={[
              { key: 'time', title: t('Time'), render: (x) => when(val(x, 'time')) },
              { key: 'cluster', title: t('Cluster'), render: (x) => str(val(x, 'cluster')) },
              { key: 'namespace', title: t('Namespace'), render: (x) => str(val(x, 'namespace')) },
              { key: 'object', title: t('Object'), render: (x) => `${str(val(x, 'kind'))}/${str(val(x, 'name'))}` },
              { key: 'type', title: t('Type'), render: (x) => <span class={`pill ${val(x, 'type') === 'Warning' ? 'warn' : 'ok'}`}>{str(val(x, 'type'))}</span> },
              { key: 'reason', title: t('Reason'), render: (x) => str(val(x, 'reason')) },
              { key: 'message', title: t('Message'), render: (x) => str(val(x, 'message')), class: 'wrap' },
              { key: 'count', title: t('Count'), render: (x) => str(val(x, 'count')) },
            ]}
          />
        )}
      </Show>
    </div>
  );
}
