// Batching by size and by time, the bounded queue, the 500 KB request split, close().
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MAX_REQUEST_BYTES, createClient } from '../src/clickpulse.js';
import { startCollector } from '../test-support/collector.js';
import { accountedFor, callbacks, delay, fakeFetch, memoryStorage, waitFor } from '../test-support/fakes.js';

const KEY = 'wk_test';
const base = () => ({ writeKey: KEY, storage: memoryStorage(), document: null, window: null });

test('a full batch is sent at once; the remainder waits for the timer or flush()', async () => {
  const cb = callbacks();
  const fake = fakeFetch();
  const client = createClient({
    ...base(), ...cb.options, endpoint: 'https://collector.test', fetch: fake.fetch, batchSize: 5, flushIntervalMs: 60_000,
  });
  const sent = [];
  for (let i = 0; i < 12; i += 1) sent.push(client.click(`vid-${i % 3}`, 'like', i));
  await waitFor(() => fake.calls.length === 2);
  await delay(20);
  assert.equal(fake.calls.length, 2, 'no request for the 2 events short of a batch');
  assert.deepEqual(fake.calls.map((c) => c.events.length), [5, 5]);
  assert.equal(client.stats().queued, 2);

  await client.flush();
  assert.deepEqual(fake.calls.map((c) => c.events.length), [5, 5, 2]);
  assert.deepEqual(fake.calls.flatMap((c) => c.events), sent, 'every event once, in order');
  const s = client.stats();
  assert.deepEqual(
    { tracked: s.tracked, sent: s.sent, accepted: s.accepted, queued: s.queued, requests: s.requests, retries: s.retries },
    { tracked: 12, sent: 12, accepted: 12, queued: 0, requests: 3, retries: 0 },
  );
  assert.equal(accountedFor(s), s.tracked);
  assert.deepEqual(cb.errors, []);
  client.close();
});

test('events below the batch size are sent by the timer, one request per interval', async () => {
  const collector = await startCollector();
  const cb = callbacks();
  const client = createClient({
    ...base(), ...cb.options, endpoint: collector.endpoint, batchSize: 100, flushIntervalMs: 40,
  });
  try {
    const started = performance.now();
    const first = [client.impression('v1'), client.click('v1', 'play', 0), client.click('v1', 'pause', 4.2)];
    assert.equal(collector.requests.length, 0, 'nothing is sent synchronously');
    await waitFor(() => collector.requests.length === 1);
    assert.ok(collector.requests[0].at - started >= 35, 'sent after the interval, not before');
    assert.deepEqual(collector.requests[0].events, first);

    const second = [client.click('v2', 'seek_forward', 10)];
    await waitFor(() => collector.requests.length === 2);
    assert.deepEqual(collector.requests[1].events, second);
    assert.deepEqual(collector.acceptedIds, [...first, ...second].map((e) => e.event_id));
    assert.ok(collector.requests.every((r) => r.auth === 'header'));
    await waitFor(() => client.stats().accepted === 4);
    assert.equal(accountedFor(client.stats()), 4);
  } finally {
    client.close();
    await collector.close();
  }
});

test('the queue is bounded: the oldest events are dropped and reported through onDrop', async () => {
  const collector = await startCollector();
  const cb = callbacks();
  const client = createClient({
    ...base(), ...cb.options, endpoint: collector.endpoint, batchSize: 1000, flushIntervalMs: 60_000, maxQueue: 10,
  });
  try {
    const sent = [];
    for (let i = 0; i < 15; i += 1) sent.push(client.click('v', 'like', i));
    assert.deepEqual(cb.drops, [1, 1, 1, 1, 1]);
    assert.deepEqual(cb.droppedEvents, sent.slice(0, 5), 'the five oldest were dropped');
    assert.equal(client.stats().dropped, 5);
    assert.equal(client.stats().queued, 10);

    await client.flush();
    assert.deepEqual(collector.acceptedIds, sent.slice(5).map((e) => e.event_id), 'the newest ten were delivered');
    const s = client.stats();
    assert.equal(s.tracked, 15);
    assert.equal(s.accepted, 10);
    assert.equal(accountedFor(s), s.tracked);
  } finally {
    client.close();
    await collector.close();
  }
});

test('requests are split to stay under 500 KB and every event arrives exactly once', async () => {
  const collector = await startCollector();
  const cb = callbacks();
  const client = createClient({
    ...base(), ...cb.options, endpoint: collector.endpoint, batchSize: 500, flushIntervalMs: 60_000,
  });
  try {
    const sent = [];
    let totalBytes = 0;
    for (let i = 0; i < 60; i += 1) {
      // ~30 KB each, with varying sizes: 60 of them make about 1.8 MB.
      const event = client.impression(`v${i}`, { properties: { blob: 'x'.repeat(25_000 + (i % 7) * 700) } });
      sent.push(event);
      totalBytes += Buffer.byteLength(JSON.stringify(event));
    }
    await client.flush();

    assert.ok(collector.requests.length >= Math.ceil(totalBytes / MAX_REQUEST_BYTES));
    for (const request of collector.requests) {
      assert.equal(request.status, 200);
      assert.ok(request.bytes <= MAX_REQUEST_BYTES, `request of ${request.bytes} bytes is over the budget`);
    }
    // Greedy packing: a request plus the next event would have crossed the budget.
    for (let i = 0; i + 1 < collector.requests.length; i += 1) {
      const nextEvent = collector.requests[i + 1].events[0];
      assert.ok(collector.requests[i].bytes + 1 + Buffer.byteLength(JSON.stringify(nextEvent)) > MAX_REQUEST_BYTES);
    }
    assert.deepEqual(collector.acceptedIds, sent.map((e) => e.event_id));
    const s = client.stats();
    assert.equal(s.accepted, 60);
    assert.equal(s.requests, collector.requests.length);
    assert.equal(accountedFor(s), s.tracked);
    assert.deepEqual(cb.errors, []);
  } finally {
    client.close();
    await collector.close();
  }
});

test('close() stops the timer; queued events stay queued and later track() calls are reported', async () => {
  const cb = callbacks();
  const fake = fakeFetch();
  const client = createClient({
    ...base(), ...cb.options, endpoint: 'https://collector.test', fetch: fake.fetch, batchSize: 100, flushIntervalMs: 20,
  });
  client.impression('v');
  client.close();
  await delay(80);
  assert.equal(fake.calls.length, 0, 'the flush timer did not fire after close()');
  assert.equal(client.stats().queued, 1);

  assert.equal(client.impression('v'), null);
  assert.equal(cb.errors.length, 1);
  assert.equal(cb.errors[0].code, 'client_closed');
  assert.equal(client.stats().tracked, 1);
});

test('flush() with nothing queued resolves at once without a request', async () => {
  const fake = fakeFetch();
  const client = createClient({ ...base(), endpoint: 'https://collector.test', fetch: fake.fetch });
  const s = await client.flush();
  assert.equal(s.requests, 0);
  assert.equal(fake.calls.length, 0);
  client.close();
});
