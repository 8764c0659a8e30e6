// Delivery: retries with backoff, Retry-After, no retry on other 4xx, retries exhausted, per-event rejections.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { backoffDelay, createClient, parseRetryAfter } from '../src/clickpulse.js';
import { startCollector } from '../test-support/collector.js';
import { accountedFor, callbacks, fakeFetch, jsonResponse, memoryStorage } from '../test-support/fakes.js';

const KEY = 'wk_test';
const base = () => ({
  writeKey: KEY, storage: memoryStorage(), document: null, window: null, batchSize: 1000, flushIntervalMs: 60_000,
});

/** @param {ReturnType<typeof createClient>} client */
function trackSome(client, n, videoId = 'v') {
  const sent = [];
  for (let i = 0; i < n; i += 1) sent.push(client.click(videoId, i % 2 ? 'play' : 'pause', i * 1.5));
  return sent;
}

test('503 is retried with backoff until accepted; every event id is accepted exactly once', async () => {
  const failures = 3;
  const collector = await startCollector({
    respond: (request) => (request.index < failures ? { status: 503, body: { error: 'kafka unavailable' } } : undefined),
  });
  const cb = callbacks();
  const client = createClient({
    ...base(), ...cb.options, endpoint: collector.endpoint, baseBackoffMs: 20, batchSize: 8,
  });
  try {
    const sent = trackSome(client, 20);
    const sentIds = sent.map((e) => e.event_id);
    await client.flush();

    // The server saw the failed batch several times, but dedupe by event_id gives exactly what was sent.
    const seen = collector.seenIds();
    assert.ok(seen.length > sentIds.length, 'the 503 answers caused resends');
    assert.deepEqual([...new Set(seen)].sort(), [...sentIds].sort());
    assert.deepEqual([...collector.acceptedIds].sort(), [...sentIds].sort(), 'each id accepted exactly once');
    // Resends carry the same ids: the first batch of 8 was posted failures + 1 times.
    const firstBatch = collector.requests[0].events.map((e) => e.event_id);
    for (let i = 1; i <= failures; i += 1) {
      assert.deepEqual(collector.requests[i].events.map((e) => e.event_id), firstBatch);
    }
    const s = client.stats();
    assert.deepEqual(
      { tracked: s.tracked, accepted: s.accepted, sent: s.sent, retries: s.retries, requests: s.requests, failed: s.failed },
      { tracked: 20, accepted: 20, sent: 20, retries: failures, requests: collector.requests.length, failed: 0 },
    );
    assert.equal(collector.requests.length, failures + Math.ceil(20 / 8));
    assert.equal(accountedFor(s), s.tracked);
    assert.deepEqual(cb.errors, []);
  } finally {
    client.close();
    await collector.close();
  }
});

test('backoff is exponential with full jitter', async () => {
  const delays = [];
  const fake = fakeFetch((call, index) => {
    delays.push(call.at);
    return index < 4 ? jsonResponse(500, { error: 'boom' }) : jsonResponse(200, { accepted: 1, rejected: [] });
  });
  const client = createClient({
    ...base(), endpoint: 'https://collector.test', fetch: fake.fetch, baseBackoffMs: 40, maxBackoffMs: 10_000,
    random: () => 0.999, // the top of each jitter window: waits of ~40, 80, 160, 320 ms
  });
  client.impression('v');
  await client.flush();
  const gaps = delays.slice(1).map((at, i) => at - delays[i]);
  const expected = [40, 80, 160, 320].map((ms) => Math.floor(0.999 * ms));
  // Timers never fire early (1 ms of rounding aside); a busy machine may only make them late.
  gaps.forEach((gap, i) => assert.ok(gap >= expected[i] - 2, `gap ${i}: ${gap} ms, expected >= ${expected[i]}`));
  assert.equal(client.stats().retries, 4);

  // The schedule itself, exactly: uniform below min(max, base * 2^attempt).
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, 500, 10_000, () => 0.999)), [499, 999, 1998, 3996, 7992, 9990]);
  assert.deepEqual([0, 3, 9].map((n) => backoffDelay(n, 500, 10_000, () => 0)), [0, 0, 0]);
  assert.equal(backoffDelay(2, 500, 10_000, () => 0.5), 1000);

  // random() = 0: full jitter may retry at once.
  const fast = fakeFetch((call, index) => (index < 3 ? jsonResponse(502, {}) : jsonResponse(200, { accepted: 1, rejected: [] })));
  const eager = createClient({
    ...base(), endpoint: 'https://collector.test', fetch: fast.fetch, baseBackoffMs: 5_000, random: () => 0,
  });
  eager.impression('v');
  const started = performance.now();
  await eager.flush();
  assert.ok(performance.now() - started < 2_500, "random() = 0 means no wait, not baseBackoffMs");
  assert.equal(eager.stats().accepted, 1);
  client.close();
  eager.close();
});

