/** Monitoring at five levels: cluster → node → workload → pod → container, with drill-down. */
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { esc, labelValues, selector, series, vector, type Labels } from '../api/prom';
import { CHARTS, LEVELS, matchers, type Level, type Target } from '../catalog';
import { Link } from '../components/Link';
import { MetricChart } from '../components/MetricChart';
import { Show, useAsync } from '../components/State';
import { Table } from '../components/Table';
import { AutoRefresh, TimePicker } from '../components/TimePicker';
import { t } from '../i18n';
import { href, setParams, useRoute } from '../router';
import { fromParams, resolve, toParams } from '../timerange';
import { fmt } from '../units';

const PARAMS: (keyof Target)[] = ['cluster', 'node', 'namespace', 'kind', 'workload', 'pod', 'container'];

/** The URL of a monitoring page for a level and target (keeps the time range). */
export function monitorHref(level: Level, target: Target, keep?: URLSearchParams): string {
  const p: Record<string, string | undefined> = { level, ...target };
  if (keep) for (const k of ['range', 'from', 'to']) p[k] = keep.get(k) ?? undefined;
  return href('/monitoring', p);
}

function Picker({ label, value, options, onChange }: { label: string; value?: string; options?: string[]; onChange: (v: string) => void }) {
  return (
    <label class="picker">
      {label}
      <select value={value ?? ''} onChange={(e) => onChange(e.currentTarget.value)} disabled={!options}>
        <option value="">{options ? t('— select —') : t('Loading…')}</option>
        {options?.map((o) => <option key={o} value={o}>{o}</option>)}
        {value && options && !options.includes(value) && <option value={value}>{value}</option>}
      </select>
    </label>
  );
}

/** Label values of `name` among series of `metric` matching `m`. */
function useValues(name: string, metric: string, m: Record<string, string | undefined>, enabled = true) {
  const sel = metric + selector(m);
  return useAsync(async () => (enabled ? labelValues(name, [sel]) : []), [name, sel, enabled]);
}

function Pickers({ level, target }: { level: Level; target: Target }) {
  const set = (p: Partial<Target>) => setParams(p as Record<string, string | undefined>, false);
  const clusters = useAsync(async () => {
    const v = await labelValues('cluster_id');
    return v.length ? v : ['local'];
  }, []);
  const c = { cluster_id: target.cluster };
  const nodes = useValues('node', 'k8s_node_cpu_usage', c, level === 'node');
  const nsMetric = level === 'workload' ? 'k8s_workload_cpu_core_used' : 'k8s_pod_cpu_core_used';
  const namespaces = useValues('namespace', nsMetric, c, level !== 'cluster' && level !== 'node');
  const workloads = useAsync(
    async () => (level === 'workload' && target.namespace ? series([`k8s_workload_cpu_core_used${selector({ ...c, namespace: target.namespace })}`]) : []),
    [level, target.cluster, target.namespace],
  );
  const pods = useValues('pod_name', 'k8s_pod_cpu_core_used', { ...c, namespace: target.namespace }, (level === 'pod' || level === 'container') && !!target.namespace);
  const containers = useValues('container_name', 'k8s_container_cpu_core_used', { ...c, namespace: target.namespace, pod_name: target.pod }, level === 'container' && !!target.pod);
  // Without a cluster in the URL the page shows `local`; where no such cluster reports, open the first one.
  useEffect(() => {
    if (!new URLSearchParams(location.search).get('cluster') && clusters.data?.length && !clusters.data.includes('local')) setParams({ cluster: clusters.data[0] }, true);
  }, [clusters.data]);
  // On a node page without a node chosen, open the first one (in `tidewatch up` there is exactly one).
  useEffect(() => {
    if (level === 'node' && !target.node && nodes.data?.length) setParams({ node: nodes.data[0] }, true);
  }, [level, target.node, nodes.data]);
  const wl = (workloads.data ?? []).map((s: Labels) => `${s.workload_kind}/${s.workload_name}`);
  return (
    <div class="pickers">
      <Picker label={t('Cluster')} value={target.cluster} options={clusters.data} onChange={(v) => set({ cluster: v, node: undefined, namespace: undefined, workload: undefined, kind: undefined, pod: undefined, container: undefined })} />
      {level === 'node' && <Picker label={t('Node')} value={target.node} options={nodes.data} onChange={(v) => set({ node: v })} />}
      {level !== 'cluster' && level !== 'node' && (
        <Picker label={t('Namespace')} value={target.namespace} options={namespaces.data} onChange={(v) => set({ namespace: v, workload: undefined, kind: undefined, pod: undefined, container: undefined })} />
      )}
      {level === 'workload' && (
        <Picker
          label={t('Workload')}
          value={target.workload ? `${target.kind}/${target.workload}` : undefined}
          options={target.namespace ? [...new Set(wl)].sort() : []}
          onChange={(v) => {
            const [kind, ...name] = v.split('/');
            set({ kind, workload: name.join('/') });
          }}
        />
      )}
      {(level === 'pod' || level === 'container') && <Picker label={t('Pod')} value={target.pod} options={target.namespace ? pods.data : []} onChange={(v) => set({ pod: v, container: undefined })} />}
      {level === 'container' && <Picker label={t('Container')} value={target.container} options={target.pod ? containers.data : []} onChange={(v) => set({ container: v })} />}
    </div>
  );
}

