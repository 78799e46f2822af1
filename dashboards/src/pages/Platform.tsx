/** Platform: clusters (import), businesses (tree, quotas, namespaces, members, migration), users, roles, policies. */
import { useMemo, useState } from 'preact/hooks';
import { esc } from '../api/prom';
import { MetricChart } from '../components/MetricChart';
import { resolve } from '../timerange';
import { action, create, idOf, labelOf, list, remove, type Item } from '../api/platform';
import { canAdminister, user } from '../auth';
import { Bar } from '../components/Bar';
import { Crud, namesOf, pick } from '../components/Crud';
import { ObjectForm } from '../components/Form';
import { Link } from '../components/Link';
import { Modal } from '../components/Modal';
import { Empty, Show, useAsync } from '../components/State';
import { cell, Table } from '../components/Table';
import { Tabs } from '../components/Tabs';
import { t } from '../i18n';
import { href, setParams, useRoute } from '../router';
import { useStore } from '../store';
import { monitorHref } from './Monitoring';
import { QUOTA_KEYS, quantity, quotaRows } from '../quota';

function ClustersTab({ admin }: { admin: boolean }) {
  return (
    <Crud
      path="clusters"
      title={t('Clusters')}
      noun="cluster"
      editable={admin}
      transform={pick('name', 'display_name', 'api_server', 'token', 'ca_cert')}
      fields={[
        { key: 'name', label: t('Name'), required: true, help: t('Lowercase letters, digits and -') },
        { key: 'display_name', label: t('Display name') },
        { key: 'api_server', label: t('API server address'), required: true, placeholder: 'https://10.0.0.1:6443' },
        { key: 'token', label: t('Bearer token'), type: 'password', required: true },
        { key: 'ca_cert', label: t('CA certificate (PEM)'), type: 'textarea', placeholder: '-----BEGIN CERTIFICATE-----' },
      ]}
      empty={t('No clusters imported.')}
      columns={[
        { key: 'name', title: t('Name'), render: (c) => <Link to={monitorHref('cluster', { cluster: String(c.name ?? c.id) })}>{labelOf(c)}</Link> },
        { key: 'api_server', title: t('API server address') },
        { key: 'phase', title: t('Health'), render: (c) => { const p = String(c.phase ?? c.health ?? (c.status as Record<string, unknown> | undefined)?.phase ?? ''); return <span class={`pill ${/run|ok|health|ready/i.test(p) ? 'ok' : 'warn'}`}>{p || '–'}</span>; } },
        { key: 'version', title: t('Version') },
        { key: 'last_seen', title: t('Last seen'), render: (c) => cell(c.last_seen ?? c.last_probe_time) },
        {
          key: 'open',
          title: t('Open'),
          render: (c) => (
            <span class="row-actions">
              <Link to={href('/logs', { cluster_id: String(c.name ?? c.id) })}>{t('Logs')}</Link>
              <Link to={href('/events', { cluster: String(c.name ?? c.id) })}>{t('Events')}</Link>
            </span>
          ),
        },
      ]}
    />
  );
}

/** Children of `parent` in the business tree, rendered recursively. */
function Tree({ items, parent, selected, depth = 0 }: { items: Item[]; parent: string | null; selected?: string; depth?: number }) {
  const kids = items.filter((b) => (b.parent_id === undefined || b.parent_id === null || b.parent_id === '' ? null : String(b.parent_id)) === parent);
  if (!kids.length) return null;
  return (
    <ul role={depth ? 'group' : 'tree'} aria-label={depth ? undefined : t('Businesses')} class="tree">
      {kids.map((b) => (
        <li key={idOf(b)} role="treeitem" aria-selected={selected === idOf(b)}>
          <button class={selected === idOf(b) ? 'tree-item active' : 'tree-item'} onClick={() => setParams({ business: idOf(b) }, false)}>{labelOf(b)}</button>
          <Tree items={items} parent={idOf(b)} selected={selected} depth={depth + 1} />
        </li>
      ))}
    </ul>
  );
}