test('network errors are retried', async () => {
  const fake = fakeFetch((call, index) => {
    if (index < 2) throw new TypeError('Failed to fetch');
    return jsonResponse(200, { accepted: call.events.length, rejected: [] });
  });
  const cb = callbacks();
  const client = createClient({ ...base(), ...cb.options, endpoint: 'https://collector.test', fetch: fake.fetch, baseBackoffMs: 5 });
  const sent = trackSome(client, 3);
  await client.flush();
  assert.equal(fake.calls.length, 3);
  for (const call of fake.calls) assert.deepEqual(call.events, sent);
  assert.deepEqual({ accepted: client.stats().accepted, retries: client.stats().retries }, { accepted: 3, retries: 2 });
  assert.deepEqual(cb.errors, []);
  client.close();
});

test('Retry-After on 429 is honoured instead of the computed backoff', async () => {
  const collector = await startCollector({
    respond: (request) => (request.index === 0
      ? { status: 429, headers: { 'retry-after': '1' }, body: { error: 'slow down' } }
      : undefined),
  });
  const client = createClient({ ...base(), endpoint: collector.endpoint, baseBackoffMs: 1, ...callbacks().options });
  try {
    const sent = trackSome(client, 4);
    await client.flush();
    assert.equal(collector.requests.length, 2);
    const waited = collector.requests[1].at - collector.requests[0].at;
    assert.ok(waited >= 990, `retried after ${waited} ms, Retry-After said 1 s`);
    assert.ok(waited < 3_000, `retried after ${waited} ms`);
    assert.deepEqual(collector.acceptedIds, sent.map((e) => e.event_id));
    assert.equal(client.stats().retries, 1);
  } finally {
    client.close();
    await collector.close();
  }
});

test('Retry-After on 503 is honoured, in seconds or as an HTTP date, and capped', async () => {
  const fake = fakeFetch((call, index) => (index === 0
    ? jsonResponse(503, {}, { 'Retry-After': '0.15' })
    : jsonResponse(200, { accepted: call.events.length, rejected: [] })));
  const client = createClient({ ...base(), endpoint: 'https://collector.test', fetch: fake.fetch, baseBackoffMs: 1 });
  client.impression('v');
  await client.flush();
  assert.ok(fake.calls[1].at - fake.calls[0].at >= 145);
  client.close();

  const now = Date.UTC(2025, 0, 1);
  assert.equal(parseRetryAfter('120', now), 120_000);
  assert.equal(parseRetryAfter(new Date(now + 5_000).toUTCString(), now), 5_000);
  assert.equal(parseRetryAfter(new Date(now - 5_000).toUTCString(), now), 0);
  assert.equal(parseRetryAfter('soon', now), null);
  assert.equal(parseRetryAfter(null, now), null);

  const capped = fakeFetch((call, index) => (index === 0
    ? jsonResponse(503, {}, { 'Retry-After': '3600' })
    : jsonResponse(200, { accepted: 1, rejected: [] })));
  const patient = createClient({
    ...base(), endpoint: 'https://collector.test', fetch: capped.fetch, maxRetryAfterMs: 50,
  });
  patient.impression('v');
  await patient.flush();
  assert.ok(capped.calls[1].at - capped.calls[0].at < 5_000, 'an hour-long Retry-After is capped at maxRetryAfterMs');
  patient.close();
});

