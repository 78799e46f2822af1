/** A small bar histogram (log volume), drawn with divs: value per time bucket. */
import { fmtTime } from '../units';

export function Histogram({ buckets, label }: { buckets: { t: number; v: number }[]; label: string }) {
  const max = Math.max(1, ...buckets.map((b) => b.v));
  const total = buckets.reduce((n, b) => n + b.v, 0);
  return (
    <figure class="histogram" aria-label={label} data-total={total}>
      <div class="hist-bars">
        {buckets.map((b) => (
          <div key={b.t} class="hist-bar" style={{ height: `${(b.v / max) * 100}%` }} title={`${fmtTime(b.t)}: ${b.v}`} />
        ))}
      </div>
      <figcaption class="muted hist-caption">
        <span>{buckets.length ? fmtTime(buckets[0].t) : ''}</span>
        <span>
          {label}: {total} · max {max}
        </span>
        <span>{buckets.length ? fmtTime(buckets[buckets.length - 1].t) : ''}</span>
      </figcaption>
    </figure>
  );
}
