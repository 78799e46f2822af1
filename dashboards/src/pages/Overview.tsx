/** Overview: clusters with health, node/pod counts, CPU/memory used vs capacity, firing alerts. */
import { alerts, type Alert } from '../api/am';
import { list, type Item } from '../api/platform';
import { vector } from '../api/prom';
import { Bar } from '../components/Bar';
import { Link } from '../components/Link';
import { ErrorBox, Show, useAsync } from '../components/State';
import { Table } from '../components/Table';
import { t } from '../i18n';
import { href } from '../router';
import { fmt } from '../units';
import { monitorHref } from './Monitoring';

interface ClusterRow {
  id: string;
  name: string;
  phase?: string;
  version?: string;
  nodes?: number;
  notReady?: number;
  pods?: number;
  cpuUsed?: number;
  cpuTotal?: number;
  memUsed?: number;
  memTotal?: number;
  cpuPct?: number;
  memPct?: number;
  firing: number;
}

/** One number per cluster_id from an instant query (failures give an empty map). */
async function perCluster(q: string): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  try {
    for (const s of await vector(q)) m.set(s.metric.cluster_id ?? 'local', Number(s.value[1]));
    if (/^(count|max by \(cluster_id\) \(k8s_cluster_(node|pod))/.test(q)) for (const [k, v] of m) m.set(k, Math.round(v));
  } catch {
    /* a missing metric family leaves the column blank */
  }
  return m;
}

/** The first map that has a value for the cluster. */
const pick = (id: string, ...ms: Map<string, number>[]) => ms.find((m) => m.has(id))?.get(id);

async function load(): Promise<{ clusters: ClusterRow[]; alerts: Alert[]; alertError?: unknown; platformError?: unknown }> {
  const [platform, firing, nodes, nodes2, notReady, pods, pods2, cpuUsed, cpuTotal, memUsed, memTotal, cpuPct, memPct] = await Promise.all([
    list('clusters').then((x) => ({ ok: x }), (e) => ({ err: e as unknown })),
    alerts(true).then((x) => ({ ok: x }), (e) => ({ err: e as unknown })),
    perCluster('max by (cluster_id) (k8s_cluster_node_num)'),
    perCluster('count by (cluster_id) (k8s_node_cpu_usage)'),
    perCluster('max by (cluster_id) (k8s_cluster_node_not_ready_num)'),
    perCluster('max by (cluster_id) (k8s_cluster_pod_num)'),
    perCluster('count by (cluster_id) (k8s_pod_cpu_core_used)'),
    perCluster('max by (cluster_id) (k8s_cluster_cpu_core_used)'),
    perCluster('max by (cluster_id) (k8s_cluster_cpu_core_total)'),
    perCluster('max by (cluster_id) (k8s_cluster_mem_usage_bytes)'),
    perCluster('max by (cluster_id) (k8s_cluster_memory_total)'),
    perCluster('avg by (cluster_id) (k8s_node_cpu_usage)'),
    perCluster('avg by (cluster_id) (k8s_node_mem_usage)'),
  ]);
  const firingAlerts = 'ok' in firing ? firing.ok.filter((a) => a.status?.state !== 'suppressed') : [];
  const ids = new Set<string>();
  const items: Item[] = 'ok' in platform ? platform.ok : [];
  const byId = new Map<string, Item>();
  for (const c of items) {
    const id = String(c.cluster_id ?? c.name ?? c.id);
    ids.add(id);
    byId.set(id, c);
  }
  for (const m of [nodes, nodes2, pods, pods2, cpuPct]) for (const k of m.keys()) ids.add(k);
  const clusters = [...ids].sort().map((id): ClusterRow => {
    const c = byId.get(id);
    const status = c?.status as Record<string, unknown> | undefined;
    return {
      id,
      name: String(c?.display_name ?? c?.name ?? id),
      phase: String(c?.phase ?? status?.phase ?? c?.health ?? (nodes2.has(id) ? 'Running' : 'Unknown')),
      version: c?.version as string | undefined,
      nodes: pick(id, nodes, nodes2),
      notReady: pick(id, notReady),
      pods: pick(id, pods, pods2),
      cpuUsed: pick(id, cpuUsed),
      cpuTotal: pick(id, cpuTotal),
      memUsed: pick(id, memUsed),
      memTotal: pick(id, memTotal),
      cpuPct: pick(id, cpuPct),
      memPct: pick(id, memPct),
      firing: firingAlerts.filter((a) => (a.labels.cluster_id ?? a.labels.cluster ?? 'local') === id).length,
    };
  });
  return { clusters, alerts: firingAlerts, alertError: 'err' in firing ? firing.err : undefined, platformError: 'err' in platform ? platform.err : undefined };
}

