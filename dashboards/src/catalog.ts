/**
 * The TKEStack metric catalogue (shared/reference/tkestack.md, A.5) as the monitoring
 * pages chart it, and the alarm-policy metric templates (A.1).
 */
import type { Unit } from './units';

export type Level = 'cluster' | 'node' | 'workload' | 'pod' | 'container';
export const LEVELS: Level[] = ['cluster', 'node', 'workload', 'pod', 'container'];

/** The object a monitoring page shows; label values that select it. */
export interface Target { cluster?: string; node?: string; namespace?: string; kind?: string; workload?: string; pod?: string; container?: string }

/** The label matchers selecting a target at a level. */
export function matchers(level: Level, t: Target): Record<string, string | undefined> {
  switch (level) {
    case 'cluster':
      return { cluster_id: t.cluster };
    case 'node':
      return { cluster_id: t.cluster, node: t.node };
    case 'workload':
      return { cluster_id: t.cluster, namespace: t.namespace, workload_kind: t.kind, workload_name: t.workload };
    case 'pod':
      return { cluster_id: t.cluster, namespace: t.namespace, pod_name: t.pod };
    case 'container':
      return { cluster_id: t.cluster, namespace: t.namespace, pod_name: t.pod, container_name: t.container };
  }
}

/** One chart: several metric names drawn together with one unit. */
export interface ChartDef { title: string; unit: Unit; metrics: string[] }

const net = (p: string): ChartDef => ({ title: 'Network bandwidth', unit: 'Bps', metrics: [`${p}_network_receive_bytes_bw`, `${p}_network_transmit_bytes_bw`] });
const disk = (p: string): ChartDef => ({ title: 'Disk I/O', unit: 'Bps', metrics: [`${p}_fs_read_bytes`, `${p}_fs_write_bytes`] });

export const CHARTS: Record<Level, ChartDef[]> = {
  cluster: [
    { title: 'CPU usage', unit: 'percent', metrics: ['k8s_cluster_rate_cpu_core_used_cluster', 'k8s_cluster_rate_cpu_core_request_cluster'] },
    { title: 'Memory usage', unit: 'percent', metrics: ['k8s_cluster_rate_mem_usage_bytes_cluster', 'k8s_cluster_rate_mem_request_bytes_cluster'] },
    { title: 'CPU cores', unit: 'cores', metrics: ['k8s_cluster_cpu_core_used', 'k8s_cluster_cpu_core_total'] },
    { title: 'Memory', unit: 'bytes', metrics: ['k8s_cluster_mem_usage_bytes', 'k8s_cluster_memory_total'] },
    { title: 'Node CPU usage', unit: 'percent', metrics: ['k8s_node_cpu_usage'] },
    { title: 'Node memory usage', unit: 'percent', metrics: ['k8s_node_mem_usage'] },
    net('k8s_cluster'),
    { title: 'Pods and nodes', unit: 'count', metrics: ['k8s_cluster_pod_num', 'k8s_cluster_node_num', 'k8s_cluster_node_not_ready_num'] },
  ],
  node: [
    { title: 'CPU usage', unit: 'percent', metrics: ['k8s_node_cpu_usage'] },
    { title: 'Memory usage', unit: 'percent', metrics: ['k8s_node_mem_usage', 'k8s_node_mem_usage_no_cache'] },
    { title: 'Filesystem usage', unit: 'percent', metrics: ['k8s_node_filesystem_usage', 'k8s_node_disk_space_rate'] },
    net('k8s_node'),
    disk('k8s_node'),
    { title: 'Pods', unit: 'count', metrics: ['k8s_node_pod_num', 'k8s_node_pod_restart_total'] },
  ],
  workload: [
    { title: 'CPU used', unit: 'cores', metrics: ['k8s_workload_cpu_core_used'] },
    { title: 'Memory used', unit: 'bytes', metrics: ['k8s_workload_mem_usage_bytes', 'k8s_workload_mem_no_cache_bytes'] },
    net('k8s_workload'),
    disk('k8s_workload'),
    { title: 'Replicas', unit: 'count', metrics: ['k8s_workload_replicas_desire', 'k8s_workload_replicas_current', 'k8s_workload_pod_restart_total'] },
  ],
  pod: [
    { title: 'CPU used', unit: 'cores', metrics: ['k8s_pod_cpu_core_used'] },
    { title: 'CPU usage of limit', unit: 'percent', metrics: ['k8s_pod_rate_cpu_core_used_limit', 'k8s_pod_rate_cpu_core_used_request'] },
    { title: 'Memory used', unit: 'bytes', metrics: ['k8s_pod_mem_usage_bytes', 'k8s_pod_mem_no_cache_bytes'] },
    { title: 'Memory usage of limit', unit: 'percent', metrics: ['k8s_pod_rate_mem_usage_limit', 'k8s_pod_rate_mem_no_cache_limit'] },
    net('k8s_pod'),
    disk('k8s_pod'),
    { title: 'Restarts and readiness', unit: 'count', metrics: ['k8s_pod_restart_total', 'k8s_pod_status_ready'] },
  ],
  container: [
    { title: 'CPU used', unit: 'cores', metrics: ['k8s_container_cpu_core_used'] },
    { title: 'CPU usage of limit', unit: 'percent', metrics: ['k8s_container_rate_cpu_core_used_limit', 'k8s_container_rate_cpu_core_used_request'] },
    { title: 'Memory used', unit: 'bytes', metrics: ['k8s_container_mem_usage_bytes', 'k8s_container_mem_no_cache_bytes'] },
    { title: 'Memory usage of limit', unit: 'percent', metrics: ['k8s_container_rate_mem_usage_limit', 'k8s_container_rate_mem_no_cache_limit'] },
    net('k8s_container'),
    disk('k8s_container'),
  ],
};

