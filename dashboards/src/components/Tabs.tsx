/** Accessible tab strip whose selection lives in the URL (`?tab=`). */
import { setParams } from '../router';

export function Tabs({ tabs, active, param = 'tab', label }: { tabs: [string, string][]; active: string; param?: string; label: string }) {
  return (
    <div class="tabs" role="tablist" aria-label={label}>
      {tabs.map(([id, title]) => (
        <button key={id} role="tab" aria-selected={id === active} class={id === active ? 'tab active' : 'tab'} onClick={() => setParams({ [param]: id }, false)}>
          {title}
        </button>
      ))}
    </div>
  );
}
