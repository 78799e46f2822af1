/** A usage bar (used vs capacity) with an accessible text label. */
export function Bar({ used, total, label }: { used?: number; total?: number; label: string }) {
  const pct = used !== undefined && total ? Math.min(100, (used / total) * 100) : undefined;
  const cls = pct === undefined ? '' : pct >= 90 ? 'bad' : pct >= 75 ? 'warn' : 'ok';
  return (
    <div class="bar" role="meter" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={pct ?? 0} title={label}>
      <div class={`bar-fill ${cls}`} style={{ width: `${pct ?? 0}%` }} />
      <span class="bar-text">{label}</span>
    </div>
  );
}
