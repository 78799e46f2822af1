/** A list of platform objects with create, edit, copy and delete through a generic form. */
import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { create, idOf, labelOf, list, remove, update, type Item } from '../api/platform';
import { t } from '../i18n';
import { ObjectForm, type FieldSpec } from './Form';
import { Modal } from './Modal';
import { Show, useAsync } from './State';
import { Table, type Column } from './Table';

export interface CrudProps {
  path: string;
  title: string;
  /** Singular noun for buttons ("receiver"). */
  noun: string;
  columns: Column<Item>[];
  fields: FieldSpec[];
  defaults?: Record<string, unknown>;
  editable?: boolean;
  copyable?: boolean;
  /** A custom editor replacing the generic form. */
  editor?: (p: { initial: Item; onSubmit: (v: Record<string, unknown>) => Promise<unknown>; onCancel: () => void }) => ComponentChildren;
  extraActions?: (i: Item, reload: () => void) => ComponentChildren;
  empty?: string;
  /** Turns a stored item into the form's initial value (UI-only fields). */
  prepare?: (i: Item) => Item;
  /** Turns the form's value into the request body (drops UI-only fields). */
  transform?: (v: Record<string, unknown>) => Record<string, unknown>;
}

export function Crud({ path, title, noun, columns, fields, defaults = {}, editable = true, copyable = false, editor, extraActions, empty, prepare = (i) => i, transform = (v) => v }: CrudProps) {
  const a = useAsync(() => list(path), [path]);
  const [editing, setEditing] = useState<{ item: Item; mode: 'create' | 'edit' | 'copy' } | null>(null);
  const close = () => setEditing(null);
  const submit = async (raw: Record<string, unknown>) => {
    const v = transform(raw);
    if (editing?.mode === 'edit') await update(path, idOf(editing.item), v);
    else {
      const { id: _id, ...rest } = v;
      void _id;
      await create(path, rest);
    }
    close();
    a.reload();
  };
  const actions: Column<Item> = {
    key: '_actions',
    title: t('Actions'),
    render: (i) => (
      <span class="row-actions">
        {editable && <button class="link" onClick={() => setEditing({ item: i, mode: 'edit' })} aria-label={`${t('Edit')} ${labelOf(i)}`}>{t('Edit')}</button>}
        {copyable && <button class="link" onClick={() => setEditing({ item: { ...i, id: undefined, name: `${i.name ?? ''}-copy` }, mode: 'copy' })} aria-label={`${t('Copy')} ${labelOf(i)}`}>{t('Copy')}</button>}
        {extraActions?.(i, a.reload)}
        {editable && (
          <button
            class="link danger"
            aria-label={`${t('Delete')} ${labelOf(i)}`}
            onClick={async () => {
              if (!confirm(t('Delete {name}?', { name: labelOf(i) }))) return;
              try {
                await remove(path, idOf(i));
              } catch (e) {
                alert((e as Error).message);
              }
              a.reload();
            }}
          >
            {t('Delete')}
          </button>
        )}
      </span>
    ),
  };
  const modalTitle = editing ? `${editing.mode === 'edit' ? t('Edit') : editing.mode === 'copy' ? t('Copy') : t('Create')} ${t(noun)}` : '';
  return (
    <section class="panel wide" aria-label={title}>
      <div class="panel-head">
        <h3>{title}</h3>
        {editable && <button class="primary" onClick={() => setEditing({ item: { ...defaults }, mode: 'create' })}>{t('Create')} {t(noun)}</button>}
      </div>
      <Show a={a}>
        {(items) => <Table label={title} rows={items} rowKey={(i, n) => idOf(i) || n} columns={editable || extraActions ? [...columns, actions] : columns} empty={empty} />}
      </Show>
      {editing && (
        <Modal title={modalTitle} onClose={close}>
          {editor ? editor({ initial: prepare(editing.item), onSubmit: submit, onCancel: close }) : <ObjectForm fields={fields} initial={prepare(editing.item)} onSubmit={submit} onCancel={close} />}
        </Modal>
      )}
    </section>
  );
}

/** Options loader: names of the items of a collection. */
export const namesOf = (path: string) => async () => (await list(path)).map((i) => String(i.name ?? i.id));

/** A request-body transform keeping only `keys` (the APIs reject unknown fields) and dropping empty strings. */
export const pick =
  (...keys: string[]) =>
  (v: Record<string, unknown>): Record<string, unknown> =>
    Object.fromEntries(keys.filter((k) => v[k] !== undefined && v[k] !== '').map((k) => [k, v[k]]));
