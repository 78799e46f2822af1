// Helpers for the browser tests: start `tidewatch up` on a free port, push data, drive Chromium.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const screenshotDir = path.join(repoRoot, 'target', 'screenshots');

/** The binary under test: $TIDEWATCH_BIN, else $CARGO_TARGET_DIR/debug/tidewatch. */
export function tidewatchBin() {
  if (process.env.TIDEWATCH_BIN) return process.env.TIDEWATCH_BIN;
  const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache', 'tidewatch-target');
  return path.join(target, 'debug', 'tidewatch');
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `f` until it returns a truthy value or the deadline passes (then throws with the last error). */
export async function until(what, f, timeoutMs = 30000, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await f();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

/**
 * Starts `tidewatch up` with a temp data dir on a free port (or uses $TIDEWATCH_URL when set)
 * and waits for /-/ready. Returns {url, stop}.
 */
export async function startTidewatch() {
  if (process.env.TIDEWATCH_URL) return { url: process.env.TIDEWATCH_URL.replace(/\/$/, ''), stop: async () => {}, logFile: null };
  const bin = tidewatchBin();
  if (!fs.existsSync(bin)) throw new Error(`tidewatch binary not found at ${bin} (build it with cargo build, or set TIDEWATCH_BIN)`);
  const port = await freePort();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tw-e2e-'));
  const logDir = path.join(repoRoot, 'target', 'e2e-logs');
  fs.mkdirSync(logDir, { recursive: true });
  const logFile = path.join(logDir, 'tidewatch-up.log');
  const log = fs.openSync(logFile, 'w');
  const child = spawn(bin, ['up', '--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], { stdio: ['ignore', log, log] });
  let exited = null;
  child.on('exit', (code, sig) => (exited = `exited with ${code ?? sig}`));
  // Never leave the server behind, even when the test process is killed outright: a detached
  // watchdog kills the server once this process is gone (and exits when the server does).
  const watchdog = `const [p, c] = [${process.pid}, ${child.pid}];
    const alive = (x) => { try { process.kill(x, 0); return true; } catch { return false; } };
    setInterval(() => { if (!alive(c)) process.exit(0); if (!alive(p)) { try { process.kill(c, 'SIGKILL'); } catch {} process.exit(0); } }, 500);`;
  spawn(process.execPath, ['-e', watchdog], { detached: true, stdio: 'ignore' }).unref();
  process.once('exit', () => exited || child.kill('SIGKILL'));
  const url = `http://127.0.0.1:${port}`;
  try {
    await until('tidewatch /-/ready', async () => {
      if (exited) throw new Error(`tidewatch ${exited}; see ${logFile}`);
      return (await fetch(`${url}/-/ready`)).ok;
    }, 60000);
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
  const stop = async () => {
    if (exited) return;
    const done = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10000);
    await done;
    clearTimeout(t);
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  return { url, stop, logFile };
}

/** Protobuf varint. */
function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n; // int64 two's complement
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v) b |= 0x80;
    out.push(b);
  } while (v);
  return Buffer.from(out);
}
const field = (num, wire) => varint((num << 3) | wire);
const bytesField = (num, buf) => Buffer.concat([field(num, 2), varint(buf.length), buf]);
const strField = (num, str) => bytesField(num, Buffer.from(str, 'utf8'));
function doubleField(num, x) {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(x);
  return Buffer.concat([field(num, 1), b]);
}

/** A Prometheus remote-write 1.0 `WriteRequest` (labels sorted by name, as the spec requires). */
export function writeRequest(series) {
  const ts = series.map(({ labels, samples }) => {
    const ls = Object.entries(labels)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([k, v]) => bytesField(1, Buffer.concat([strField(1, k), strField(2, v)])));
    const ss = samples.map(([tMs, v]) => bytesField(2, Buffer.concat([doubleField(1, v), field(2, 0), varint(tMs)])));
    return bytesField(1, Buffer.concat([...ls, ...ss]));
  });
  return Buffer.concat(ts);
}

/** Snappy block format using literals only (valid input for any snappy decoder). */
export function snappyLiteral(data) {
  const parts = [varint(data.length)];
  for (let off = 0; off < data.length; off += 65536) {
    const chunk = data.subarray(off, Math.min(data.length, off + 65536));
    const n = chunk.length - 1;
    parts.push(n < 60 ? Buffer.from([n << 2]) : Buffer.from([61 << 2, n & 0xff, n >> 8]), chunk);
  }
  return Buffer.concat(parts);
}

/** Sends series through Prometheus remote-write (`[{labels, samples: [[ms, value]]}]`). */
export async function remoteWrite(url, series, headers = {}) {
  const r = await fetch(`${url}/api/v1/write`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-protobuf', 'Content-Encoding': 'snappy', 'X-Prometheus-Remote-Write-Version': '0.1.0', ...headers },
    body: snappyLiteral(writeRequest(series)),
  });
  if (!r.ok) throw new Error(`remote-write: HTTP ${r.status}: ${await r.text()}`);
}

/** Pushes log lines through the Loki JSON push API. */
export async function pushLogs(url, stream, lines, headers = {}) {
  const body = { streams: [{ stream, values: lines.map(([tsMs, line]) => [`${BigInt(Math.floor(tsMs)) * 1000000n}`, line]) }] };
  const r = await fetch(`${url}/loki/api/v1/push`, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`loki push: HTTP ${r.status}: ${await r.text()}`);
}

/** Launches Debian's Chromium headless with the flags from shared/ENVIRONMENT.md (Playwright gives it a temporary profile). */
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const newContext = () => browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'en-US' });
  return { browser, context: await newContext(), newContext, close: () => browser.close() };
}

/** Saves a full-page screenshot under target/screenshots/. */
export async function shot(page, name) {
  fs.mkdirSync(screenshotDir, { recursive: true });
  const file = path.join(screenshotDir, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
