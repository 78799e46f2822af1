// End-to-end: the console in real headless Chromium against a running `tidewatch up` with data in it.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { launchBrowser, pushLogs, remoteWrite, repoRoot, screenshotDir, shot, startTidewatch, until } from './support.mjs';

const NODE = 'e2e-node';
// Unique per run, so a reused server (TIDEWATCH_URL) holds exactly one matching line.
const NEEDLE = `needle-${Date.now().toString(36)}`;
const POLICY = `e2e-node-cpu-${Date.now() % 100000}`;

let tw;
let browser;
let page;
const pageErrors = [];
const consoleErrors = [];

/** The admin's session cookie, so the test's own API calls are authenticated like the browser's. */
const auth = async () => ({ cookie: (await browser.context.cookies(tw.url)).map((c) => `${c.name}=${c.value}`).join('; ') });
/** `fetch` with the session cookie. */
const api = async (path, init = {}) => fetch(tw.url + path, { ...init, headers: { ...(init.headers ?? {}), ...(await auth()) } });

/** Runs `f` once and shares its promise (each test seeds only the data it needs). */
const once = (f) => {
  let p;
  return () => (p ??= f());
};

const seedMetrics = once(async () => {
  const now = Date.now();
  // 60 samples over the last 30 minutes of a few node metrics for one node of cluster "local",
  // sent the way the collector sends them: Prometheus remote-write.
  const node = { cluster_id: 'local', node: NODE };
  const samples = (f) => Array.from({ length: 60 }, (_, k) => [now - (59 - k) * 30000, f(59 - k)]);
  await remoteWrite(tw.url, [
    { labels: { __name__: 'k8s_node_cpu_usage', ...node }, samples: samples((i) => 40 + 20 * Math.sin(i / 6)) },
    { labels: { __name__: 'k8s_node_mem_usage', ...node }, samples: samples((i) => 60 + Math.cos(i / 9) * 4) },
    { labels: { __name__: 'k8s_node_filesystem_usage', ...node }, samples: samples((i) => 71 + i / 100) },
    { labels: { __name__: 'k8s_node_network_receive_bytes_bw', ...node }, samples: samples((i) => 2e6 + ((i * 7919) % 1000) * 1000) },
    { labels: { __name__: 'k8s_node_network_transmit_bytes_bw', ...node }, samples: samples((i) => 5e5 + ((i * 104729) % 1000) * 300) },
  ], await auth());
  // Ingest may be asynchronous: wait until the samples are queryable.
  await until('written metrics to be queryable', async () => {
    const r = await api(`/api/v1/query?query=${encodeURIComponent(`k8s_node_cpu_usage{node="${NODE}"}`)}`);
    return r.ok && (await r.json()).data?.result?.length > 0;
  });
});

const seedLogs = once(async () => {
  const now = Date.now();
  const logLines = [];
  for (let i = 20; i >= 1; i--) logLines.push([now - i * 1000, i === 7 ? `checkout ${NEEDLE} completed order=42` : `GET /healthz 200 line=${i}`]);
  await pushLogs(tw.url, { cluster_id: 'local', namespace: 'e2e', workload_name: 'shop', pod: 'e2e-pod', container: 'app' }, logLines, await auth());
  await until('pushed logs to be queryable', async () => {
    const q = encodeURIComponent(`{namespace="e2e"} |= "${NEEDLE}"`);
    const r = await api(`/loki/api/v1/query_range?query=${q}&start=${(now - 3600e3) * 1e6}&end=${(now + 60e3) * 1e6}`);
    return r.ok && (await r.json()).data?.result?.length > 0;
  });
});

before(async () => {
  tw = await startTidewatch();
  browser = await launchBrowser();
  page = await browser.context.newPage();
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.setDefaultTimeout(15000);
});

after(async () => {
  await browser?.close();
  await tw?.stop();
  if (process.env.TIDEWATCH_UPDATE_DOC_SCREENSHOTS) {
    const docs = path.join(repoRoot, 'docs', 'screenshots');
    fs.mkdirSync(docs, { recursive: true });
    for (const f of ['overview', 'monitoring-node', 'explore', 'logs', 'alerting-policy-form', 'alerting-template-preview', 'alerting-silences', 'platform-users', 'overview-zh']) {
      const src = path.join(screenshotDir, `${f}.png`);
      if (fs.existsSync(src)) fs.copyFileSync(src, path.join(docs, `${f}.png`));
    }
  }
});

