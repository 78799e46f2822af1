/** Notification template preview with TKEStack's variables (used when the server preview is unavailable). */

/** Sample TKEStack template variables for the template preview. */
export const SAMPLE_VARS: Record<string, string> = {
  alertName: 'k8s_node_cpu_usage',
  status: 'firing',
  startsAt: new Date().toISOString(),
  alarmPolicyType: 'node',
  alarmPolicyName: 'node-cpu-high',
  clusterID: 'local',
  clusterDisplayName: 'local',
  value: '93.20',
  unit: '%',
  evaluateType: 'gt',
  evaluateValue: '90',
  metricDisplayName: 'CPU utilization',
  namespace: 'default',
  workloadKind: 'Deployment',
  workloadName: 'web',
  podName: 'web-7d4b9c-x2x9q',
  nodeName: 'node-1',
  nodeRole: 'Node',
  summary: 'node-1 CPU utilization 93.20% > 90%',
};

/** Renders `{{.var}}` (Go) and `{{ var }}` (Jinja) placeholders with sample values. */
export function renderTemplate(s: string, vars: Record<string, string> = SAMPLE_VARS): string {
  return s.replace(/\{\{\s*\.?([A-Za-z_][\w]*)\s*\}\}/g, (m, k: string) => vars[k] ?? m);
}

