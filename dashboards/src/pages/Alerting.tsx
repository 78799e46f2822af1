/** Alerting: policies, firing alerts, silences, receivers, receiver groups, channels, templates, history, inbox. */
import { useEffect, useState } from 'preact/hooks';
import { ApiError } from '../api/http';
import { alerts, createSilence, expireSilence, silences, type Alert, type Matcher } from '../api/am';
import { action, list, type Item } from '../api/platform';
import { canEditAlerting, user } from '../auth';
import { Crud, namesOf } from '../components/Crud';
import { ObjectForm, type FieldSpec } from '../components/Form';
import { Modal } from '../components/Modal';
import { Show, useAsync } from '../components/State';
import { autoColumns, cell, Table, type Column } from '../components/Table';
import { Tabs } from '../components/Tabs';
import { t } from '../i18n';
import { useRoute } from '../router';
import { useStore } from '../store';
import { PolicyEditor } from './PolicyEditor';
import { emptyPolicy, preview, toPolicy } from '../policy';
import { renderTemplate, SAMPLE_VARS } from '../template';

const csv = (v: unknown) => (Array.isArray(v) ? v.join(', ') : cell(v));

/** Renders a template through the server (`POST templates/preview`), falling back to a local render. */
function usePreview(header: string, body: string) {
  const [out, setOut] = useState<{ header: string; body: string; error?: string; local?: boolean }>({ header: renderTemplate(header), body: renderTemplate(body), local: true });
  useEffect(() => {
    const h = setTimeout(async () => {
      try {
        const r = (await action('templates/preview', { header, body })) as { header?: string; body?: string };
        setOut({ header: r.header ?? '', body: r.body ?? '' });
      } catch (e) {
        const err = e as ApiError;
        // A template error from the server is worth showing; a missing endpoint is not.
        if (err.status === 400) setOut({ header: renderTemplate(header), body: renderTemplate(body), error: err.message, local: true });
        else setOut({ header: renderTemplate(header), body: renderTemplate(body), local: true });
      }
    }, 250);
    return () => clearTimeout(h);
  }, [header, body]);
  return out;
}

function TemplateEditor({ initial, onSubmit, onCancel }: { initial: Item; onSubmit: (v: Record<string, unknown>) => Promise<unknown>; onCancel: () => void }) {
  const [v, setV] = useState<Record<string, unknown>>(initial);
  const pv = usePreview(String(v.header ?? ''), String(v.body ?? ''));
  const fields: FieldSpec[] = [
    { key: 'name', label: t('Name'), required: true },
    { key: 'channel', label: t('Channel'), type: 'select', options: namesOf('channels'), required: true },
    { key: 'display_name', label: t('Display name') },
    { key: 'header', label: t('Header / subject'), placeholder: '[{{ status }}] {{ alarmPolicyName }}' },
    { key: 'body', label: t('Body'), type: 'textarea', placeholder: '{{ summary }}' },
  ];
  return (
    <div class="template-editor">
      <ObjectForm fields={fields} initial={initial} onSubmit={onSubmit} onCancel={onCancel} onChange={setV} />
      <section class="preview-pane" aria-label={t('Preview')}>
        <h4>{t('Preview with sample values')}</h4>
        {pv.error && <div class="state error" role="alert">{pv.error}</div>}
        <div class="preview-header">{pv.header}</div>
        <pre class="preview" aria-label={t('Preview')}>{pv.body}</pre>
        <details>
          <summary>{t('Variables')}</summary>
          <ul class="vars">{Object.keys(SAMPLE_VARS).map((k) => <li key={k}><code>{`{{ ${k} }}`}</code></li>)}</ul>
        </details>
      </section>
    </div>
  );
}