test('the binary serves the console at / with SPA fallback', async () => {
  for (const p of ['/', '/monitoring']) {
    const r = await fetch(tw.url + p);
    assert.equal(r.status, 200, `GET ${p}`);
    assert.match(await r.text(), /<div id="app">/, `GET ${p} is the console's index.html`);
  }
});

test('log in as admin', async (t) => {
  await page.goto(tw.url + '/');
  await page.getByLabel('Username').waitFor();
  const fcp = await page.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime);
  t.diagnostic(`first contentful paint of the login page: ${Math.round(fcp)} ms`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('wrong-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').waitFor();
  await shot(page, 'login-error');
  await page.getByLabel('Password').fill('admin');
  await page.getByRole('button', { name: 'Sign in' }).click();
  const nav = page.getByRole('navigation', { name: 'Main navigation' });
  await nav.waitFor();
  for (const name of ['Overview', 'Monitoring', 'Explore', 'Logs', 'Alerting', 'Platform']) {
    assert.ok(await nav.getByRole('link', { name }).isVisible(), `admin sees ${name}`);
  }
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await shot(page, 'overview');
});

test("a node's monitoring page charts its data points, with a hover tooltip", async () => {
  await seedMetrics();
  await page.goto(`${tw.url}/monitoring?level=node&cluster=local&node=${NODE}&range=1h`);
  const chart = page.locator('section[aria-label="CPU usage"] figure.chart');
  await chart.waitFor();
  const points = Number(await chart.getAttribute('data-points'));
  assert.ok(points >= 30, `CPU chart has ${points} points`);
  const box = await chart.locator('.u-over').boundingBox();
  await page.mouse.move(box.x + box.width * 0.9, box.y + box.height / 2);
  const tip = chart.locator('.chart-tip');
  await tip.waitFor({ state: 'visible' });
  assert.match(await tip.innerText(), /%/, 'tooltip shows the value with its unit');
  await shot(page, 'monitoring-node');
});

test('explore runs a PromQL query (graph and table) and shows a failed query\'s error', async () => {
  await seedMetrics();
  await page.goto(`${tw.url}/explore`);
  await page.locator('#promql').fill(`k8s_node_cpu_usage{node="${NODE}"}`);
  await page.getByRole('button', { name: 'Run query' }).click();
  const chart = page.locator('figure.chart');
  await chart.waitFor();
  assert.ok(Number(await chart.getAttribute('data-points')) >= 30);
  await shot(page, 'explore');
  await page.getByRole('button', { name: 'Table' }).click();
  await page.getByRole('table', { name: 'Result' }).getByText(NODE).waitFor();
  await page.locator('#promql').fill('sum(rate(k8s_node_cpu_usage[5m]');
  await page.getByRole('button', { name: 'Run query' }).click();
  const err = page.locator('.state.error .error-message');
  await err.waitFor();
  assert.ok((await err.innerText()).trim().length > 0, 'the error message is shown');
  await shot(page, 'explore-error');
});

test('a chart of 10,000 points renders', async (t) => {
  // 20 series x 500 samples 5 s apart, queried at that step over a custom range.
  const end = Math.floor(Date.now() / 5000) * 5;
  const start = end - 499 * 5;
  const series = Array.from({ length: 20 }, (_, s) => ({
    labels: { __name__: 'e2e_dense', series: `s${s}` },
    samples: Array.from({ length: 500 }, (_, i) => [(start + i * 5) * 1000, s * 10 + Math.sin(i / 20) * 5]),
  }));
  await remoteWrite(tw.url, series, await auth());
  await until('dense series to be queryable', async () => {
    const r = await api(`/api/v1/query_range?query=e2e_dense&start=${start}&end=${end}&step=5`);
    return r.ok && (await r.json()).data?.result?.length === 20;
  });
  await page.goto(`${tw.url}/explore?q=e2e_dense&from=${start}&to=${end}`);
  await page.waitForFunction(() => Number(document.querySelector('figure.chart')?.getAttribute('data-points')) >= 10000);
  const ms = await page.evaluate(async () => {
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    return performance.getEntriesByName('tw-chart-render').pop()?.duration;
  });
  t.diagnostic(`10,000-point chart: aligned and drawn by the next frame in ${ms?.toFixed(1)} ms`);
  const box = await page.locator('figure.chart .u-over').boundingBox();
  await page.mouse.move(box.x + box.width / 3, box.y + 20);
  await page.locator('figure.chart .chart-tip').waitFor({ state: 'visible' });
  await shot(page, 'explore-10k');
});

