/** Time range picker (presets + custom absolute range) and auto-refresh selector. */
import { useEffect, useState } from 'preact/hooks';
import { t } from '../i18n';
import { PRESETS, resolve, type TimeRange } from '../timerange';

const toLocal = (sec: number) => {
  const d = new Date(sec * 1000 - new Date().getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
};
const fromLocal = (s: string) => Math.floor(new Date(s).getTime() / 1000);

export function TimePicker({ value, onChange }: { value: TimeRange; onChange: (r: TimeRange) => void }) {
  const [custom, setCustom] = useState(value.from !== undefined);
  const r = resolve(value);
  const [from, setFrom] = useState(toLocal(r.start));
  const [to, setTo] = useState(toLocal(r.end));
  return (
    <div class="timepicker" role="group" aria-label={t('Time range')}>
      {Object.keys(PRESETS).map((p) => (
        <button
          key={p}
          class={!custom && value.preset === p ? 'seg active' : 'seg'}
          aria-pressed={!custom && value.preset === p}
          onClick={() => {
            setCustom(false);
            onChange({ preset: p });
          }}
        >
          {t('Last {p}', { p })}
        </button>
      ))}
      <button class={custom ? 'seg active' : 'seg'} aria-pressed={custom} onClick={() => setCustom(!custom)}>
        {t('Custom')}
      </button>
      {custom && (
        <form
          class="custom-range"
          onSubmit={(e) => {
            e.preventDefault();
            const f = fromLocal(from);
            const tt = fromLocal(to);
            if (f < tt) onChange({ from: f, to: tt });
          }}
        >
          <label>
            {t('From')} <input type="datetime-local" value={from} onInput={(e) => setFrom(e.currentTarget.value)} />
          </label>
          <label>
            {t('To')} <input type="datetime-local" value={to} onInput={(e) => setTo(e.currentTarget.value)} />
          </label>
          <button type="submit">{t('Apply')}</button>
        </form>
      )}
    </div>
  );
}

const REFRESH = [0, 10, 30, 60, 300];

/** Calls `onTick` every N seconds as chosen by the user (off by default). */
export function AutoRefresh({ onTick }: { onTick: () => void }) {
  const [every, setEvery] = useState(0);
  useEffect(() => {
    if (!every) return;
    const h = setInterval(onTick, every * 1000);
    return () => clearInterval(h);
  }, [every, onTick]);
  return (
    <label class="autorefresh">
      {t('Auto refresh')}{' '}
      <select value={every} onChange={(e) => setEvery(Number(e.currentTarget.value))}>
        {REFRESH.map((s) => (
          <option key={s} value={s}>{s ? `${s}s` : t('Off')}</option>
        ))}
      </select>
    </label>
  );
}