function parseMatchers(s: string): Matcher[] {
  return s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)
    .map((x) => {
      const m = /^([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"?(.*?)"?$/.exec(x);
      if (!m) throw new Error(t('Bad matcher: {m}', { m: x }));
      return { name: m[1], value: m[3], isRegex: m[2].includes('~'), isEqual: !m[2].startsWith('!') };
    });
}

function SilenceForm({ initial, onDone }: { initial: string; onDone: () => void }) {
  const u = useStore(user);
  return (
    <ObjectForm
      fields={[
        { key: 'matchers', label: t('Matchers'), required: true, placeholder: 'alertname="HighCPU", node=~"node-.*"' },
        { key: 'hours', label: t('Duration (hours)'), type: 'number', required: true },
        { key: 'comment', label: t('Comment'), required: true },
      ]}
      initial={{ matchers: initial, hours: 2, comment: '' }}
      onCancel={onDone}
      submitLabel={t('Create silence')}
      onSubmit={async (v) => {
        const now = Date.now();
        await createSilence({
          matchers: parseMatchers(String(v.matchers)),
          startsAt: new Date(now).toISOString(),
          endsAt: new Date(now + Number(v.hours) * 3600e3).toISOString(),
          createdBy: u?.name ?? 'unknown',
          comment: String(v.comment),
        });
        onDone();
      }}
    />
  );
}

function FiringTab() {
  const a = useAsync(() => alerts(true), []);
  const [silence, setSilence] = useState<string | null>(null);
  const matchersOf = (x: Alert) => Object.entries(x.labels).map(([k, v]) => `${k}="${v}"`).join(', ');
  return (
    <section class="panel wide" aria-label={t('Firing alerts')}>
      <div class="panel-head"><h3>{t('Firing alerts')}</h3><button onClick={a.reload}>{t('Refresh')}</button></div>
      <Show a={a}>
        {(rows) => (
          <Table
            label={t('Firing alerts')}
            rows={rows}
            rowKey={(x) => x.fingerprint}
            empty={t('No alerts are firing.')}
            columns={[
              { key: 'name', title: t('Alert'), render: (x) => x.labels.alertname },
              { key: 'state', title: t('State'), render: (x) => <span class={`pill ${x.status.state === 'active' ? 'bad' : 'muted'}`}>{x.status.state}</span> },
              { key: 'labels', title: t('Labels'), render: (x) => Object.entries(x.labels).filter(([k]) => k !== 'alertname').map(([k, v]) => `${k}=${v}`).join(', '), class: 'wrap' },
              { key: 'summary', title: t('Summary'), render: (x) => x.annotations.summary ?? x.annotations.description ?? '', class: 'wrap' },
              { key: 'since', title: t('Since'), render: (x) => new Date(x.startsAt).toLocaleString() },
              {
                key: 'act',
                title: t('Actions'),
                render: (x) => (
                  <span class="row-actions">
                    <button class="link" onClick={() => setSilence(matchersOf(x))}>{t('Silence')}</button>
                    <button
                      class="link"
                      title={t('Stop repeating notifications until it resolves (24 h)')}
                      onClick={async () => {
                        try {
                          await action(`alerts/${encodeURIComponent(x.fingerprint)}/ack`, { by: user.get()?.name ?? '', comment: '', duration: '24h' });
                          a.reload();
                        } catch (e) {
                          alert((e as Error).message);
                        }
                      }}
                    >
                      {t('Acknowledge')}
                    </button>
                  </span>
                ),
              },
            ]}
          />
        )}
      </Show>
      {silence !== null && (
        <Modal title={t('Create silence')} onClose={() => setSilence(null)}>
          <SilenceForm initial={silence} onDone={() => { setSilence(null); a.reload(); }} />
        </Modal>
      )}
    </section>
  );
}

function SilencesTab() {
  const a = useAsync(silences, []);
  const [creating, setCreating] = useState(false);
  return (
    <section class="panel wide" aria-label={t('Silences')}>
      <div class="panel-head"><h3>{t('Silences')}</h3><button class="primary" onClick={() => setCreating(true)}>{t('Create silence')}</button></div>
      <Show a={a}>
        {(rows) => (
          <Table
            label={t('Silences')}
            rows={rows.sort((x, y) => (x.status.state === 'active' ? -1 : 1) - (y.status.state === 'active' ? -1 : 1))}
            rowKey={(x) => x.id}
            empty={t('No silences.')}
            columns={[
              { key: 'matchers', title: t('Matchers'), render: (x) => <code>{x.matchers.map((m) => `${m.name}${m.isEqual === false ? '!' : ''}${m.isRegex ? '=~' : '='}"${m.value}"`).join(', ')}</code> },
              { key: 'state', title: t('State'), render: (x) => <span class={`pill ${x.status.state === 'active' ? 'ok' : 'muted'}`}>{x.status.state}</span> },
              { key: 'ends', title: t('Ends'), render: (x) => new Date(x.endsAt).toLocaleString() },
              { key: 'by', title: t('Created by'), render: (x) => x.createdBy },
              { key: 'comment', title: t('Comment'), render: (x) => x.comment },
              { key: 'act', title: t('Actions'), render: (x) => x.status.state !== 'expired' && <button class="link danger" onClick={async () => { await expireSilence(x.id).catch((e) => alert(e.message)); a.reload(); }}>{t('Expire')}</button> },
            ]}
          />
        )}
      </Show>
      {creating && (
        <Modal title={t('Create silence')} onClose={() => setCreating(false)}>
          <SilenceForm initial="" onDone={() => { setCreating(false); a.reload(); }} />
        </Modal>
      )}
    </section>
  );
}

function ListTab({ path, title, extra, columns }: { path: string; title: string; extra?: (i: Item, reload: () => void) => preact.JSX.Element | null; columns?: Column<Item>[] }) {
  const a = useAsync(() => list(path), [path]);
  return (
    <section class="panel wide" aria-label={title}>
      <div class="panel-head"><h3>{title}</h3><button onClick={a.reload}>{t('Refresh')}</button></div>
      <Show a={a}>
        {(rows) => {
          const cols = columns ?? autoColumns(rows, 10);
          return <Table label={title} rows={rows} columns={extra ? [...cols, { key: '_act', title: t('Actions'), render: (i) => extra(i, a.reload) }] : cols} />;
        }}
      </Show>
    </section>
  );
}

export function AlertingPage() {
  const r = useRoute();
  const u = useStore(user)!;
  const editable = canEditAlerting(u);
  const tabs: [string, string][] = [
    ['policies', t('Policies')],
    ['firing', t('Firing alerts')],
    ['silences', t('Silences')],
    ['receivers', t('Receivers')],
    ['groups', t('Receiver groups')],
    ['channels', t('Channels')],
    ['templates', t('Templates')],
    ['history', t('History')],
    ['inbox', t('Inbox')],
  ];
  const tab = tabs.some(([id]) => id === r.params.get('tab')) ? r.params.get('tab')! : 'policies';
  return (
    <div class="page">
      <div class="page-head">
        <h1>{t('Alerting')}</h1>
      </div>
      <Tabs label={t('Alerting')} active={tab} tabs={tabs} />
      {tab === 'policies' && (
        <Crud
          path="alarm-policies"
          title={t('Alarm policies')}
          noun="policy"
          editable={editable}
          copyable={editable}
          defaults={emptyPolicy() as unknown as Record<string, unknown>}
          fields={[]}
          editor={(p) => <PolicyEditor {...p} />}
          empty={t('No alarm policies yet.')}
          columns={[
            { key: 'name', title: t('Name') },
            { key: 'type', title: t('Type') },
            { key: 'cluster_id', title: t('Cluster') },
            { key: 'conditions', title: t('Conditions'), render: (i) => <code class="wrap">{preview(toPolicy(i)).join('; ')}</code>, class: 'wrap' },
            { key: 'notify', title: t('Notify'), render: (i) => csv([...((i.receiver_groups as string[]) ?? []), ...((i.receivers as string[]) ?? [])]) },
          ]}
        />
      )}
      {tab === 'firing' && <FiringTab />}
      {tab === 'silences' && <SilencesTab />}
      {tab === 'receivers' && (
        <Crud
          path="receivers"
          title={t('Receivers')}
          noun="receiver"
          editable={editable}
          fields={[
            { key: 'name', label: t('Name'), required: true },
            { key: 'display_name', label: t('Display name') },
            { key: 'username', label: t('Platform user'), type: 'select', options: namesOf('users') },
            { key: 'identities.email', label: t('Email') },
            { key: 'identities.webhook', label: t('Webhook URL') },
            { key: 'identities.mobile', label: t('Mobile') },
          ]}
          columns={[
            { key: 'name', title: t('Name') },
            { key: 'username', title: t('Platform user') },
            { key: 'email', title: t('Email'), render: (i) => cell((i.identities as Record<string, string> | undefined)?.email) },
            { key: 'webhook', title: t('Webhook URL'), render: (i) => cell((i.identities as Record<string, string> | undefined)?.webhook) },
          ]}
        />
      )}
      {tab === 'groups' && (
        <Crud
          path="receiver-groups"
          title={t('Receiver groups')}
          noun="receiver group"
          editable={editable}
          fields={[
            { key: 'name', label: t('Name'), required: true },
            { key: 'display_name', label: t('Display name') },
            { key: 'receivers', label: t('Receivers'), type: 'multi', options: namesOf('receivers') },
          ]}
          columns={[
            { key: 'name', title: t('Name') },
            { key: 'display_name', title: t('Display name') },
            { key: 'receivers', title: t('Receivers'), render: (i) => csv(i.receivers) },
          ]}
        />
      )}
      {tab === 'channels' && (
        <Crud
          path="channels"
          title={t('Channels')}
          noun="channel"
          editable={editable}
          defaults={{ kind: 'smtp', smtp: { port: 25, tls: 'plain' } }}
          prepare={(i) => ({ ...i, kind: i.webhook ? 'webhook' : 'smtp' })}
          transform={({ kind, smtp, webhook, ...rest }) => (kind === 'webhook' ? { ...rest, webhook } : { ...rest, smtp })}
          fields={[
            { key: 'name', label: t('Name'), required: true },
            { key: 'display_name', label: t('Display name') },
            { key: 'kind', label: t('Type'), type: 'select', options: ['smtp', 'webhook'], required: true },
            { key: 'smtp.host', label: t('SMTP host'), when: (v) => v.kind === 'smtp', required: true },
            { key: 'smtp.port', label: t('SMTP port'), type: 'number', when: (v) => v.kind === 'smtp', required: true },
            { key: 'smtp.tls', label: 'TLS', type: 'select', options: ['plain', 'starttls', 'tls'], when: (v) => v.kind === 'smtp' },
            { key: 'smtp.email', label: t('Sender email'), when: (v) => v.kind === 'smtp', required: true },
            { key: 'smtp.username', label: t('Username'), when: (v) => v.kind === 'smtp' },
            { key: 'smtp.password', label: t('Password'), type: 'password', when: (v) => v.kind === 'smtp' },
            { key: 'webhook.url', label: t('Webhook URL'), when: (v) => v.kind === 'webhook', required: true },
            { key: 'webhook.headers', label: t('Headers (JSON)'), type: 'json', when: (v) => v.kind === 'webhook' },
          ]}
          columns={[
            { key: 'name', title: t('Name') },
            { key: 'type', title: t('Type'), render: (i) => (i.webhook ? 'webhook' : 'smtp') },
            { key: 'target', title: t('Target'), render: (i) => cell((i.smtp as Record<string, unknown> | undefined)?.host ?? (i.webhook as Record<string, unknown> | undefined)?.url) },
          ]}
        />
      )}
      {tab === 'templates' && (
        <Crud
          path="templates"
          title={t('Templates')}
          noun="template"
          editable={editable}
          fields={[]}
          editor={(p) => <TemplateEditor {...p} />}
          columns={[
            { key: 'name', title: t('Name') },
            { key: 'channel', title: t('Channel') },
            { key: 'header', title: t('Header / subject') },
            { key: 'preview', title: t('Preview'), render: (i) => <span class="wrap">{renderTemplate(String(i.body ?? '')).slice(0, 120)}</span>, class: 'wrap' },
          ]}
        />
      )}
      {tab === 'history' && (
        <ListTab
          path="alert-history"
          title={t('History')}
          columns={[
            { key: 'time', title: t('Time'), render: (i) => new Date(String(i.time)).toLocaleString() },
            { key: 'alertnames', title: t('Alert'), render: (i) => csv(i.alertnames) },
            { key: 'receiver', title: t('Receiver'), render: (i) => cell(i.receiver) },
            { key: 'integration', title: t('Channel'), render: (i) => cell(i.integration) },
            { key: 'firing', title: t('Firing / resolved'), render: (i) => `${(i.firing as unknown[] | undefined)?.length ?? 0} / ${(i.resolved as unknown[] | undefined)?.length ?? 0}` },
            { key: 'ok', title: t('Delivered'), render: (i) => (i.ok ? <span class="pill ok">✓</span> : <span class="pill bad" title={cell(i.error)}>{cell(i.error) || '✗'}</span>) },
          ]}
        />
      )}
      {tab === 'inbox' && (
        <ListTab
          path="inbox"
          title={t('Inbox')}
          columns={[
            { key: 'created_at', title: t('Time'), render: (i) => new Date(String(i.created_at)).toLocaleString() },
            { key: 'status', title: t('State'), render: (i) => <span class={`pill ${i.alert_status === 'firing' ? 'bad' : 'ok'}`}>{cell(i.alert_status)}</span> },
            { key: 'header', title: t('Header / subject'), render: (i) => (i.read ? cell(i.header) : <b>{cell(i.header)}</b>), class: 'wrap' },
            { key: 'body', title: t('Body'), render: (i) => cell(i.body), class: 'wrap' },
            { key: 'receiver', title: t('Receiver'), render: (i) => cell(i.receiver) },
            { key: 'policy', title: t('Alarm policy'), render: (i) => cell(i.alarm_policy_name) },
          ]}
          extra={(i, reload) =>
            i.phase === 'Read' || i.read === true ? null : (
              <button class="link" onClick={async () => { await action(`inbox/${encodeURIComponent(String(i.id ?? i.name))}/read`).catch((e) => alert(e.message)); reload(); }}>{t('Mark read')}</button>
            )
          }
        />
      )}
    </div>
  );
}