test('logs search finds and highlights a known line', async () => {
  await seedLogs();
  await page.goto(`${tw.url}/logs?namespace=e2e&search=${NEEDLE}&range=1h`);
  const line = page.locator('ol.loglines li', { hasText: NEEDLE });
  await line.waitFor();
  assert.ok((await line.innerText()).includes(`checkout ${NEEDLE} completed order=42`));
  assert.equal(await line.locator('mark').innerText(), NEEDLE);
  assert.equal(await page.locator('ol.loglines li').count(), 1, 'only the matching line is listed');
  await shot(page, 'logs');
});

test('live tail shows a line pushed after it started', async () => {
  await seedLogs();
  await page.goto(`${tw.url}/logs?namespace=e2e&range=15m`);
  await page.locator('ol.loglines li').first().waitFor();
  await page.getByRole('button', { name: 'Live tail' }).click();
  await page.getByRole('button', { name: 'Stop live tail' }).waitFor();
  const fresh = `tail-${Date.now()} arrived live`;
  // The websocket may connect a moment after the click: push until the line shows (bounded).
  await until('the pushed line in the live view', async () => {
    await pushLogs(tw.url, { cluster_id: 'local', namespace: 'e2e', workload_name: 'shop', pod: 'e2e-pod', container: 'app' }, [[Date.now(), fresh]], await auth());
    return page.locator('ol.loglines li', { hasText: fresh }).first().isVisible({ timeout: 1000 }).catch(() => false);
  }, 20000, 1000);
  await shot(page, 'logs-live');
  await page.getByRole('button', { name: 'Stop live tail' }).click();
});

test('the events page lists and filters a cluster event', async () => {
  const reason = `E2EBackOff${Date.now() % 100000}`;
  const now = new Date().toISOString();
  const ev = (name, type, r) => ({
    cluster_id: 'local', namespace: 'e2e', name: `${name}.1`, uid: `uid-${name}-${r}`, reason: r, type,
    message: `${r} for ${name}`, count: 3, first_timestamp: now, last_timestamp: now,
    involved_object: { kind: 'Pod', name, namespace: 'e2e', uid: `pod-${name}` },
  });
  const r = await api('/api/v1/events', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ events: [ev('e2e-pod', 'Warning', reason), ev('e2e-other', 'Normal', `${reason}Other`)] }) });
  assert.ok(r.ok, `POST /api/v1/events: HTTP ${r.status} ${await r.text()}`);
  await page.goto(`${tw.url}/events?namespace=e2e`);
  await page.getByRole('cell', { name: reason, exact: true }).waitFor();
  await page.getByLabel('Reason').selectOption(reason);
  const rows = page.getByRole('table', { name: 'Events' }).getByRole('row');
  await until('only the chosen reason listed', async () => (await rows.count()) === 2, 10000); // header + 1
  const row = rows.nth(1);
  assert.match(await row.innerText(), /Pod\/e2e-pod/);
  assert.match(await row.innerText(), /Warning/);
  await shot(page, 'events-filtered');
});

test('create an alarm policy and see it listed', async () => {
  await page.goto(`${tw.url}/alerting?tab=policies`);
  await page.getByRole('button', { name: 'Create policy' }).click();
  const form = page.getByRole('form', { name: 'Alarm policy' });
  await form.getByLabel('Policy name').fill(POLICY);
  await shot(page, 'alerting-policy-form');
  await form.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('table', { name: 'Alarm policies' }).getByRole('cell', { name: POLICY, exact: true }).waitFor();
  await shot(page, 'alerting-policies');
  const r = await page.request.get(`${tw.url}/api/platform/v1/alarm-policies`);
  assert.equal(r.status(), 200);
  assert.ok(JSON.stringify(await r.json()).includes(POLICY), 'the policy is stored');
});

