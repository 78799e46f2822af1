/** A dialog with a title, used for create/edit forms. */
import type { ComponentChildren } from 'preact';
import { useLayoutEffect, useRef } from 'preact/hooks';
import { t } from '../i18n';

export function Modal({ title, onClose, children }: { title: string; onClose: () => void; children: ComponentChildren }) {
  const ref = useRef<HTMLDivElement>(null);
  // Focus the first field as the dialog opens (before paint, so it never steals focus from
  // typing that has begun), and give focus back when it closes.
  useLayoutEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    ref.current?.querySelector<HTMLElement>('input, select, textarea')?.focus();
    return () => before?.focus?.();
  }, []);
  // Listen for Escape from the moment the dialog is in the DOM (a layout
  // effect, not a passive one that may run frames later), always calling the
  // latest onClose.
  const close = useRef(onClose);
  close.current = onClose;
  useLayoutEffect(() => {
    const k = (e: KeyboardEvent) => e.key === 'Escape' && close.current();
    addEventListener('keydown', k);
    return () => removeEventListener('keydown', k);
  }, []);
  return (
    <div class="modal-backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div class="modal" role="dialog" aria-modal="true" aria-label={title} ref={ref}>
        <header>
          <h2>{title}</h2>
          <button class="icon" aria-label={t('Close')} onClick={onClose}>×</button>
        </header>
        {children}
      </div>
    </div>
  );
}