function BusinessDetail({ b, all, admin, reload }: { b: Item; all: Item[]; admin: boolean; reload: () => void }) {
  const id = idOf(b);
  const ns = useAsync(() => list(`businesses/${encodeURIComponent(id)}/namespaces`), [id]);
  const members = useAsync(() => list(`businesses/${encodeURIComponent(id)}/members`), [id]);
  const [modal, setModal] = useState<null | 'ns' | 'member' | { migrate: Item }>(null);
  const quotas = quotaRows(b);
  const range = useMemo(() => resolve({ preset: '6h' }), [id]);
  const parent = all.find((x) => idOf(x) === String(b.parent_id ?? ''));
  return (
    <div class="business-detail">
      <div class="panel-head">
        <h2>{labelOf(b)}</h2>
        {admin && <button class="link danger" onClick={async () => { if (confirm(t('Delete {name}?', { name: labelOf(b) }))) { await remove('businesses', id).catch((e) => alert(e.message)); setParams({ business: undefined }); reload(); } }}>{t('Delete')}</button>}
      </div>
      <p class="muted">{parent ? `${t('Parent')}: ${labelOf(parent)}` : t('Top-level business')}</p>
      <section class="panel wide" aria-label={t('Quotas')}>
        <h3>{t('Quotas: used vs hard')}</h3>
        <Table
          label={t('Quotas')}
          rows={quotas}
          empty={t('No quota set.')}
          columns={[
            { key: 'cluster', title: t('Cluster') },
            { key: 'key', title: t('Resource') },
            { key: 'bar', title: t('Used / hard'), render: (q) => <Bar used={quantity(q.used) ?? 0} total={quantity(q.hard)} label={`${cell(q.used ?? 0)} / ${cell(q.hard ?? '∞')}`} /> },
          ]}
        />
      </section>
      <div class="grid">
        <MetricChart title={t('Business CPU used')} unit="cores" expr={`sum by (cluster_id) (project_cluster_cpu_core_used{project_name="${esc(String(b.name ?? id))}"})`} start={range.start} end={range.end} height={160} />
        <MetricChart title={t('Business memory used')} unit="bytes" expr={`sum by (cluster_id) (project_cluster_mem_usage_bytes{project_name="${esc(String(b.name ?? id))}"})`} start={range.start} end={range.end} height={160} />
      </div>
      <section class="panel wide" aria-label={t('Namespaces')}>
        <div class="panel-head"><h3>{t('Namespaces')}</h3>{admin && <button onClick={() => setModal('ns')}>{t('Create namespace')}</button>}</div>
        <Show a={ns}>
          {(rows) => (
            <Table
              label={t('Namespaces')}
              rows={rows}
              empty={t('No namespaces.')}
              columns={[
                { key: 'namespace', title: t('Namespace'), render: (n) => cell(n.name ?? n.namespace) },
                { key: 'cluster_id', title: t('Cluster'), render: (n) => cell(n.cluster_id ?? n.cluster) },
                { key: 'phase', title: t('Status'), render: (n) => <span title={cell(n.message)}>{cell(n.phase ?? n.status)}</span> },
                { key: 'hard', title: t('Quota'), render: (n) => Object.entries((n.hard ?? {}) as Record<string, unknown>).map(([k, v]) => `${k}=${v}`).join(', ') },
                {
                  key: 'act',
                  title: t('Actions'),
                  render: (n) => {
                    const cluster = String(n.cluster_id ?? n.cluster ?? '');
                    const ns = String(n.name ?? n.namespace ?? '');
                    return (
                      <span class="row-actions">
                        <Link to={href('/monitoring', { level: 'pod', cluster, namespace: ns })}>{t('Monitoring')}</Link>
                        <Link to={href('/logs', { cluster_id: cluster, namespace: ns })}>{t('Logs')}</Link>
                        <Link to={href('/events', { cluster, namespace: ns })}>{t('Events')}</Link>
                        {admin && <button class="link" onClick={() => setModal({ migrate: n })}>{t('Migrate')}</button>}
                      </span>
                    );
                  },
                },
              ]}
            />
          )}
        </Show>
      </section>
      <section class="panel wide" aria-label={t('Members')}>
        <div class="panel-head"><h3>{t('Members')}</h3>{admin && <button onClick={() => setModal('member')}>{t('Add member')}</button>}</div>
        <Show a={members}>
          {(rows) => <Table label={t('Members')} rows={rows} empty={t('No members.')} columns={[{ key: 'username', title: t('User'), render: (m) => cell(m.username ?? m.name) }, { key: 'role', title: t('Role'), render: (m) => cell(m.role ?? m.roles) }]} />}
        </Show>
      </section>
      {modal === 'ns' && (
        <Modal title={t('Create namespace')} onClose={() => setModal(null)}>
          <ObjectForm
            fields={[
              { key: 'cluster_id', label: t('Cluster'), type: 'select', options: namesOf('clusters'), required: true },
              { key: 'name', label: t('Namespace'), required: true },
              ...QUOTA_KEYS.slice(0, 5).map((k) => ({ key: `hard.${k}`, label: k })),
            ]}
            initial={{}}
            onCancel={() => setModal(null)}
            onSubmit={async (v) => {
              await create(`businesses/${encodeURIComponent(id)}/namespaces`, v);
              setModal(null);
              ns.reload();
            }}
          />
        </Modal>
      )}
      {modal === 'member' && (
        <Modal title={t('Add member')} onClose={() => setModal(null)}>
          <ObjectForm
            fields={[
              { key: 'username', label: t('User'), type: 'select', options: namesOf('users'), required: true },
              { key: 'role', label: t('Role'), type: 'select', options: ['owner', 'member', 'viewer'], required: true },
            ]}
            initial={{ role: 'member' }}
            onCancel={() => setModal(null)}
            onSubmit={async (v) => {
              await create(`businesses/${encodeURIComponent(id)}/members`, v);
              setModal(null);
              members.reload();
            }}
          />
        </Modal>
      )}
      {modal && typeof modal === 'object' && (
        <Modal title={t('Migrate namespace')} onClose={() => setModal(null)}>
          <ObjectForm
            fields={[{ key: 'destination_business', label: t('Destination business'), type: 'select', options: async () => all.filter((x) => idOf(x) !== id).map(idOf), required: true }]}
            initial={{}}
            submitLabel={t('Migrate')}
            onCancel={() => setModal(null)}
            onSubmit={async (v) => {
              const n = modal.migrate;
              await action(`businesses/${encodeURIComponent(id)}/namespaces/${encodeURIComponent(String(n.id ?? n.name))}/migrate`, v);
              setModal(null);
              ns.reload();
            }}
          />
        </Modal>
      )}
    </div>
  );
}

