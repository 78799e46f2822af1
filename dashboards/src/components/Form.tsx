/** Declarative forms over plain JSON objects with dotted field paths and server-side field errors. */
import { useState } from 'preact/hooks';
import { ApiError } from '../api/http';
import { t } from '../i18n';
import { useAsync } from './State';

export interface FieldSpec {
  key: string; // dotted path into the object
  label: string;
  type?: 'text' | 'password' | 'number' | 'textarea' | 'select' | 'multi' | 'checkbox' | 'list' | 'json';
  options?: string[] | (() => Promise<string[]>);
  required?: boolean;
  placeholder?: string;
  help?: string;
  when?: (v: Record<string, unknown>) => boolean;
}

export function getPath(o: Record<string, unknown>, path: string): unknown {
  return path.split('.').reduce<unknown>((x, k) => (x && typeof x === 'object' ? (x as Record<string, unknown>)[k] : undefined), o);
}

export function setPath(o: Record<string, unknown>, path: string, v: unknown): Record<string, unknown> {
  const [head, ...rest] = path.split('.');
  const copy = { ...o };
  if (!rest.length) copy[head] = v;
  else copy[head] = setPath((o[head] as Record<string, unknown>) ?? {}, rest.join('.'), v);
  return copy;
}

function Options({ spec, value, onChange }: { spec: FieldSpec; value: unknown; onChange: (v: unknown) => void }) {
  const a = useAsync(async () => (typeof spec.options === 'function' ? spec.options().catch(() => []) : spec.options ?? []), []);
  const opts = a.data ?? [];
  if (spec.type === 'multi') {
    const sel = Array.isArray(value) ? (value as string[]) : [];
    return (
      <select multiple onChange={(e) => onChange([...e.currentTarget.selectedOptions].map((o) => o.value))} size={Math.min(6, Math.max(2, opts.length))}>
        {opts.map((o) => <option key={o} value={o} selected={sel.includes(o)}>{o}</option>)}
      </select>
    );
  }
  return (
    <select value={String(value ?? '')} onChange={(e) => onChange(e.currentTarget.value)} required={spec.required}>
      <option value="">{t('— select —')}</option>
      {opts.map((o) => <option key={o} value={o}>{o}</option>)}
      {value && !opts.includes(String(value)) ? <option value={String(value)}>{String(value)}</option> : null}
    </select>
  );
}

/** One labelled input for a field spec. */
export function Field({ spec, value, onChange, error }: { spec: FieldSpec; value: unknown; onChange: (v: unknown) => void; error?: string }) {
  const id = `f-${spec.key.replace(/\W/g, '-')}`;
  let input: preact.JSX.Element;
  switch (spec.type) {
    case 'textarea':
      input = <textarea id={id} rows={5} value={String(value ?? '')} placeholder={spec.placeholder} onInput={(e) => onChange(e.currentTarget.value)} required={spec.required} />;
      break;
    case 'json':
      input = <textarea id={id} class="mono" rows={5} value={typeof value === 'string' ? value : JSON.stringify(value ?? {}, null, 2)} onInput={(e) => onChange(e.currentTarget.value)} />;
      break;
    case 'checkbox':
      input = <input id={id} type="checkbox" checked={!!value} onChange={(e) => onChange(e.currentTarget.checked)} />;
      break;
    case 'number':
      input = <input id={id} type="number" value={value === undefined ? '' : String(value)} onInput={(e) => onChange(e.currentTarget.value === '' ? undefined : Number(e.currentTarget.value))} required={spec.required} />;
      break;
    case 'list':
      input = <input id={id} value={Array.isArray(value) ? value.join(', ') : String(value ?? '')} placeholder={spec.placeholder ?? 'a, b, c'} onInput={(e) => onChange(e.currentTarget.value.split(',').map((s) => s.trim()).filter(Boolean))} />;
      break;
    case 'select':
    case 'multi':
      return (
        <label class={error ? 'field invalid' : 'field'}>
          <span>{spec.label}{spec.required && <span class="req" aria-hidden="true"> *</span>}</span>
          <Options spec={spec} value={value} onChange={onChange} />
          {spec.help && <small class="muted">{spec.help}</small>}
          {error && <small class="field-error" role="alert">{error}</small>}
        </label>
      );
    default:
      input = <input id={id} type={spec.type ?? 'text'} value={String(value ?? '')} placeholder={spec.placeholder} onInput={(e) => onChange(e.currentTarget.value)} required={spec.required} autocomplete="off" />;
  }
  return (
    <div class={error ? 'field invalid' : 'field'}>
      <label for={id}>{spec.label}{spec.required && <span class="req" aria-hidden="true"> *</span>}</label>
      {input}
      {spec.help && <small class="muted">{spec.help}</small>}
      {error && <small class="field-error" role="alert">{error}</small>}
    </div>
  );
}

/** A form over `initial`, submitting through `onSubmit`; API errors show on the named field or on top. */
export function ObjectForm({ fields, initial, onSubmit, onCancel, submitLabel, onChange }: { fields: FieldSpec[]; initial: Record<string, unknown>; onSubmit: (v: Record<string, unknown>) => Promise<unknown>; onCancel: () => void; submitLabel?: string; onChange?: (v: Record<string, unknown>) => void }) {
  const [v, setState] = useState(initial);
  const setV = (f: (o: Record<string, unknown>) => Record<string, unknown>) =>
    setState((o) => {
      const n = f(o);
      onChange?.(n);
      return n;
    });
  const [err, setErr] = useState<ApiError | Error | null>(null);
  const [busy, setBusy] = useState(false);
  const fieldErr = err instanceof ApiError && err.field ? err.field : undefined;
  return (
    <form
      class="form"
      onSubmit={async (e) => {
        e.preventDefault();
        setBusy(true);
        setErr(null);
        try {
          let out = v;
          for (const f of fields) {
            if (f.type === 'json' && typeof getPath(v, f.key) === 'string') {
              try {
                out = setPath(out, f.key, JSON.parse(getPath(v, f.key) as string));
              } catch {
                throw new ApiError(t('{f} is not valid JSON', { f: f.label }), 400, f.key);
              }
            }
          }
          await onSubmit(out);
        } catch (x) {
          setErr(x as Error);
        } finally {
          setBusy(false);
        }
      }}
    >
      {fields.filter((f) => !f.when || f.when(v)).map((f) => (
        <Field key={f.key} spec={f} value={getPath(v, f.key)} onChange={(x) => setV((o) => setPath(o, f.key, x))} error={fieldErr && (fieldErr === f.key || fieldErr === f.key.split('.').pop()) ? err!.message : undefined} />
      ))}
      {err && (!fieldErr || !fields.some((f) => f.key === fieldErr || f.key.split('.').pop() === fieldErr)) && <div class="state error" role="alert">{err.message}</div>}
      <div class="form-actions">
        <button type="button" onClick={onCancel}>{t('Cancel')}</button>
        <button type="submit" class="primary" disabled={busy}>{submitLabel ?? t('Save')}</button>
      </div>
    </form>
  );
}
