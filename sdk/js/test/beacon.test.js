// Page hide: the queue goes out through navigator.sendBeacon (write key in the query), with a keepalive fetch fallback.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { BEACON_MAX_BYTES, createClient } from '../src/clickpulse.js';
import { startCollector } from '../test-support/collector.js';
import { accountedFor, callbacks, delay, fakeFetch, fakePage, jsonResponse, memoryStorage, waitFor } from '../test-support/fakes.js';

const KEY = 'wk test/+&key'; // characters that must be escaped in a query string
const ENDPOINT = 'https://collector.test';
const BEACON_URL = `${ENDPOINT}/v1/events?write_key=${encodeURIComponent(KEY)}`;

/** A sendBeacon that records what it is given and answers `accept`. */
function fakeBeacon(accept = true) {
  /** @type {{url: string, data: any}[]} */
  const calls = [];
  return {
    calls,
    /** @param {string} url @param {any} data */
    sendBeacon(url, data) {
      calls.push({ url, data });
      return accept;
    },
    async events() {
      const bodies = await Promise.all(calls.map((c) => c.data.text()));
      return bodies.flatMap((body) => JSON.parse(body));
    },
  };
}

function setup(extra = {}) {
  const page = fakePage();
  const beacon = fakeBeacon(extra.beaconAccepts ?? true);
  const fake = fakeFetch(extra.fetchHandler);
  const cb = callbacks();
  const client = createClient({
    endpoint: ENDPOINT, writeKey: KEY, batchSize: 1000, flushIntervalMs: 60_000, storage: memoryStorage(),
    fetch: fake.fetch, sendBeacon: beacon.sendBeacon, document: page.document, window: page.window,
    ...cb.options, ...extra.options,
  });
  return { page, beacon, fake, cb, client };
}

test('pagehide sends the queue with sendBeacon: text/plain Blob of the JSON array, write key in the query', async () => {
  const { page, beacon, fake, client, cb } = setup();
  const sent = [client.impression('v1'), client.click('v1', 'play', 0), client.click('v1', 'skip_intro', 31)];
  page.pagehide();

  assert.equal(beacon.calls.length, 1);
  assert.equal(beacon.calls[0].url, BEACON_URL);
  assert.ok(beacon.calls[0].data instanceof Blob);
  assert.equal(beacon.calls[0].data.type, 'text/plain;charset=utf-8', 'a CORS-safelisted type: no preflight');
  assert.deepEqual(await beacon.events(), sent);
  assert.equal(fake.calls.length, 0);
  const s = client.stats();
  assert.deepEqual({ beaconed: s.beaconed, queued: s.queued, requests: s.requests }, { beaconed: 3, queued: 0, requests: 1 });
  assert.equal(accountedFor(s), s.tracked);

  page.pagehide();
  assert.equal(beacon.calls.length, 1, 'nothing left to send');
  assert.deepEqual(cb.errors, []);
  client.close();
});

test('visibilitychange to hidden sends the queue; the client keeps working when the page comes back', async () => {
  const { page, beacon, fake, client } = setup();
  const first = [client.impression('v1'), client.click('v1', 'pause', 12)];
  page.show();
  assert.equal(beacon.calls.length, 0, 'visible: no beacon');
  page.hide();
  assert.deepEqual(await beacon.events(), first);

  page.show();
  const second = [client.click('v1', 'play', 12)];
  await client.flush();
  assert.equal(fake.calls.length, 1);
  assert.deepEqual(fake.calls[0].events, second);
  assert.equal(fake.calls[0].init.headers.Authorization, `Bearer ${KEY}`, 'normal requests use the header');
  assert.deepEqual({ beaconed: client.stats().beaconed, accepted: client.stats().accepted }, { beaconed: 2, accepted: 1 });
  client.close();
});

test('a large queue is cut into beacons under the browser limit, in order, each event once', async () => {
  const { page, beacon, client } = setup();
  const sent = [];
  for (let i = 0; i < 12; i += 1) sent.push(client.impression(`v${i}`, { properties: { pad: 'y'.repeat(20_000) } }));
  page.pagehide();
  assert.ok(beacon.calls.length >= 4);
  for (const call of beacon.calls) assert.ok(call.data.size <= BEACON_MAX_BYTES, `beacon of ${call.data.size} bytes`);
  assert.deepEqual(await beacon.events(), sent);
  assert.equal(client.stats().beaconed, 12);
  client.close();
});

test('when sendBeacon refuses, a keepalive fetch to the beacon URL carries the events', async () => {
  const { page, beacon, fake, client, cb } = setup({ beaconAccepts: false });
  const sent = [client.impression('v1'), client.conversion('v1', 'subscribe')];
  page.pagehide();
  assert.equal(beacon.calls.length, 1);
  await waitFor(() => client.stats().inFlight === 0);
  assert.equal(fake.calls.length, 1);
  const { url, init, events } = fake.calls[0];
  assert.equal(url, BEACON_URL);
  assert.equal(init.keepalive, true);
  assert.equal(init.headers['Content-Type'], 'text/plain;charset=UTF-8');
  assert.equal(init.headers.Authorization, undefined, 'no custom header, so no preflight');
  assert.deepEqual(events, sent);
  const s = client.stats();
  assert.deepEqual({ accepted: s.accepted, beaconed: s.beaconed }, { accepted: 2, beaconed: 0 });
  assert.equal(accountedFor(s), s.tracked);
  assert.deepEqual(cb.errors, []);
  client.close();
});