function usage(used: number | undefined, total: number | undefined, pct: number | undefined, unit: 'cores' | 'bytes') {
  if (used !== undefined && total) return <Bar used={used} total={total} label={`${fmt(used, unit)} / ${fmt(total, unit)}`} />;
  if (pct !== undefined) return <Bar used={pct} total={100} label={`${fmt(pct, 'percent')} ${t('(node average)')}`} />;
  return <span class="muted">–</span>;
}

export function OverviewPage() {
  const a = useAsync(load, []);
  return (
    <div class="page">
      <div class="page-head">
        <h1>{t('Overview')}</h1>
        <button onClick={a.reload}>{t('Refresh')}</button>
      </div>
      <Show a={a}>
        {(d) => {
          const total = (f: (c: ClusterRow) => number | undefined) => d.clusters.reduce((n, c) => n + (f(c) ?? 0), 0);
          return (
            <>
              <div class="stats">
                <div class="stat"><span>{t('Clusters')}</span><b>{d.clusters.length}</b></div>
                <div class="stat"><span>{t('Nodes')}</span><b>{total((c) => c.nodes)}</b></div>
                <div class="stat"><span>{t('Pods')}</span><b>{total((c) => c.pods)}</b></div>
                <div class={d.alerts.length ? 'stat bad' : 'stat'}><span>{t('Firing alerts')}</span><b>{d.alerts.length}</b></div>
              </div>
              <section class="panel wide" aria-label={t('Clusters')}>
                <h3>{t('Clusters')}</h3>
                {d.platformError !== undefined && <ErrorBox title={t('Platform cluster list')} error={d.platformError} />}
                <Table
                  label={t('Clusters')}
                  rows={d.clusters}
                  rowKey={(c) => c.id}
                  empty={t('No clusters yet: import one under Platform, or start a collector.')}
                  columns={[
                    { key: 'name', title: t('Cluster'), render: (c) => <Link to={monitorHref('cluster', { cluster: c.id })}>{c.name}</Link> },
                    { key: 'phase', title: t('Health'), render: (c) => <span class={`pill ${/run|ok|health|ready/i.test(c.phase ?? '') ? 'ok' : 'warn'}`}>{c.phase}</span> },
                    { key: 'nodes', title: t('Nodes'), render: (c) => `${c.nodes ?? '–'}${c.notReady ? ` (${t('{n} not ready', { n: c.notReady })})` : ''}` },
                    { key: 'pods', title: t('Pods'), render: (c) => c.pods ?? '–' },
                    { key: 'cpu', title: t('CPU used / capacity'), render: (c) => usage(c.cpuUsed, c.cpuTotal, c.cpuPct, 'cores') },
                    { key: 'mem', title: t('Memory used / capacity'), render: (c) => usage(c.memUsed, c.memTotal, c.memPct, 'bytes') },
                    { key: 'firing', title: t('Firing alerts'), render: (c) => (c.firing ? <span class="pill bad">{c.firing}</span> : '0') },
                  ]}
                />
              </section>
              <section class="panel wide" aria-label={t('Firing alerts')}>
                <h3>{t('Firing alerts')}</h3>
                {d.alertError !== undefined ? (
                  <ErrorBox title={t('Alerts')} error={d.alertError} />
                ) : (
                  <Table
                    label={t('Firing alerts')}
                    rows={d.alerts.slice(0, 20)}
                    empty={t('No alerts are firing.')}
                    columns={[
                      { key: 'name', title: t('Alert'), render: (x) => x.labels.alertname },
                      { key: 'sev', title: t('Severity'), render: (x) => x.labels.severity ?? '' },
                      { key: 'labels', title: t('Labels'), render: (x) => Object.entries(x.labels).filter(([k]) => k !== 'alertname').map(([k, v]) => `${k}=${v}`).join(', ') },
                      { key: 'since', title: t('Since'), render: (x) => new Date(x.startsAt).toLocaleString() },
                    ]}
                  />
                )}
                <p><Link to={href('/alerting', { tab: 'firing' })}>{t('All alerts')} →</Link></p>
              </section>
            </>
          );
        }}
      </Show>
    </div>
  );
}
