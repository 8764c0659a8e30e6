// The SDK in a real headless Chromium: loaded with a plain <script type="module">, sending across origins to the
// stand-in collector (CORS preflight, Retry-After read through CORS), and a real sendBeacon on pagehide.
// Skipped when no Chromium is installed; set CHROMIUM_BIN to point at one.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { startCollector } from '../test-support/collector.js';
import { waitFor } from '../test-support/fakes.js';

const SDK_FILE = fileURLToPath(new URL('../src/clickpulse.js', import.meta.url));

function findChromium() {
  const candidates = [process.env.CHROMIUM_BIN];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    for (const name of ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable']) {
      candidates.push(path.join(dir, name));
    }
  }
  return candidates.find((candidate) => candidate && existsSync(candidate)) ?? null;
}

/** @param {string} collectorEndpoint */
function pageHtml(collectorEndpoint) {
  return `<!doctype html>
<title>ClickPulse SDK smoke page</title>
<script type="module">
  import { createClient } from '/clickpulse.js';
  const errors = [];
  const client = createClient({
    endpoint: ${JSON.stringify(collectorEndpoint)}, writeKey: 'wk_test', batchSize: 3, flushIntervalMs: 60000,
    baseBackoffMs: 1, onError: (e) => errors.push(e.code + ': ' + e.message),
  });
  client.identify('browser-user');
  const sent = [client.impression('v1'), client.click('v1', 'play', 0), client.click('v1', 'pause', 3.5)];
  sent.push(client.click('v1', 'like', 4));
  await client.flush();
  const stats = client.stats();
  const beaconed = [client.click('v1', 'next_episode', 1400), client.impression('v2')];
  await fetch('/report', {
    method: 'POST',
    body: JSON.stringify({ sent, beaconed, stats, errors, session: sessionStorage.getItem('clickpulse:session') }),
  });
  location.href = '/next.html';
</script>`;
}

const chromium = findChromium();

test('in Chromium: module script, cross-origin fetch with Retry-After, sendBeacon on pagehide', { skip: chromium === null && 'no Chromium found (set CHROMIUM_BIN)' }, async () => {
  let retryAfterSent = false;
  const collector = await startCollector({
    respond: (request) => {
      if (request.auth === 'header' && !retryAfterSent) {
        retryAfterSent = true;
        return { status: 503, headers: { 'retry-after': '1' }, body: { error: 'busy' } };
      }
      return undefined;
    },
  });
  /** @type {any} */
  let report = null;
  const sdkSource = await readFile(SDK_FILE, 'utf8');
  const site = http.createServer((req, res) => {
    if (req.url === '/clickpulse.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return res.end(sdkSource);
    }
    if (req.url === '/page.html') {
      res.writeHead(200, { 'content-type': 'text/html' });
      return res.end(pageHtml(collector.endpoint));
    }
    if (req.url === '/report' && req.method === 'POST') {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        report = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        res.writeHead(204);
        res.end();
      });
      return undefined;
    }
    res.writeHead(200, { 'content-type': 'text/html' });
    return res.end('<!doctype html><title>next</title>');
  });
  await new Promise((resolve) => site.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = /** @type {import('node:net').AddressInfo} */ (site.address());
  const profile = await mkdtemp(path.join(tmpdir(), 'clickpulse-chromium-'));
  const browser = spawn(/** @type {string} */ (chromium), [
    '--headless=new', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions',
    `--user-data-dir=${profile}`, `http://127.0.0.1:${address.port}/page.html`,
  ], { detached: true, stdio: 'ignore' });
  try {
    const beaconArrived = () => collector.requests.some((r) => r.method === 'POST' && r.auth === 'query');
    await waitFor(() => report !== null && beaconArrived(), 30_000).catch((err) => {
      const seen = collector.requests.map((r) => `${r.method} ${r.auth} ${r.status}`).join(', ');
      throw new Error(`${err.message}; report ${report === null ? 'missing' : 'received'}; collector saw: ${seen}`);
    });

    assert.deepEqual(report.errors, []);
    const posts = collector.requests.filter((r) => r.method === 'POST');
    assert.ok(collector.requests.some((r) => r.method === 'OPTIONS'), 'the browser preflighted the cross-origin POST');

    // Normal path: Authorization header; the first answer was a 503 with Retry-After: 1 that the SDK read.
    const headerPosts = posts.filter((r) => r.auth === 'header');
    assert.equal(headerPosts[0].status, 503);
    assert.ok(headerPosts[1].at - headerPosts[0].at >= 950, 'Retry-After was visible to the page and honoured');
    assert.deepEqual(headerPosts.slice(1).flatMap((r) => r.events), report.sent);
    assert.equal(report.stats.accepted, 4);
    assert.equal(report.stats.retries, 1);

    // Page hide: a real sendBeacon, key in the query string, text/plain body.
    const beacons = posts.filter((r) => r.auth === 'query');
    assert.equal(beacons.length, 1);
    assert.match(beacons[0].contentType ?? '', /^text\/plain/);
    assert.deepEqual(beacons[0].events, report.beaconed);

    const all = [...report.sent, ...report.beaconed];
    assert.deepEqual(collector.acceptedIds, all.map((e) => e.event_id));
    const session = JSON.parse(report.session).id;
    for (const event of all) {
      assert.equal(event.session_id, session, 'the session id lives in sessionStorage');
      assert.equal(event.user_id, 'browser-user');
      assert.match(event.event_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    }
  } finally {
    try {
      process.kill(-(/** @type {number} */ (browser.pid)), 'SIGTERM');
    } catch {
      // already gone
    }
    await new Promise((resolve) => (browser.exitCode !== null ? resolve(undefined) : browser.once('exit', resolve)));
    await rm(profile, { recursive: true, force: true });
    site.closeAllConnections();
    await new Promise((resolve) => site.close(() => resolve(undefined)));
    await collector.close();
  }
});