function BusinessesTab({ admin }: { admin: boolean }) {
  const r = useRoute();
  const a = useAsync(() => list('businesses'), []);
  const [creating, setCreating] = useState(false);
  const sel = r.params.get('business') ?? undefined;
  return (
    <div class="split">
      <aside class="panel">
        <div class="panel-head"><h3>{t('Businesses')}</h3>{admin && <button class="primary" onClick={() => setCreating(true)}>{t('Create')}</button>}</div>
        <Show a={a} empty={(d) => !d.length}>{(items) => <Tree items={items} parent={null} selected={sel} />}</Show>
      </aside>
      <div class="split-main">
        {a.data && sel && a.data.find((b) => idOf(b) === sel) ? <BusinessDetail b={a.data.find((b) => idOf(b) === sel)!} all={a.data} admin={admin} reload={a.reload} /> : <Empty>{t('Select a business to see its quotas, namespaces and members.')}</Empty>}
      </div>
      {creating && (
        <Modal title={t('Create business')} onClose={() => setCreating(false)}>
          <ObjectForm
            fields={[
              { key: 'name', label: t('Name'), required: true },
              { key: 'display_name', label: t('Display name') },
              { key: 'description', label: t('Description') },
              { key: 'parent_id', label: t('Parent business'), type: 'select', options: async () => (a.data ?? []).map(idOf) },
              { key: 'quota_cluster', label: t('Quota cluster'), type: 'select', options: namesOf('clusters') },
              ...QUOTA_KEYS.slice(0, 5).map((k) => ({ key: `quota_hard.${k}`, label: `${t('Hard')} ${k}` })),
            ]}
            initial={{}}
            onCancel={() => setCreating(false)}
            onSubmit={async (v) => {
              const { quota_cluster, quota_hard, ...rest } = v as Record<string, unknown> & { quota_cluster?: string; quota_hard?: Record<string, string> };
              const hard = Object.fromEntries(Object.entries(quota_hard ?? {}).filter(([, x]) => x));
              const body = { ...rest, parent_id: rest.parent_id || null, quotas: quota_cluster ? { [quota_cluster]: { hard } } : {} };
              await create('businesses', body);
              setCreating(false);
              a.reload();
            }}
          />
        </Modal>
      )}
    </div>
  );
}

