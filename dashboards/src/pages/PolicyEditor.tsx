/**
 * Alarm policy editor: TKEStack-style template metrics (type, period, thresholds, continue
 * periods) or raw PromQL rules, plus receivers, receiver groups and channel+template notify ways.
 */
import { useState } from 'preact/hooks';
import { ApiError } from '../api/http';
import { labelValues } from '../api/prom';
import { POLICY_TYPES, TEMPLATES, type PolicyType } from '../catalog';
import { preview, toPolicy, type Policy, type PolicyMetric, type PolicyRule } from '../policy';
import { Field } from '../components/Form';
import { namesOf } from '../components/Crud';
import { useAsync } from '../components/State';
import { t } from '../i18n';

export function PolicyEditor({ initial, onSubmit, onCancel }: { initial: Record<string, unknown>; onSubmit: (v: Record<string, unknown>) => Promise<unknown>; onCancel: () => void }) {
  const [p, setP] = useState<Policy>(toPolicy(initial));
  const [err, setErr] = useState<ApiError | Error | null>(null);
  const [busy, setBusy] = useState(false);
  const clusters = useAsync(async () => {
    const v = await labelValues('cluster_id').catch(() => [] as string[]);
    return v.length ? v : ['local'];
  }, []);
  const channels = useAsync(() => namesOf('channels')().catch(() => [] as string[]), []);
  const templates = useAsync(() => namesOf('templates')().catch(() => [] as string[]), []);
  const set = (x: Partial<Policy>) => setP((o) => ({ ...o, ...x }));
  const setMetric = (i: number, x: Partial<PolicyMetric>) => set({ metrics: p.metrics.map((m, j) => (j === i ? { ...m, ...x } : m)) });
  const setRule = (i: number, x: Partial<PolicyRule>) => set({ rules: p.rules.map((m, j) => (j === i ? { ...m, ...x } : m)) });
  const fe = (k: string) => (err instanceof ApiError && err.field && (err.field === k || err.field.startsWith(k + '[') || err.field.startsWith(k + '.')) ? err.message : undefined);
  const tpl = TEMPLATES[p.type];

  return (
    <form
      class="form policy-form"
      aria-label={t('Alarm policy')}
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setErr(null);
        try {
          // `mode` is UI state; raw PromQL rules travel as `rules` (template metrics as `metrics`).
          const { mode: _mode, rules, ...rest } = p;
          void _mode;
          const body: Record<string, unknown> =
            p.mode === 'template' ? { ...rest, metrics: p.metrics.map((m) => ({ ...m, measurement: m.measurement || `k8s_${p.type}` })) } : { ...rest, metrics: [], rules };
          await onSubmit(body);
        } catch (x) {
          setErr(x as Error);
        } finally {
          setBusy(false);
        }
      }}
    >
      <div class="form-row">
        <Field spec={{ key: 'name', label: t('Policy name'), required: true, help: t('At most 60 characters') }} value={p.name} onChange={(v) => set({ name: String(v).slice(0, 60) })} error={fe('name')} />
        <label class="field">
          <span>{t('Policy type')}</span>
          <select value={p.type} onChange={(e) => { const ty = e.currentTarget.value as PolicyType; const d = TEMPLATES[ty][0]; set({ type: ty, metrics: [{ metric_name: d.name, display_name: d.display, evaluator: { type: d.op, value: d.value }, continue_period: 5, unit: d.unit }] }); }}>
            {POLICY_TYPES.map((ty) => <option key={ty} value={ty}>{t(ty[0].toUpperCase() + ty.slice(1))}</option>)}
          </select>
        </label>
        <label class="field">
          <span>{t('Cluster')}</span>
          <select value={p.cluster_id} onChange={(e) => set({ cluster_id: e.currentTarget.value })}>
            {(clusters.data ?? [p.cluster_id]).map((c) => <option key={c} value={c}>{c}</option>)}
          </select>
        </label>
        <label class="field">
          <span>{t('Statistics period')}</span>
          <select value={p.statistics_period} onChange={(e) => set({ statistics_period: Number(e.currentTarget.value) })}>
            {[1, 2, 3, 4, 5].map((m) => <option key={m} value={m * 60}>{t('{n} min', { n: m })}</option>)}
          </select>
        </label>
      </div>
      {p.type === 'pod' && (
        <div class="form-row">
          <Field spec={{ key: 'namespace', label: t('Namespace') }} value={p.namespace} onChange={(v) => set({ namespace: String(v) })} error={fe('namespace')} />
          <label class="field">
            <span>{t('Workload type')}</span>
            <select value={p.workload_type ?? ''} onChange={(e) => set({ workload_type: e.currentTarget.value || undefined })}>
              <option value="">{t('All')}</option>
              {['Deployment', 'DaemonSet', 'StatefulSet'].map((w) => <option key={w} value={w}>{w}</option>)}
            </select>
          </label>
          <label class="field">
            <span>{t('Objects')}</span>
            <select value={p.objects_type} onChange={(e) => set({ objects_type: e.currentTarget.value as 'all' | 'part' })}>
              <option value="all">{t('All workloads')}</option>
              <option value="part">{t('Selected workloads')}</option>
            </select>
          </label>
          {p.objects_type === 'part' && <Field spec={{ key: 'objects', label: t('Workload names'), type: 'list' }} value={p.objects} onChange={(v) => set({ objects: v as string[] })} error={fe('objects')} />}
        </div>
      )}
      <fieldset>
        <legend>{t('Conditions')}</legend>
        <div class="seg-group" role="group" aria-label={t('Condition kind')}>
          <button type="button" class={p.mode === 'template' ? 'seg active' : 'seg'} aria-pressed={p.mode === 'template'} onClick={() => set({ mode: 'template' })}>{t('Template metrics')}</button>
          <button type="button" class={p.mode === 'promql' ? 'seg active' : 'seg'} aria-pressed={p.mode === 'promql'} onClick={() => set({ mode: 'promql', rules: p.rules.length ? p.rules : [{ alert: p.name || 'alert', expr: '', for: '5m', severity: 'warning' }] })}>PromQL</button>
        </div>
        {p.mode === 'template' ? (
          <table class="metric-rows" aria-label={t('Template metrics')}>
            <thead>
              <tr><th>{t('Metric')}</th><th>{t('Condition')}</th><th>{t('Threshold')}</th><th>{t('Continue periods')}</th><th /></tr>
            </thead>
            <tbody>
              {p.metrics.map((m, i) => {
                const def = tpl.find((x) => x.name === m.metric_name);
                return (
                  <tr key={i}>
                    <td>
                      <select aria-label={t('Metric')} value={m.metric_name} onChange={(e) => { const d = tpl.find((x) => x.name === e.currentTarget.value)!; setMetric(i, { metric_name: d.name, display_name: d.display, unit: d.unit, evaluator: { type: d.op, value: d.value } }); }}>
                        {tpl.map((x) => <option key={x.name} value={x.name}>{t(x.display)} ({x.name})</option>)}
                      </select>
                    </td>
                    <td>
                      <select aria-label={t('Condition')} value={m.evaluator.type} onChange={(e) => setMetric(i, { evaluator: { ...m.evaluator, type: e.currentTarget.value as 'gt' } })} disabled={def?.bool}>
                        <option value="gt">&gt;</option>
                        <option value="lt">&lt;</option>
                        <option value="eq">=</option>
                      </select>
                    </td>
                    <td>
                      {def?.bool ? (
                        <select aria-label={t('Threshold')} value={m.evaluator.value} onChange={(e) => setMetric(i, { evaluator: { ...m.evaluator, value: e.currentTarget.value } })}>
                          <option value="false">false</option>
                          <option value="true">true</option>
                        </select>
                      ) : (
                        <span class="with-unit">
                          <input aria-label={t('Threshold')} required inputMode="decimal" pattern="-?[0-9]+(\.[0-9]+)?" value={m.evaluator.value} onInput={(e) => setMetric(i, { evaluator: { ...m.evaluator, value: e.currentTarget.value } })} />
                          <span class="muted">{m.unit}</span>
                        </span>
                      )}
                    </td>
                    <td>
                      <select aria-label={t('Continue periods')} value={m.continue_period} onChange={(e) => setMetric(i, { continue_period: Number(e.currentTarget.value) })}>
                        {[1, 2, 3, 4, 5].map((n) => <option key={n} value={n}>{n}</option>)}
                      </select>
                    </td>
                    <td><button type="button" class="link danger" onClick={() => set({ metrics: p.metrics.filter((_, j) => j !== i) })} aria-label={t('Remove')}>×</button></td>
                  </tr>
                );
              })}
            </tbody>
            <tfoot>
              <tr><td colSpan={5}><button type="button" class="link" onClick={() => { const d = tpl[0]; set({ metrics: [...p.metrics, { metric_name: d.name, display_name: d.display, unit: d.unit, evaluator: { type: d.op, value: d.value }, continue_period: 5 }] }); }}>+ {t('Add metric')}</button></td></tr>
            </tfoot>
          </table>
        ) : (
          <div class="rules">
            {p.rules.map((r, i) => (
              <div class="rule" key={i}>
                <Field spec={{ key: 'expr', label: t('PromQL expression'), type: 'textarea', required: true }} value={r.expr} onChange={(v) => setRule(i, { expr: String(v) })} error={fe('rules')} />
                <div class="form-row">
                  <Field spec={{ key: 'alert', label: t('Alert name') }} value={r.alert} onChange={(v) => setRule(i, { alert: String(v) })} />
                  <Field spec={{ key: 'for', label: t('For'), placeholder: '5m' }} value={r.for} onChange={(v) => setRule(i, { for: String(v) })} />
                  <Field spec={{ key: 'severity', label: t('Severity'), placeholder: 'warning' }} value={r.severity} onChange={(v) => setRule(i, { severity: String(v) })} />
                  <Field spec={{ key: 'summary', label: t('Summary') }} value={r.summary} onChange={(v) => setRule(i, { summary: String(v) })} />
                  <button type="button" class="link danger" onClick={() => set({ rules: p.rules.filter((_, j) => j !== i) })}>{t('Remove')}</button>
                </div>
              </div>
            ))}
            <button type="button" class="link" onClick={() => set({ rules: [...p.rules, { expr: '', for: '5m', severity: 'warning' }] })}>+ {t('Add rule')}</button>
          </div>
        )}
        {fe('metrics') && <small class="field-error" role="alert">{fe('metrics')}</small>}
      </fieldset>
      <fieldset>
        <legend>{t('Notification')}</legend>
        <div class="form-row">
          <Field spec={{ key: 'receiver_groups', label: t('Receiver groups'), type: 'multi', options: namesOf('receiver-groups') }} value={p.receiver_groups} onChange={(v) => set({ receiver_groups: v as string[] })} error={fe('receiver_groups')} />
          <Field spec={{ key: 'receivers', label: t('Receivers'), type: 'multi', options: namesOf('receivers') }} value={p.receivers} onChange={(v) => set({ receivers: v as string[] })} error={fe('receivers')} />
        </div>
        {p.notify_ways.map((w, i) => (
          <div class="form-row" key={i}>
            <label class="field"><span>{t('Channel')}</span>
              <select aria-label={t('Channel')} value={w.channel} onChange={(e) => set({ notify_ways: p.notify_ways.map((x, j) => (j === i ? { ...x, channel: e.currentTarget.value } : x)) })}>
                <option value="">{t('— select —')}</option>
                {(channels.data ?? []).map((c) => <option key={c} value={c}>{c}</option>)}
              </select>
            </label>
            <label class="field"><span>{t('Template')}</span>
              <select aria-label={t('Template')} value={w.template} onChange={(e) => set({ notify_ways: p.notify_ways.map((x, j) => (j === i ? { ...x, template: e.currentTarget.value } : x)) })}>
                <option value="">{t('— select —')}</option>
                {(templates.data ?? []).map((c) => <option key={c} value={c}>{c}</option>)}
              </select>
            </label>
            <button type="button" class="link danger" onClick={() => set({ notify_ways: p.notify_ways.filter((_, j) => j !== i) })}>{t('Remove')}</button>
          </div>
        ))}
        <button type="button" class="link" onClick={() => set({ notify_ways: [...p.notify_ways, { channel: '', template: '' }] })}>+ {t('Add notify way')}</button>
        {fe('notify_ways') && <small class="field-error" role="alert">{fe('notify_ways')}</small>}
      </fieldset>
      <details open>
        <summary>{t('Compiled rules preview')}</summary>
        <pre class="preview" aria-label={t('Compiled rules preview')}>{preview(p).join('\n') || '—'}</pre>
      </details>
      {err && <div class="state error" role="alert">{err.message}</div>}
      <div class="form-actions">
        <button type="button" onClick={onCancel}>{t('Cancel')}</button>
        <button type="submit" class="primary" disabled={busy}>{t('Save')}</button>
      </div>
    </form>
  );
}
