/** Logs: by namespace/workload/pod/container or LogQL, time range, highlighted matches, live tail, volume histogram. */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { labelValues, queryLogs, queryMetric, tail, type LogLine } from '../api/loki';
import { Histogram } from '../components/Histogram';
import { Empty, ErrorBox, Loading, useAsync } from '../components/State';
import { TimePicker } from '../components/TimePicker';
import { t } from '../i18n';
import { setParams, useRoute } from '../router';
import { fromParams, resolve, stepFor, toParams } from '../timerange';
import { fmtTime } from '../units';
import { buildLogQL, highlightPattern, volumeQuery } from '../logql';

const FIELDS: [string, string][] = [
  ['cluster_id', 'Cluster'],
  ['namespace', 'Namespace'],
  ['workload_name', 'Workload'],
  ['pod', 'Pod'],
  ['container', 'Container'],
];

function Highlighted({ text, re }: { text: string; re: RegExp | null }) {
  if (!re) return <>{text}</>;
  const out: (string | preact.JSX.Element)[] = [];
  let last = 0;
  re.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) && out.length < 200) {
    if (m[0] === '') {
      re.lastIndex++;
      continue;
    }
    out.push(text.slice(last, m.index), <mark key={m.index}>{m[0]}</mark>);
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return <>{out}</>;
}

function LabelPicker({ name, title, value, query, onChange }: { name: string; title: string; value: string; query: string; onChange: (v: string) => void }) {
  const a = useAsync(() => labelValues(name, query || undefined).catch(() => [] as string[]), [name, query]);
  return (
    <label class="picker">
      {t(title)}
      <select value={value} onChange={(e) => onChange(e.currentTarget.value)}>
        <option value="">{t('All')}</option>
        {(a.data ?? []).map((v) => <option key={v} value={v}>{v}</option>)}
        {value && !(a.data ?? []).includes(value) && <option value={value}>{value}</option>}
      </select>
    </label>
  );
}

/** Zero buckets covering [start, end] by `step` seconds. */
function emptyBuckets(start: number, end: number, step: number) {
  const n = Math.max(1, Math.ceil((end - start) / step));
  return Array.from({ length: n }, (_, i) => ({ t: start + i * step, v: 0 }));
}

function addTo(b: { t: number; v: number }[], start: number, step: number, tsSec: number, v: number) {
  const i = Math.min(b.length - 1, Math.floor((tsSec - start) / step));
  if (i >= 0) b[i].v += v;
}

/** The histogram from the returned lines themselves, when the server cannot run the metric query. */
function bucketsFromLines(lines: LogLine[], start: number, end: number, step: number) {
  const b = emptyBuckets(start, end, step);
  for (const l of lines) addTo(b, start, step, l.ts / 1000, 1);
  return b;
}

export function LogsPage() {
  const r = useRoute();
  const picked = Object.fromEntries(FIELDS.map(([k]) => [k, r.params.get(k) ?? '']));
  const search = r.params.get('search') ?? '';
  const explicit = r.params.get('logql');
  const logql = explicit ?? buildLogQL(picked, search);
  const [draft, setDraft] = useState(logql);
  const [searchDraft, setSearchDraft] = useState(search);
  useEffect(() => setDraft(logql), [logql]);
  const range = fromParams(r.params);
  const [tick, setTick] = useState(0);
  const { start, end } = useMemo(() => resolve(range), [tick, range.preset, range.from, range.to]);
  const step = stepFor(start, end, 60);
  const re = useMemo(() => highlightPattern(logql), [logql]);

  const result = useAsync(
    async (sig) => {
      const lines = await queryLogs(logql, start, end, 1000, sig);
      let buckets = emptyBuckets(start, end, step);
      try {
        // Metric queries leave out empty steps: place each returned point in its bucket.
        const m = await queryMetric(volumeQuery(logql, step), start, end, step, sig);
        for (const sr of m) for (const [ts, v] of sr.values) addTo(buckets, start, step, ts, Number(v));
        if (!m.length && lines.length) buckets = bucketsFromLines(lines, start, end, step);
      } catch {
        buckets = bucketsFromLines(lines, start, end, step);
      }
      return { lines, buckets };
    },
    [logql, start, end],
  );

  // Live tail
  const [live, setLive] = useState(false);
  const [liveLines, setLiveLines] = useState<LogLine[]>([]);
  const [liveErr, setLiveErr] = useState('');
  const stop = useRef<(() => void) | null>(null);
  useEffect(() => {
    if (!live) return;
    setLiveLines([]);
    setLiveErr('');
    stop.current = tail(logql, (ls) => setLiveLines((old) => [...ls.sort((a, b) => b.ts - a.ts), ...old].slice(0, 1000)), setLiveErr);
    return () => stop.current?.();
  }, [live, logql]);

  const shown = live ? liveLines : result.data?.lines ?? [];
  return (
    <div class="page">
      <div class="page-head">
        <h1>{t('Logs')}</h1>
      </div>
      <div class="toolbar">
        {FIELDS.map(([k, title]) => (
          <LabelPicker key={k} name={k} title={title} value={picked[k]} query={k === 'cluster_id' ? '' : buildLogQL({ cluster_id: picked.cluster_id, namespace: k === 'namespace' ? '' : picked.namespace }, '')} onChange={(v) => setParams({ [k]: v, logql: undefined }, false)} />
        ))}
        <form
          class="search"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            setParams({ search: searchDraft, logql: undefined }, false);
          }}
        >
          <label>
            {t('Contains')}
            <input type="search" value={searchDraft} onInput={(e) => setSearchDraft(e.currentTarget.value)} placeholder={t('text to find')} />
          </label>
          <button type="submit">{t('Search')}</button>
        </form>
      </div>
      <form
        class="editor inline"
        onSubmit={(e) => {
          e.preventDefault();
          setParams({ logql: draft }, false);
          setTick((x) => x + 1);
        }}
      >
        <label for="logql">LogQL</label>
        <input id="logql" class="mono" value={draft} onInput={(e) => setDraft(e.currentTarget.value)} spellcheck={false} />
        <button type="submit" class="primary">{t('Run query')}</button>
      </form>
      <div class="toolbar">
        <TimePicker value={range} onChange={(nr) => setParams(toParams(nr), false)} />
        <div class="spacer" />
        <button class={live ? 'primary' : ''} aria-pressed={live} onClick={() => setLive(!live)}>
          {live ? t('Stop live tail') : t('Live tail')}
        </button>
      </div>
      {!live && result.data && <Histogram buckets={result.data.buckets} label={t('Log volume')} />}
      {liveErr && <ErrorBox error={liveErr} />}
      {!live && result.error !== undefined && <ErrorBox error={result.error} onRetry={result.reload} />}
      {!live && result.data === undefined && !result.error && <Loading />}
      {(live || result.data) && !shown.length && <Empty>{live ? t('Waiting for new lines…') : t('No log lines match in this time range.')}</Empty>}
      {shown.length > 0 && (
        <ol class="loglines" aria-label={t('Log lines')}>
          {shown.map((l, i) => (
            <li key={l.tsNs + i}>
              <time>{fmtTime(l.ts / 1000)}</time>
              <span class="loglabels">{[l.labels.namespace, l.labels.pod, l.labels.container].filter(Boolean).join('/')}</span>
              <span class="logtext"><Highlighted text={l.line} re={re} /></span>
            </li>
          ))}
        </ol>
      )}
    </div>
  );
}