for (const status of [400, 401]) {
  test(`HTTP ${status} is not retried and is reported through onError with the response body`, async () => {
    const collector = await startCollector({
      writeKeys: ['the-right-key'],
      respond: () => (status === 400 ? { status: 400, body: { error: 'malformed batch' } } : undefined),
    });
    const cb = callbacks();
    const client = createClient({
      ...base(), ...cb.options, endpoint: collector.endpoint, baseBackoffMs: 1,
      writeKey: status === 401 ? 'a-wrong-key' : 'the-right-key',
    });
    try {
      const sent = trackSome(client, 5);
      await client.flush();
      assert.equal(collector.requests.length, 1, 'exactly one attempt');
      assert.equal(collector.requests[0].status, status);
      assert.equal(cb.errors.length, 1);
      const [error] = cb.errors;
      assert.equal(error.code, 'http_error');
      assert.equal(error.status, status);
      assert.deepEqual(error.body, { error: status === 400 ? 'malformed batch' : 'missing or invalid write key' });
      assert.deepEqual(error.events, sent);
      const s = client.stats();
      assert.deepEqual({ failed: s.failed, retries: s.retries, accepted: s.accepted }, { failed: 5, retries: 0, accepted: 0 });
      assert.equal(accountedFor(s), s.tracked);
    } finally {
      client.close();
      await collector.close();
    }
  });
}

test('after maxRetries the batch is reported as failed, not silently dropped', async () => {
  const collector = await startCollector({ respond: () => ({ status: 503, body: { error: 'down' } }) });
  const cb = callbacks();
  const client = createClient({ ...base(), ...cb.options, endpoint: collector.endpoint, baseBackoffMs: 2, maxRetries: 2 });
  try {
    const sent = trackSome(client, 3);
    await client.flush();
    assert.equal(collector.requests.length, 3, 'one attempt and two retries');
    assert.equal(cb.errors.length, 1);
    assert.equal(cb.errors[0].code, 'retries_exhausted');
    assert.equal(cb.errors[0].status, 503);
    assert.deepEqual(cb.errors[0].events, sent);
    const s = client.stats();
    assert.deepEqual({ failed: s.failed, retries: s.retries }, { failed: 3, retries: 2 });
    assert.equal(accountedFor(s), s.tracked);
  } finally {
    client.close();
    await collector.close();
  }
});

test('per-event rejections in a 200 answer go to onRejected with the event; the rest count as accepted', async () => {
  const collector = await startCollector();
  const cb = callbacks();
  const client = createClient({ ...base(), ...cb.options, endpoint: collector.endpoint });
  try {
    const good = [client.impression('v1'), client.click('v1', 'play', 1)];
    // event_time is the caller's to set, and the SDK does not parse it; the collector refuses this one.
    const bad = client.track({ event_type: 'impression', video_id: 'v2', event_time: 'yesterday' });
    const last = client.conversion('v1', 'purchase');
    await client.flush();

    assert.deepEqual(collector.acceptedIds, [...good, last].map((e) => e.event_id));
    assert.equal(cb.rejections.length, 1);
    assert.deepEqual(cb.rejections[0], [{ index: 2, error: 'event_time must be RFC 3339', event: bad }]);
    const s = client.stats();
    assert.deepEqual({ sent: s.sent, accepted: s.accepted, rejected: s.rejected, failed: s.failed }, { sent: 4, accepted: 3, rejected: 1, failed: 0 });
    assert.equal(accountedFor(s), s.tracked);
  } finally {
    client.close();
    await collector.close();
  }
});

test('a throwing callback does not break delivery', async () => {
  const errors = [];
  const fake = fakeFetch((call) => jsonResponse(200, { accepted: 0, rejected: call.events.map((_, index) => ({ index, error: 'nope' })) }));
  const client = createClient({
    ...base(), endpoint: 'https://collector.test', fetch: fake.fetch,
    onRejected: () => { throw new Error('app bug'); },
    onError: (error) => errors.push(error),
  });
  client.impression('v');
  await client.flush();
  client.impression('v');
  await client.flush();
  assert.equal(fake.calls.length, 2);
  assert.deepEqual(errors.map((e) => e.code), ['callback_failed', 'callback_failed']);
  assert.equal(client.stats().rejected, 2);
  client.close();
});

test('a request that hangs is aborted after requestTimeoutMs and retried', async () => {
  const fake = fakeFetch((call, index) => {
    if (index > 0) return jsonResponse(200, { accepted: 1, rejected: [] });
    return new Promise((resolve, reject) => {
      call.init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    });
  });
  const client = createClient({ ...base(), endpoint: 'https://collector.test', fetch: fake.fetch, requestTimeoutMs: 30, baseBackoffMs: 1 });
  client.impression('v');
  await client.flush();
  assert.equal(fake.calls.length, 2);
  assert.ok(fake.calls[1].at - fake.calls[0].at >= 25);
  assert.deepEqual({ accepted: client.stats().accepted, retries: client.stats().retries }, { accepted: 1, retries: 1 });
  client.close();
});