test('notification objects: channel, template with server preview, receiver, group; a policy edited to use them and copied', async () => {
  const sfx = Date.now() % 100000;
  const [ch, tpl, rcv, grp] = [`hook-${sfx}`, `tpl-${sfx}`, `oncall-${sfx}`, `team-${sfx}`];
  const create = async (tab, button, fill) => {
    await page.goto(`${tw.url}/alerting?tab=${tab}`);
    await page.getByRole('button', { name: button }).click();
    const d = page.getByRole('dialog', { name: button });
    await fill(d);
    await d.getByRole('button', { name: 'Save' }).click();
    await d.waitFor({ state: 'detached' });
  };
  await create('channels', 'Create channel', async (d) => {
    await d.getByRole('textbox', { name: 'Name', exact: true }).fill(ch);
    await d.getByLabel('Type').selectOption('webhook');
    await d.getByLabel('Webhook URL').fill('http://127.0.0.1:9/hook');
  });
  await page.getByRole('cell', { name: ch, exact: true }).waitFor();
  await create('templates', 'Create template', async (d) => {
    await d.getByRole('textbox', { name: 'Name', exact: true }).fill(tpl);
    await d.getByLabel('Channel').selectOption(ch);
    await d.getByLabel('Header / subject').fill('[{{ status }}] {{ alarmPolicyName }}');
    await d.getByLabel('Body').fill('{{ metricDisplayName }} is {{ value }}{{ unit }}');
    // The preview is rendered with TKEStack's sample variables.
    await page.waitForFunction(() => /\d/.test(document.querySelector('.preview-pane pre.preview')?.textContent ?? ''));
    assert.doesNotMatch(await d.locator('.preview-pane pre.preview').innerText(), /\{\{/);
    await shot(page, 'alerting-template-preview');
  });
  await page.getByRole('cell', { name: tpl, exact: true }).waitFor();
  await create('receivers', 'Create receiver', async (d) => {
    await d.getByRole('textbox', { name: 'Name', exact: true }).fill(rcv);
    await d.getByLabel('Email').fill('oncall@example.com');
  });
  await page.getByRole('cell', { name: rcv, exact: true }).waitFor();
  await create('groups', 'Create receiver group', async (d) => {
    await d.getByRole('textbox', { name: 'Name', exact: true }).fill(grp);
    await d.getByLabel('Receivers').selectOption(rcv);
  });
  await page.getByRole('cell', { name: grp, exact: true }).waitFor();

  await page.goto(`${tw.url}/alerting?tab=policies`);
  await page.getByRole('button', { name: `Edit ${POLICY}` }).click();
  const form = page.getByRole('form', { name: 'Alarm policy' });
  await form.getByLabel('Receiver groups').selectOption(grp);
  await form.getByRole('button', { name: 'Add notify way' }).click();
  await form.getByLabel('Channel').selectOption(ch);
  await form.getByLabel('Template', { exact: true }).selectOption(tpl);
  await form.getByRole('button', { name: 'Save' }).click();
  await form.waitFor({ state: 'detached' });
  const row = page.getByRole('row').filter({ has: page.getByRole('cell', { name: POLICY, exact: true }) });
  await row.getByRole('cell', { name: grp }).waitFor();
  await row.getByRole('button', { name: `Copy ${POLICY}` }).click();
  await page.getByRole('form', { name: 'Alarm policy' }).getByRole('button', { name: 'Save' }).click();
  await page.getByRole('cell', { name: `${POLICY}-copy`, exact: true }).waitFor();
  await shot(page, 'alerting-policies-notify');
  const r = await page.request.get(`${tw.url}/api/platform/v1/alarm-policies/${POLICY}`);
  assert.equal(r.status(), 200);
  const stored = await r.json();
  assert.deepEqual(stored.receiver_groups, [grp]);
  assert.deepEqual(stored.notify_ways, [{ channel: ch, template: tpl }]);
});

test('a firing alert is listed, acknowledged and silenced from the console', async () => {
  const alertname = `E2EAlert${Date.now() % 100000}`;
  const r = await api('/api/v2/alerts', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify([{ labels: { alertname, cluster_id: 'local', severity: 'warning' }, annotations: { summary: 'raised by the browser test' }, startsAt: new Date().toISOString() }]),
  });
  assert.ok(r.ok, `POST /api/v2/alerts: HTTP ${r.status}`);
  await page.goto(`${tw.url}/alerting?tab=firing`);
  const row = page.getByRole('row').filter({ has: page.getByRole('cell', { name: alertname, exact: true }) });
  await row.waitFor();
  // Acknowledge it (stops repeated notifications), then silence it.
  const listed = await (await api(`/api/v2/alerts?filter=${encodeURIComponent(`alertname="${alertname}"`)}`)).json();
  const fp = listed[0].fingerprint;
  const dialogs = [];
  page.once('dialog', (dlg) => dialogs.push(dlg.message()) && dlg.dismiss());
  await row.getByRole('button', { name: 'Acknowledge' }).click();
  await until('the acknowledgement to be stored', async () => (await api(`/api/platform/v1/alerts/${fp}/ack`)).ok, 10000);
  assert.deepEqual(dialogs, [], 'acknowledging raised no error');
  await row.getByRole('button', { name: 'Silence' }).click();
  const d = page.getByRole('dialog', { name: 'Create silence' });
  assert.match(await d.getByRole('textbox', { name: 'Matchers' }).inputValue(), new RegExp(`alertname="${alertname}"`));
  await d.getByRole('textbox', { name: 'Comment' }).fill('maintenance (browser test)');
  await d.getByRole('button', { name: 'Create silence' }).click();
  await d.waitFor({ state: 'detached' });
  await page.goto(`${tw.url}/alerting?tab=silences`);
  const srow = page.getByRole('row').filter({ hasText: alertname });
  await srow.getByRole('cell', { name: 'active', exact: true }).waitFor();
  await shot(page, 'alerting-silences');
  const silenced = await (await api(`/api/v2/alerts?filter=${encodeURIComponent(`alertname="${alertname}"`)}`)).json();
  assert.equal(silenced[0]?.status?.state, 'suppressed', 'Alertmanager reports the alert as silenced');
});

test('switch language to Simplified Chinese and back', async () => {
  await page.goto(`${tw.url}/`);
  await page.getByRole('button', { name: 'Switch language' }).click();
  const nav = page.getByRole('navigation', { name: '主导航' });
  await nav.getByRole('link', { name: '概览' }).waitFor();
  assert.equal(await page.locator('html').getAttribute('lang'), 'zh-CN');
  await nav.getByRole('link', { name: '监控' }).waitFor();
  await shot(page, 'overview-zh');
  await page.reload();
  await page.getByRole('navigation', { name: '主导航' }).waitFor(); // the choice persists
  await page.getByRole('button', { name: '切换语言' }).click();
  await page.getByRole('navigation', { name: 'Main navigation' }).getByRole('link', { name: 'Overview' }).waitFor();
});

test('a login-only user sees only the read-only pages', async () => {
  const name = `viewer${Date.now() % 100000}`;
  const r = await page.request.post(`${tw.url}/api/platform/v1/users`, { data: { name, display_name: 'E2E viewer', password: 'viewer-pass-1', roles: ['login-only'] } });
  assert.ok(r.ok(), `creating the user: HTTP ${r.status()} ${await r.text()}`);
  // A separate browser context: its own cookies, so the admin session stays.
  const other = await browser.newContext();
  const p2 = await other.newPage();
  p2.on('pageerror', (e) => pageErrors.push(e.message));
  try {
    await p2.goto(tw.url + '/');
    await p2.getByLabel('Username').fill(name);
    await p2.getByLabel('Password').fill('viewer-pass-1');
    await p2.getByRole('button', { name: 'Sign in' }).click();
    const nav = p2.getByRole('navigation', { name: 'Main navigation' });
    await nav.getByRole('link', { name: 'Overview' }).waitFor();
    const links = await nav.getByRole('link').allInnerTexts();
    assert.deepEqual(links.sort(), ['Events', 'Logs', 'Monitoring', 'Overview']);
    await shot(p2, 'viewer-overview');
  } finally {
    await other.close();
  }
});

test('an admin creates a user with a role and edits it on the platform page', async () => {
  const name = `ops${Date.now() % 100000}`;
  await page.goto(`${tw.url}/platform?tab=users`);
  await page.getByRole('table', { name: 'Users' }).getByRole('cell', { name: 'admin', exact: true }).waitFor();
  await page.getByRole('button', { name: 'Create user' }).click();
  const dialog = page.getByRole('dialog', { name: 'Create user' });
  await dialog.getByLabel('Username').fill(name);
  await dialog.getByLabel('Password').fill('ops-pass-123');
  await dialog.getByLabel('Roles').selectOption('platform-user');
  await dialog.getByRole('button', { name: 'Save' }).click();
  const row = page.getByRole('row').filter({ has: page.getByRole('cell', { name, exact: true }) });
  await row.getByRole('cell', { name: 'platform-user', exact: true }).waitFor();
  await row.getByRole('button', { name: `Edit ${name}` }).click();
  const edit = page.getByRole('dialog', { name: 'Edit user' });
  await edit.getByLabel('Display name').fill('Ops Person');
  await edit.getByRole('button', { name: 'Save' }).click();
  await row.getByRole('cell', { name: 'Ops Person', exact: true }).waitFor();
  await shot(page, 'platform-users');
  // A duplicate name is refused with the server's message, shown in the form.
  await page.getByRole('button', { name: 'Create user' }).click();
  await dialog.getByLabel('Username').fill(name);
  await dialog.getByLabel('Password').fill('ops-pass-123');
  await dialog.getByRole('button', { name: 'Save' }).click();
  await dialog.getByRole('alert').waitFor();
  assert.match(await dialog.getByRole('alert').innerText(), new RegExp(name));
  await dialog.getByRole('button', { name: 'Cancel' }).click();
});

test('an admin creates a policy and a role that uses it', async () => {
  const sfx = Date.now() % 100000;
  const [pol, role] = [`pol-read-${sfx}`, `reader-${sfx}`];
  await page.goto(`${tw.url}/platform?tab=policies`);
  await page.getByRole('button', { name: 'Create policy' }).click();
  let d = page.getByRole('dialog', { name: 'Create policy' });
  await d.getByRole('textbox', { name: 'Name', exact: true }).fill(pol);
  await d.getByLabel('Effect').selectOption('allow');
  await d.getByRole('textbox', { name: 'Actions' }).fill('get*, list*');
  await d.getByRole('textbox', { name: 'Resources' }).fill('*');
  await d.getByRole('button', { name: 'Save' }).click();
  await d.waitFor({ state: 'detached' });
  const prow = page.getByRole('row').filter({ has: page.getByRole('cell', { name: pol, exact: true }) });
  await prow.getByRole('cell', { name: 'get*, list*', exact: true }).waitFor();
  await page.goto(`${tw.url}/platform?tab=roles`);
  await page.getByRole('button', { name: 'Create role' }).click();
  d = page.getByRole('dialog', { name: 'Create role' });
  await d.getByRole('textbox', { name: 'Name', exact: true }).fill(role);
  await d.getByLabel('Policies').selectOption(pol);
  await d.getByRole('button', { name: 'Save' }).click();
  await d.waitFor({ state: 'detached' });
  const rrow = page.getByRole('row').filter({ has: page.getByRole('cell', { name: role, exact: true }) });
  await rrow.getByRole('cell', { name: pol, exact: true }).waitFor();
  await shot(page, 'platform-roles');
});

/** Form controls on the page that have neither a label nor an aria-label. */
const unlabelledControls = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')))
      .map((el) => el.outerHTML.slice(0, 80)),
  );