test('without sendBeacon the keepalive fetch is used directly', async () => {
  const { page, fake, client } = setup({ options: { sendBeacon: null } });
  const sent = [client.impression('v1')];
  page.pagehide();
  await waitFor(() => client.stats().accepted === 1);
  assert.equal(fake.calls[0].url, BEACON_URL);
  assert.deepEqual(fake.calls[0].events, sent);
  client.close();
});

test('if the keepalive fallback fails too, the events are reported and put back in the queue', async () => {
  const { page, client, cb } = setup({
    beaconAccepts: false,
    fetchHandler: () => { throw new TypeError('Failed to fetch'); },
  });
  const sent = [client.impression('v1'), client.impression('v2')];
  page.pagehide();
  await waitFor(() => cb.errors.length === 1);
  assert.equal(cb.errors[0].code, 'beacon_failed');
  assert.deepEqual(cb.errors[0].events, sent);
  const s = client.stats();
  assert.deepEqual({ queued: s.queued, inFlight: s.inFlight }, { queued: 2, inFlight: 0 });
  assert.equal(accountedFor(s), s.tracked);
  client.close();
});

test('a batch waiting for a retry is handed to the beacon and not retried afterwards', async () => {
  const { page, beacon, fake, client, cb } = setup({
    fetchHandler: () => jsonResponse(503, { error: 'busy' }),
    options: { baseBackoffMs: 60_000, random: () => 0.5, batchSize: 3 },
  });
  const batch = [client.impression('v1'), client.impression('v2'), client.impression('v3')];
  await waitFor(() => client.stats().retries === 1);
  const later = [client.click('v1', 'like', 5)];
  const flushed = client.flush();

  page.pagehide();
  assert.deepEqual(await beacon.events(), [...batch, ...later], 'the retried batch first, then the queue');
  await flushed; // the loop ends promptly instead of sleeping 30 s
  await delay(20);
  assert.equal(fake.calls.length, 1, 'no retry after the hand-off');
  const s = client.stats();
  assert.deepEqual({ beaconed: s.beaconed, inFlight: s.inFlight, queued: s.queued }, { beaconed: 4, inFlight: 0, queued: 0 });
  assert.equal(accountedFor(s), s.tracked);
  assert.deepEqual(cb.errors, []);
  client.close();
});

test('a request still in flight is handed to the beacon on pagehide, not on a mere tab switch', async () => {
  /** @type {(response: Response) => void} */
  let answerFirst = () => {};
  const { page, beacon, fake, client, cb } = setup({
    fetchHandler: (call, index) => (index === 0
      ? new Promise((resolve) => { answerFirst = resolve; })
      : jsonResponse(200, { accepted: call.events.length, rejected: [] })),
    options: { batchSize: 2 },
  });
  const inFlight = [client.impression('v1'), client.impression('v2')];
  await waitFor(() => fake.calls.length === 1);
  const queued = [client.click('v1', 'share', 9)];

  page.hide();
  assert.deepEqual(await beacon.events(), queued, 'a tab switch sends the queue only');
  page.pagehide();
  assert.equal(beacon.calls.length, 2);
  assert.deepEqual(JSON.parse(await beacon.calls[1].data.text()), inFlight, 'unloading: the in-flight batch too');
  assert.deepEqual({ beaconed: client.stats().beaconed, inFlight: client.stats().inFlight }, { beaconed: 3, inFlight: 0 });

  // The page survived after all (back/forward cache) and the request completes: nothing is counted twice.
  answerFirst(jsonResponse(200, { accepted: 2, rejected: [] }));
  await client.flush();
  await delay(10);
  const s = client.stats();
  assert.deepEqual({ accepted: s.accepted, beaconed: s.beaconed, requests: s.requests }, { accepted: 0, beaconed: 3, requests: 3 });
  assert.equal(accountedFor(s), s.tracked);
  assert.equal(fake.calls.length, 1);
  assert.deepEqual(cb.errors, []);
  client.close();
});

test('close() removes the page listeners', () => {
  const { page, beacon, client } = setup();
  client.impression('v1');
  client.close();
  page.pagehide();
  page.hide();
  assert.equal(beacon.calls.length, 0);
  assert.equal(client.stats().queued, 1);
});

test('end to end: beacons reach the stand-in collector, authorised by the write_key query parameter', async () => {
  for (const [writeKey, expected] of [['wk_test', 200], ['wk_wrong', 401]]) {
    const collector = await startCollector({ writeKeys: ['wk_test'] });
    const page = fakePage();
    /** @type {Promise<Response>[]} */
    const inFlight = [];
    // What a browser does with a beacon: POST the Blob, its type as Content-Type, no Authorization header.
    const sendBeacon = (url, data) => {
      inFlight.push(fetch(url, { method: 'POST', body: data, headers: { 'Content-Type': data.type } }));
      return true;
    };
    const client = createClient({
      endpoint: collector.endpoint, writeKey, batchSize: 1000, flushIntervalMs: 60_000, storage: memoryStorage(),
      sendBeacon, document: page.document, window: page.window, ...callbacks().options,
    });
    try {
      const sent = [client.impression('v1'), client.click('v1', 'next_episode', 1400)];
      page.pagehide();
      const responses = await Promise.all(inFlight);
      assert.deepEqual(responses.map((r) => r.status), [expected]);
      assert.equal(collector.requests.length, 1);
      const [request] = collector.requests;
      assert.equal(request.contentType, 'text/plain;charset=utf-8');
      if (expected === 200) {
        assert.equal(request.auth, 'query');
        assert.deepEqual(request.events, sent);
        assert.deepEqual(collector.acceptedIds, sent.map((e) => e.event_id));
      } else {
        assert.equal(request.auth, null);
        assert.deepEqual(collector.acceptedIds, []);
      }
    } finally {
      client.close();
      await collector.close();
    }
  }
});
