/** Alarm policies as the alerting REST API stores them, and the rules they compile to (TKEStack semantics). */
import { compileExpr, type PolicyType } from './catalog';

export interface PolicyMetric { metric_name: string; display_name?: string; measurement?: string; evaluator: { type: 'gt' | 'lt' | 'eq'; value: string }; continue_period: number; unit?: string }
export interface PolicyRule { alert?: string; expr: string; for?: string; severity?: string; summary?: string }
export interface Policy {
  id?: string | number;
  name: string;
  type: PolicyType;
  cluster_id: string;
  statistics_period: number;
  mode: 'template' | 'promql';
  objects_type?: 'all' | 'part';
  objects?: string[];
  namespace?: string;
  workload_type?: string;
  metrics: PolicyMetric[];
  rules: PolicyRule[];
  receiver_groups: string[];
  receivers: string[];
  notify_ways: { channel: string; template: string }[];
  version?: number;
}

export const emptyPolicy = (): Policy => ({
  name: '',
  type: 'node',
  cluster_id: 'local',
  statistics_period: 60,
  mode: 'template',
  objects_type: 'all',
  metrics: [{ metric_name: 'k8s_node_cpu_usage', display_name: 'CPU utilization', evaluator: { type: 'gt', value: '90' }, continue_period: 5, unit: '%' }],
  rules: [],
  receiver_groups: [],
  receivers: [],
  notify_ways: [],
});

/** Normalises an API item into the editor's shape (missing arrays become empty). */
export function toPolicy(i: Record<string, unknown>): Policy {
  const p = { ...emptyPolicy(), metrics: [], ...(i as Partial<Policy>) } as Policy;
  p.rules = p.rules ?? [];
  p.metrics = p.metrics ?? [];
  p.mode = p.mode ?? (p.metrics.length ? 'template' : 'promql');
  p.receiver_groups = p.receiver_groups ?? [];
  p.receivers = p.receivers ?? [];
  p.notify_ways = p.notify_ways ?? [];
  return p;
}

/** The Prometheus rules the policy compiles to (TKEStack semantics), for the preview. */
export function preview(p: Policy): string[] {
  if (p.mode === 'promql') return p.rules.map((r) => `${r.expr}${r.for ? `  for ${r.for}` : ''}`);
  const filter: string[] = [];
  if (p.cluster_id) filter.push(`cluster_id="${p.cluster_id}"`);
  if (p.type === 'pod') {
    if (p.namespace) filter.push(`namespace="${p.namespace}"`);
    if (p.workload_type) filter.push(`workload_kind="${p.workload_type}"`);
    if (p.objects_type === 'part' && p.objects?.length) filter.push(`workload_name=~"${p.objects.join('|')}"`);
  }
  return p.metrics.map((m) => `${compileExpr(m.metric_name, filter.join(','), m.evaluator.type, m.evaluator.value)}  for ${p.statistics_period * m.continue_period}s`);
}

