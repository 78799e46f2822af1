// Unit tests of the console's pure logic (compiled from src/ with esbuild, which Vite already ships).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const src = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');
const entry = ['units', 'timerange', 'logql', 'quota', 'template', 'policy', 'catalog', 'api/prom', 'api/sql']
  .map((m) => `export * as ${m.replace('/', '_')} from ${JSON.stringify(path.join(src, m + '.ts'))};`)
  .join('\n');
const out = await build({ stdin: { contents: entry, resolveDir: src, loader: 'ts' }, bundle: true, format: 'esm', platform: 'node', write: false, logLevel: 'silent' });
const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tw-logic-')), 'logic.mjs');
fs.writeFileSync(file, out.outputFiles[0].text);
const m = await import(file);

test('values are formatted with their units', () => {
  const { fmt } = m.units;
  assert.equal(fmt(93.456, 'percent'), '93.5 %');
  assert.equal(fmt(1536, 'bytes'), '1.50 KiB');
  assert.equal(fmt(5 * 1024 ** 3, 'bytes'), '5.00 GiB');
  assert.equal(fmt(2.5e6, 'Bps'), '2.38 MiB/s');
  assert.equal(fmt(0.25, 'cores'), '0.250 cores');
  assert.equal(fmt(null, 'bytes'), '–');
  assert.equal(fmt(Infinity), '+Inf');
});

test('time ranges resolve and pick a step near the wanted point count', () => {
  const { resolve, stepFor, fromParams, toParams } = m.timerange;
  const r = resolve({ preset: '6h' });
  assert.equal(r.end - r.start, 21600);
  assert.deepEqual(resolve({ from: 100, to: 200 }), { start: 100, end: 200 });
  assert.equal(stepFor(0, 3600, 240), 15);
  assert.equal(stepFor(0, 604800, 240), 3600);
  assert.equal(stepFor(0, 60, 240), 1);
  assert.deepEqual(fromParams(new URLSearchParams('from=10&to=20')), { from: 10, to: 20 });
  assert.deepEqual(fromParams(new URLSearchParams('from=20&to=10')), { preset: '1h' }, 'an inverted range falls back');
  assert.deepEqual(toParams({ preset: '24h' }), { range: '24h', from: undefined, to: undefined });
});

test('LogQL is built from picked labels and search text, and filters are highlighted', () => {
  const { buildLogQL, highlightPattern, volumeQuery } = m.logql;
  assert.equal(buildLogQL({ namespace: 'shop', pod: '', container: 'app' }, 'say "hi"'), '{namespace="shop",container="app"} |= "say \\"hi\\""');
  assert.equal(buildLogQL({}, ''), '{cluster_id=~".+"}');
  assert.equal(volumeQuery('{a="b"} |= "x"', 60), 'sum(count_over_time({a="b"} |= "x" [60s]))');
  const re = highlightPattern('{a="b"} |= "a.b" |~ `err(or)?` != "skip"');
  assert.deepEqual('xa.b aXb ERROR skip'.match(re), ['a.b', 'ERROR']);
  assert.equal(highlightPattern('{a="b"}'), null);
});

test('Kubernetes quantities and quota rows', () => {
  const { quantity, quotaRows } = m.quota;
  assert.equal(quantity('500m'), 0.5);
  assert.equal(quantity('4Gi'), 4 * 1024 ** 3);
  assert.equal(quantity(3), 3);
  assert.equal(quantity('abc'), undefined);
  const byMap = quotaRows({ quotas: { local: { hard: { pods: '10' }, used: { pods: '4' } } } });
  assert.deepEqual(byMap, [{ cluster: 'local', key: 'pods', hard: '10', used: '4' }]);
  const byList = quotaRows({ quotas: [{ cluster_id: 'c1', hard: { 'requests.cpu': '2' } }] });
  assert.deepEqual(byList, [{ cluster: 'c1', key: 'requests.cpu', hard: '2', used: undefined }]);
});

test('template preview fills Go and Jinja placeholders and keeps unknown ones', () => {
  const { renderTemplate } = m.template;
  assert.equal(renderTemplate('[{{ status }}] {{.alarmPolicyName}} {{ nope }}', { status: 'firing', alarmPolicyName: 'p' }), '[firing] p {{ nope }}');
});

test('alarm policies compile like TKEStack: filter, operator, boolean thresholds, for = period x continue', () => {
  const { preview, toPolicy } = m.policy;
  const p = toPolicy({
    name: 'p', type: 'pod', cluster_id: 'c1', statistics_period: 60, namespace: 'shop', workload_type: 'Deployment', objects_type: 'part', objects: ['web', 'api'],
    metrics: [
      { metric_name: 'k8s_pod_rate_cpu_core_used_limit', evaluator: { type: 'gt', value: '90' }, continue_period: 5 },
      { metric_name: 'k8s_pod_status_ready', evaluator: { type: 'eq', value: 'false' }, continue_period: 2 },
    ],
  });
  assert.equal(p.mode, 'template');
  assert.deepEqual(preview(p), [
    'k8s_pod_rate_cpu_core_used_limit{cluster_id="c1",namespace="shop",workload_kind="Deployment",workload_name=~"web|api"} > 90  for 300s',
    'k8s_pod_status_ready{cluster_id="c1",namespace="shop",workload_kind="Deployment",workload_name=~"web|api"} == 0  for 120s',
  ]);
  const node = toPolicy({ name: 'n', type: 'node', cluster_id: '', statistics_period: 120, metrics: [{ metric_name: 'k8s_node_cpu_usage', evaluator: { type: 'lt', value: '5' }, continue_period: 1 }] });
  assert.deepEqual(preview(node), ['k8s_node_cpu_usage < 5  for 120s']);
});

test('every monitoring level has charts from the k8s_* catalogue and selects its object', () => {
  const { CHARTS, LEVELS, matchers } = m.catalog;
  for (const l of LEVELS) {
    assert.ok(CHARTS[l].length >= 4, `${l} has charts`);
    for (const c of CHARTS[l]) for (const n of c.metrics) assert.match(n, /^k8s_(cluster|node|workload|pod|container)_\w+$/);
  }
  assert.deepEqual(matchers('container', { cluster: 'c', namespace: 'n', pod: 'p', container: 'x' }), { cluster_id: 'c', namespace: 'n', pod_name: 'p', container_name: 'x' });
});

test('PromQL selectors escape values', () => {
  const { selector, esc, seriesName } = m.api_prom;
  assert.equal(esc('a"b\\c'), 'a\\"b\\\\c');
  assert.equal(selector({ a: 'x', b: '', c: undefined, d: 'q"' }), '{a="x",d="q\\""}');
  assert.equal(seriesName({ __name__: 'up', job: 'j' }), 'up{job="j"}');
});