/** An alarm metric template: TKEStack console defaults (Config.ts). */
export interface MetricTemplate { name: string; display: string; unit: string; op: 'gt' | 'lt' | 'eq'; value: string; bool?: boolean }

export const POLICY_TYPES = ['cluster', 'node', 'pod'] as const;
export type PolicyType = (typeof POLICY_TYPES)[number];

export const TEMPLATES: Record<PolicyType, MetricTemplate[]> = {
  cluster: [
    { name: 'k8s_cluster_rate_cpu_core_used_cluster', display: 'CPU utilization', unit: '%', op: 'gt', value: '90' },
    { name: 'k8s_cluster_rate_mem_usage_bytes_cluster', display: 'Memory utilization', unit: '%', op: 'gt', value: '90' },
    { name: 'k8s_cluster_rate_cpu_core_request_cluster', display: 'CPU allocation rate', unit: '%', op: 'gt', value: '95' },
    { name: 'k8s_cluster_rate_mem_request_bytes_cluster', display: 'Memory allocation rate', unit: '%', op: 'gt', value: '95' },
    { name: 'k8s_component_apiserver_ready', display: 'apiserver ready', unit: '', op: 'eq', value: 'false', bool: true },
    { name: 'k8s_component_etcd_ready', display: 'etcd ready', unit: '', op: 'eq', value: 'false', bool: true },
    { name: 'k8s_component_scheduler_ready', display: 'scheduler ready', unit: '', op: 'eq', value: 'false', bool: true },
    { name: 'k8s_component_controller_manager_ready', display: 'controller-manager ready', unit: '', op: 'eq', value: 'false', bool: true },
  ],
  node: [
    { name: 'k8s_node_cpu_usage', display: 'CPU utilization', unit: '%', op: 'gt', value: '90' },
    { name: 'k8s_node_mem_usage_no_cache', display: 'Memory utilization', unit: '%', op: 'gt', value: '90' },
    { name: 'k8s_node_pod_restart_total', display: 'Pod restarts', unit: 'times', op: 'gt', value: '1' },
    { name: 'k8s_node_status_ready', display: 'Node ready', unit: '', op: 'eq', value: 'false', bool: true },
    { name: 'k8s_node_filesystem_usage', display: 'Filesystem utilization', unit: '%', op: 'gt', value: '90' },
  ],
  pod: [
    { name: 'k8s_pod_rate_cpu_core_used_node', display: 'CPU utilization (of node)', unit: '%', op: 'gt', value: '80' },
    { name: 'k8s_pod_rate_mem_usage_node', display: 'Memory utilization (of node)', unit: '%', op: 'gt', value: '80' },
    { name: 'k8s_pod_rate_mem_no_cache_node', display: 'Memory utilization without cache (of node)', unit: '%', op: 'gt', value: '80' },
    { name: 'k8s_pod_rate_cpu_core_used_limit', display: 'CPU utilization (of limit)', unit: '%', op: 'gt', value: '90' },
    { name: 'k8s_pod_rate_mem_usage_limit', display: 'Memory utilization (of limit)', unit: '%', op: 'gt', value: '90' },
    { name: 'k8s_pod_rate_mem_no_cache_limit', display: 'Memory utilization without cache (of limit)', unit: '%', op: 'gt', value: '90' },
    { name: 'k8s_pod_restart_total', display: 'Restarts', unit: 'times', op: 'gt', value: '1' },
    { name: 'k8s_pod_status_ready', display: 'Pod ready', unit: '', op: 'eq', value: 'false', bool: true },
    { name: 'k8s_pod_cpu_core_used', display: 'CPU used', unit: 'cores', op: 'gt', value: '' },
    { name: 'k8s_pod_mem_usage_bytes', display: 'Memory used', unit: 'MB', op: 'gt', value: '' },
    { name: 'k8s_pod_mem_no_cache_bytes', display: 'Memory used without cache', unit: 'MB', op: 'gt', value: '' },
  ],
};

/** Compiles one template metric to PromQL the way TKEStack does (for the form's preview). */
export function compileExpr(metric: string, filter: string, op: 'gt' | 'lt' | 'eq', value: string): string {
  const o = op === 'gt' ? '>' : op === 'lt' ? '<' : '==';
  const v = value === 'true' ? '1' : value === 'false' ? '0' : value;
  return `${metric}${filter ? `{${filter}}` : ''} ${o} ${v}`;
}
