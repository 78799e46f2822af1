// Every English key passed to t('…') in src/ has a Simplified Chinese translation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const src = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src');
const files = (dir) => fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : /\.tsx?$/.test(e.name) ? [path.join(dir, e.name)] : []));

/** Keys used literally, plus the dynamic ones built from catalogue titles, levels and nouns. */
function usedKeys() {
  const keys = new Set();
  for (const f of files(src)) {
    const text = fs.readFileSync(f, 'utf8');
    for (const m of text.matchAll(/\bt\('((?:[^'\\]|\\.)*)'/g)) keys.add(m[1].replace(/\\'/g, "'"));
    if (/catalog\.ts$|app\.tsx$/.test(f)) for (const m of text.matchAll(/(?:title|display): '([^']+)'/g)) keys.add(m[1]);
    for (const m of text.matchAll(/noun="([^"]+)"/g)) keys.add(m[1]);
  }
  for (const k of ['Cluster', 'Node', 'Workload', 'Pod', 'Container', 'Namespace', 'Kind', 'Name', 'Type', 'Reason']) keys.add(k);
  return keys;
}

test('every translated key has a zh entry', async () => {
  const zhText = fs.readFileSync(path.join(src, 'i18n-zh.ts'), 'utf8');
  const zhKeys = new Set([...zhText.matchAll(/^\s*(?:'((?:[^'\\]|\\.)*)'|([A-Za-z][\w]*)):/gm)].map((m) => (m[1] ?? m[2]).replace(/\\'/g, "'")));
  const missing = [...usedKeys()].filter((k) => !zhKeys.has(k));
  assert.deepEqual(missing, [], `keys without a zh translation: ${missing.join(' | ')}`);
});