test('every page renders without script or console errors, every control labelled', async (t) => {
  const pages = {
    events: '/events',
    'monitoring-cluster': '/monitoring?level=cluster&cluster=local',
    'monitoring-workload': '/monitoring?level=workload&cluster=local',
    'monitoring-pod': '/monitoring?level=pod&cluster=local',
    'monitoring-container': '/monitoring?level=container&cluster=local',
    'explore-sql': '/explore?tab=sql',
    'logs-all': '/logs',
    ...Object.fromEntries(['firing', 'silences', 'receivers', 'groups', 'channels', 'templates', 'history', 'inbox'].map((x) => [`alerting-${x}`, `/alerting?tab=${x}`])),
    ...Object.fromEntries(['clusters', 'businesses', 'users', 'roles', 'policies'].map((x) => [`platform-${x}`, `/platform?tab=${x}`])),
  };
  for (const [name, p] of Object.entries(pages)) {
    await page.goto(tw.url + p);
    await page.locator('main h1').waitFor();
    await page.waitForLoadState('networkidle');
    await shot(page, name);
    assert.deepEqual(await unlabelledControls(page), [], `unlabelled controls on ${p}`);
  }
  for (const [p, button] of [['/alerting?tab=policies', 'Create policy'], ['/alerting?tab=channels', 'Create channel'], ['/platform?tab=clusters', 'Create cluster'], ['/alerting?tab=silences', 'Create silence']]) {
    await page.goto(tw.url + p);
    await page.getByRole('button', { name: button }).click();
    await page.getByRole('dialog').waitFor();
    assert.deepEqual(await unlabelledControls(page), [], `unlabelled controls in "${button}"`);
    await page.keyboard.press('Escape');
    await page.getByRole('dialog').waitFor({ state: 'detached' });
  }
  // The browser logs every non-2xx response (the 401 of /me before login, a wrong password, a
  // malformed query); anything else on the console is the app's own error.
  const unexpected = consoleErrors.filter((m) => !/^Failed to load resource: the server responded with a status of \d+/.test(m));
  t.diagnostic(`failed requests logged by the browser: ${consoleErrors.length - unexpected.length}`);
  assert.deepEqual(unexpected, [], 'no console errors besides failed requests');
  assert.deepEqual(pageErrors, [], 'no uncaught script errors');
});
