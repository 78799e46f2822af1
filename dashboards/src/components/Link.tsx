/** An anchor that navigates with the History API (keeps ctrl-click behaviour). */
import type { ComponentChildren } from 'preact';
import { navigate } from '../router';

export function Link({ to, children, class: cls, ...rest }: { to: string; children: ComponentChildren; class?: string; 'aria-current'?: 'page' | undefined; title?: string }) {
  return (
    <a
      href={to}
      class={cls}
      {...rest}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
        e.preventDefault();
        navigate(to);
      }}
    >
      {children}
    </a>
  );
}