export function PlatformPage() {
  const r = useRoute();
  const u = useStore(user)!;
  const admin = canAdminister(u);
  const tabs: [string, string][] = [
    ['clusters', t('Clusters')],
    ['businesses', t('Businesses')],
    ...(admin ? ([['users', t('Users')], ['roles', t('Roles')], ['policies', t('Policies')]] as [string, string][]) : []),
  ];
  const tab = tabs.some(([id]) => id === r.params.get('tab')) ? r.params.get('tab')! : 'clusters';
  return (
    <div class="page">
      <div class="page-head"><h1>{t('Platform')}</h1></div>
      <Tabs label={t('Platform')} active={tab} tabs={tabs} />
      {tab === 'clusters' && <ClustersTab admin={admin} />}
      {tab === 'businesses' && <BusinessesTab admin={admin} />}
      {tab === 'users' && (
        <Crud
          path="users"
          title={t('Users')}
          noun="user"
          transform={pick('name', 'display_name', 'email', 'password', 'roles', 'locked')}
          fields={[
            { key: 'name', label: t('Username'), required: true },
            { key: 'display_name', label: t('Display name') },
            { key: 'email', label: t('Email') },
            { key: 'password', label: t('Password'), type: 'password' },
            { key: 'roles', label: t('Roles'), type: 'multi', options: namesOf('roles') },
            { key: 'locked', label: t('Locked'), type: 'checkbox' },
          ]}
          columns={[
            { key: 'name', title: t('Username') },
            { key: 'display_name', title: t('Display name') },
            { key: 'email', title: t('Email') },
            { key: 'roles', title: t('Roles'), render: (i) => cell(Array.isArray(i.roles) ? i.roles.join(', ') : i.roles) },
            { key: 'locked', title: t('Locked'), render: (i) => (i.locked ? '🔒' : '') },
          ]}
        />
      )}
      {tab === 'roles' && (
        <Crud
          path="roles"
          title={t('Roles')}
          noun="role"
          transform={pick('name', 'display_name', 'description', 'scope', 'policies')}
          fields={[
            { key: 'name', label: t('Name'), required: true },
            { key: 'display_name', label: t('Display name') },
            { key: 'description', label: t('Description') },
            { key: 'scope', label: t('Scope'), type: 'select', options: ['platform', 'business'] },
            { key: 'policies', label: t('Policies'), type: 'multi', options: namesOf('policies') },
          ]}
          columns={[
            { key: 'name', title: t('Name') },
            { key: 'display_name', title: t('Display name') },
            { key: 'description', title: t('Description') },
            { key: 'policies', title: t('Policies'), render: (i) => cell(Array.isArray(i.policies) ? i.policies.join(', ') : i.policies) },
          ]}
        />
      )}
      {tab === 'policies' && (
        <Crud
          path="policies"
          title={t('Policies')}
          noun="policy"
          transform={pick('name', 'display_name', 'description', 'scope', 'effect', 'actions', 'resources')}
          defaults={{ effect: 'allow', scope: 'platform' }}
          fields={[
            { key: 'name', label: t('Name'), required: true },
            { key: 'display_name', label: t('Display name') },
            { key: 'scope', label: t('Scope'), type: 'select', options: ['platform', 'business'] },
            { key: 'effect', label: t('Effect'), type: 'select', options: ['allow', 'deny'], required: true },
            { key: 'actions', label: t('Actions'), type: 'list', placeholder: 'get*, list*, *Alarmpolicy*' },
            { key: 'resources', label: t('Resources'), type: 'list', placeholder: '*' },
            { key: 'description', label: t('Description') },
          ]}
          columns={[
            { key: 'name', title: t('Name') },
            { key: 'scope', title: t('Scope') },
            { key: 'effect', title: t('Effect') },
            { key: 'actions', title: t('Actions'), render: (i) => cell(Array.isArray(i.actions) ? i.actions.join(', ') : i.actions) },
            { key: 'resources', title: t('Resources'), render: (i) => cell(Array.isArray(i.resources) ? i.resources.join(', ') : i.resources) },
          ]}
        />
      )}
    </div>
  );
}