/** What a level needs selected before charts make sense. */
function complete(level: Level, tg: Target): boolean {
  switch (level) {
    case 'cluster':
      return !!tg.cluster;
    case 'node':
      return !!tg.cluster && !!tg.node;
    case 'workload':
      return !!tg.cluster && !!tg.namespace && !!tg.workload;
    case 'pod':
      return !!tg.cluster && !!tg.namespace && !!tg.pod;
    case 'container':
      return !!tg.cluster && !!tg.namespace && !!tg.pod && !!tg.container;
  }
}

/** The next level's objects under the current one, with current CPU/memory, linking further down. */
function Children({ level, target, keep, tick }: { level: Level; target: Target; keep: URLSearchParams; tick: number }) {
  const spec: { title: string; cpu: string; mem: string; memUnit: 'percent' | 'bytes'; key: (l: Labels) => string; to: (l: Labels) => string; sel: Record<string, string | undefined> } | null =
    level === 'cluster'
      ? { title: t('Nodes'), cpu: 'k8s_node_cpu_usage', mem: 'k8s_node_mem_usage', memUnit: 'percent', key: (l) => l.node, to: (l) => monitorHref('node', { cluster: target.cluster, node: l.node }, keep), sel: { cluster_id: target.cluster } }
      : level === 'node'
        ? { title: t('Pods on this node'), cpu: 'k8s_pod_cpu_core_used', mem: 'k8s_pod_mem_usage_bytes', memUnit: 'bytes', key: (l) => `${l.namespace}/${l.pod_name}`, to: (l) => monitorHref('pod', { cluster: target.cluster, namespace: l.namespace, pod: l.pod_name }, keep), sel: { cluster_id: target.cluster, node: target.node } }
        : level === 'workload'
          ? { title: t('Pods'), cpu: 'k8s_pod_cpu_core_used', mem: 'k8s_pod_mem_usage_bytes', memUnit: 'bytes', key: (l) => `${l.namespace}/${l.pod_name}`, to: (l) => monitorHref('pod', { cluster: target.cluster, namespace: l.namespace, pod: l.pod_name }, keep), sel: matchers('workload', target) }
          : level === 'pod'
            ? { title: t('Containers'), cpu: 'k8s_container_cpu_core_used', mem: 'k8s_container_mem_usage_bytes', memUnit: 'bytes', key: (l) => l.container_name, to: (l) => monitorHref('container', { cluster: target.cluster, namespace: target.namespace, pod: target.pod, container: l.container_name }, keep), sel: matchers('pod', target) }
            : null;
  const a = useAsync(async (sig) => {
    if (!spec) return [];
    const [cpu, mem] = await Promise.all([vector(spec.cpu + selector(spec.sel), sig), vector(spec.mem + selector(spec.sel), sig)]);
    const rows = new Map<string, { labels: Labels; cpu?: number; mem?: number }>();
    for (const s of cpu) rows.set(spec.key(s.metric), { labels: s.metric, cpu: Number(s.value[1]) });
    for (const s of mem) {
      const k = spec.key(s.metric);
      const r = rows.get(k) ?? { labels: s.metric };
      r.mem = Number(s.value[1]);
      rows.set(k, r);
    }
    return [...rows.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [level, JSON.stringify(target), tick]);
  if (!spec) return null;
  const cpuUnit = spec.cpu === 'k8s_node_cpu_usage' ? 'percent' : 'cores';
  return (
    <section class="panel wide" aria-label={spec.title}>
      <h3>{spec.title}</h3>
      <Show a={a}>
        {(rows) => (
          <Table
            label={spec.title}
            rows={rows}
            rowKey={([k]) => k}
            columns={[
              { key: 'name', title: t('Name'), render: ([k, r]) => <Link to={spec.to(r.labels)}>{k}</Link> },
              { key: 'cpu', title: t('CPU'), render: ([, r]) => fmt(r.cpu, cpuUnit) },
              { key: 'mem', title: t('Memory'), render: ([, r]) => fmt(r.mem, spec.memUnit) },
            ]}
          />
        )}
      </Show>
    </section>
  );
}

function Breadcrumb({ level, target, keep }: { level: Level; target: Target; keep: URLSearchParams }) {
  const crumbs: [string, string][] = [];
  if (target.cluster) crumbs.push([`${t('Cluster')} ${target.cluster}`, monitorHref('cluster', { cluster: target.cluster }, keep)]);
  if (level === 'node' && target.node) crumbs.push([`${t('Node')} ${target.node}`, monitorHref('node', { cluster: target.cluster, node: target.node }, keep)]);
  if (target.workload) crumbs.push([`${target.kind}/${target.workload}`, monitorHref('workload', { cluster: target.cluster, namespace: target.namespace, kind: target.kind, workload: target.workload }, keep)]);
  if (target.pod) crumbs.push([`${t('Pod')} ${target.pod}`, monitorHref('pod', { cluster: target.cluster, namespace: target.namespace, pod: target.pod }, keep)]);
  if (target.container) crumbs.push([`${t('Container')} ${target.container}`, monitorHref('container', { ...target, node: undefined, kind: undefined, workload: undefined }, keep)]);
  if (crumbs.length < 2) return null;
  return (
    <nav class="breadcrumb" aria-label={t('Breadcrumb')}>
      {crumbs.map(([n, to], i) => (
        <span key={to}>
          {i > 0 && ' › '}
          <Link to={to}>{n}</Link>
        </span>
      ))}
    </nav>
  );
}

export function MonitoringPage() {
  const r = useRoute();
  const level = (LEVELS.includes(r.params.get('level') as Level) ? r.params.get('level') : 'cluster') as Level;
  const target: Target = Object.fromEntries(PARAMS.map((k) => [k, r.params.get(k) ?? undefined]));
  if (!target.cluster) target.cluster = 'local';
  const range = fromParams(r.params);
  const [tick, setTick] = useState(0);
  const refresh = useCallback(() => setTick((x) => x + 1), []);
  // Re-resolve "last N" ranges on every refresh tick.
  const { start, end } = useMemo(() => resolve(range), [tick, range.preset, range.from, range.to]);
  const m = Object.entries(matchers(level, target)).filter(([, v]) => v);
  const sel = m.map(([k, v]) => `${k}="${esc(v!)}"`).join(',');
  return (
    <div class="page">
      <div class="page-head">
        <h1>{t('Monitoring')}</h1>
        <nav class="tabs" aria-label={t('Level')}>
          {LEVELS.map((l) => (
            <Link key={l} to={monitorHref(l, { cluster: target.cluster }, r.params)} class={l === level ? 'tab active' : 'tab'} aria-current={l === level ? 'page' : undefined}>
              {t(l[0].toUpperCase() + l.slice(1))}
            </Link>
          ))}
        </nav>
      </div>
      <div class="toolbar">
        <Pickers level={level} target={target} />
        <div class="spacer" />
        <TimePicker value={range} onChange={(nr) => setParams(toParams(nr), false)} />
        <button onClick={refresh} aria-label={t('Refresh')}>↻</button>
        <AutoRefresh onTick={refresh} />
      </div>
      <Breadcrumb level={level} target={target} keep={r.params} />
      {!complete(level, target) ? (
        <div class="state empty">{t('Pick an object to see its charts.')}</div>
      ) : (
        <div class="grid">
          {CHARTS[level].map((c) => (
            <MetricChart key={c.title + sel} title={t(c.title)} unit={c.unit} expr={`{__name__=~"${c.metrics.join('|')}"${sel ? ',' + sel : ''}}`} start={start} end={end} />
          ))}
        </div>
      )}
      {complete(level, target) && <Children level={level} target={target} keep={r.params} tick={tick} />}
    </div>
  );
}
