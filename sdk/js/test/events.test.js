// Event construction: ids, timestamps, sessions, identity, defaults, validation, the per-event size limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { MAX_EVENT_BYTES, createClient, utf8Length, uuid4 } from '../src/clickpulse.js';
import { startCollector } from '../test-support/collector.js';
import { UUID_V4, accountedFor, callbacks, fakeFetch, manualClock, memoryStorage } from '../test-support/fakes.js';

const ENDPOINT = 'https://collector.test';
const KEY = 'wk_test';

/** A client that never sends on its own during the test (large batch, long interval). */
function quietClient(extra = {}) {
  const cb = callbacks();
  const fake = fakeFetch();
  const client = createClient({
    endpoint: ENDPOINT, writeKey: KEY, batchSize: 1000, flushIntervalMs: 60_000,
    fetch: fake.fetch, storage: memoryStorage(), document: null, window: null, ...cb.options, ...extra,
  });
  return { client, cb, fake };
}

test('track fills event_id, event_time, session_id and user_id and keeps extra fields', async () => {
  const clock = manualClock();
  const { client, fake } = quietClient({ now: clock.now, appVersion: '3.2.1', device: 'web' });
  client.identify('user-42');
  const sent = [
    client.click('vid-1', 'play', 12.5, { surface: 'player', properties: { theme: 'dark' }, custom_field: 7 }),
    client.impression('vid-2', { rec_slot: 3, model_version: 'm-7' }),
    client.conversion('vid-1', 'subscribe'),
  ];
  await client.flush();

  const received = fake.calls.flatMap((c) => c.events);
  assert.deepEqual(received, sent, 'the collector receives exactly the events track() returned');
  const ids = new Set(received.map((e) => e.event_id));
  assert.equal(ids.size, sent.length, 'event ids are unique');
  for (const event of received) {
    assert.match(event.event_id, UUID_V4);
    assert.equal(event.event_time, new Date(clock.now()).toISOString());
    assert.equal(event.user_id, 'user-42');
    assert.equal(event.app_version, '3.2.1');
    assert.equal(event.device, 'web');
    assert.equal(event.session_id, received[0].session_id, 'one session for events close together');
  }
  assert.deepEqual(
    { ...received[0], event_id: 0, event_time: 0, session_id: 0 },
    {
      event_id: 0, event_time: 0, session_id: 0, event_type: 'click', video_id: 'vid-1', button_id: 'play',
      playback_position_s: 12.5, surface: 'player', properties: { theme: 'dark' }, custom_field: 7,
      user_id: 'user-42', app_version: '3.2.1', device: 'web',
    },
  );
  assert.equal(received[1].rec_slot, 3);
  assert.equal(received[2].conversion_type, 'subscribe');
  assert.equal(fake.calls[0].init.headers.Authorization, `Bearer ${KEY}`);
  assert.equal(fake.calls[0].url, `${ENDPOINT}/v1/events`);
  client.close();
});

test('fields the caller sets win over the SDK defaults, and the input object is not modified', () => {
  const { client } = quietClient({ appVersion: '1.0.0', device: 'web' });
  client.identify('user-1');
  const input = {
    event_type: 'impression', video_id: 'v', event_id: 'caller-id', event_time: '2025-01-01T00:00:00Z',
    session_id: 'caller-session', user_id: 'caller-user', app_version: '9.9.9', device: 'tv',
  };
  const copy = { ...input };
  const event = client.track(input);
  assert.deepEqual(event, copy);
  assert.deepEqual(input, copy, 'track() works on a copy');
  client.close();
});

test('session id: generated once, shared through storage, renewed after the idle timeout', () => {
  const clock = manualClock();
  const storage = memoryStorage();
  const idle = 30 * 60 * 1000;
  const { client } = quietClient({ now: clock.now, storage, sessionIdleMs: idle });
  const first = client.impression('v').session_id;
  assert.match(first, UUID_V4);

  clock.advance(idle - 1);
  assert.equal(client.impression('v').session_id, first, 'activity within the idle window keeps the session');
  clock.advance(idle - 1);
  assert.equal(client.impression('v').session_id, first, 'each event extends the session');

  // A second client on the same storage (a reload in the same tab) continues the session.
  const { client: reloaded } = quietClient({ now: clock.now, storage, sessionIdleMs: idle });
  assert.equal(reloaded.impression('v').session_id, first);

  clock.advance(idle + 1);
  const renewed = client.impression('v').session_id;
  assert.notEqual(renewed, first, 'a new session after more than sessionIdleMs without events');
  assert.match(renewed, UUID_V4);
  assert.equal(client.impression('v').session_id, renewed);
  assert.equal(JSON.parse(storage.getItem('clickpulse:session')).id, renewed, 'the session lives in storage');
  client.close();
  reloaded.close();
});

test('session id works without usable storage', () => {
  const throwing = {
    getItem() { throw new Error('SecurityError'); },
    setItem() { throw new Error('QuotaExceededError'); },
  };
  const { client } = quietClient({ storage: throwing });
  const a = client.impression('v');
  const b = client.impression('v');
  assert.match(a.session_id, UUID_V4);
  assert.equal(a.session_id, b.session_id);
  client.close();
});

test('without identify() events carry a stable anonymous user id; identify(null) returns to it', () => {
  const { client } = quietClient();
  const anonymous = client.impression('v').user_id;
  assert.match(anonymous, /^anon-[0-9a-f-]{36}$/);
  assert.equal(client.impression('v').user_id, anonymous);
  client.identify('user-7');
  assert.equal(client.impression('v').user_id, 'user-7');
  client.identify(null);
  assert.equal(client.impression('v').user_id, anonymous);
  assert.throws(() => client.identify(''), TypeError);
  assert.throws(() => client.identify(/** @type {any} */ (42)), TypeError);
  client.close();
});

test('uuid4 falls back to getRandomValues, then to the random source, and stays a v4 UUID', () => {
  const viaRandomValues = new Set();
  const viaRandom = new Set();
  let seed = 1;
  const lcg = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  for (let i = 0; i < 200; i += 1) {
    viaRandomValues.add(uuid4({ crypto: { getRandomValues: globalThis.crypto.getRandomValues.bind(globalThis.crypto) } }));
    viaRandom.add(uuid4({ crypto: null, random: lcg }));
  }
  for (const id of [...viaRandomValues, ...viaRandom]) assert.match(id, UUID_V4);
  assert.equal(viaRandomValues.size, 200);
  assert.equal(viaRandom.size, 200);
});

test('programming errors throw a TypeError naming the field, and nothing is queued', () => {
  const { client } = quietClient();
  const cases = [
    [() => client.track(/** @type {any} */ (null)), /event must be an object/],
    [() => client.track(/** @type {any} */ ({ event_type: 'hover', video_id: 'v' })), /event_type must be one of click, impression, conversion \(got "hover"\)/],
    [() => client.track(/** @type {any} */ ({ event_type: 'impression' })), /video_id must be a non-empty string/],
    [() => client.impression(''), /video_id/],
    [() => client.click('v', /** @type {any} */ (undefined), 3), /a click needs button_id/],
    [() => client.click('v', 'play', -1), /playback_position_s, a finite number >= 0 \(got -1\)/],
    [() => client.click('v', 'play', Number.NaN), /playback_position_s/],
    [() => client.click('v', 'play', /** @type {any} */ ('12')), /playback_position_s/],
    [() => client.track(/** @type {any} */ ({ event_type: 'impression', video_id: 'v', event_id: 5 })), /event_id must be a non-empty string/],
    [() => client.impression('v', /** @type {any} */ ('extra')), /extra must be an object/],
    [() => client.impression('v', { properties: { n: 10n } }), /not JSON-serialisable/],
  ];
  for (const [call, message] of cases) assert.throws(call, (err) => err instanceof TypeError && message.test(err.message));
  assert.equal(client.stats().tracked, 0);
  assert.equal(client.stats().queued, 0);
  client.close();
});

test('createClient rejects bad options with a TypeError', () => {
  assert.throws(() => createClient(/** @type {any} */ (undefined)), TypeError);
  assert.throws(() => createClient(/** @type {any} */ ({ writeKey: KEY, fetch: fakeFetch().fetch })), /endpoint/);
  assert.throws(() => createClient(/** @type {any} */ ({ endpoint: ENDPOINT, fetch: fakeFetch().fetch })), /writeKey/);
  assert.throws(() => createClient({ endpoint: ENDPOINT, writeKey: KEY, fetch: fakeFetch().fetch, batchSize: 0 }), /batchSize/);
  assert.throws(() => createClient({ endpoint: ENDPOINT, writeKey: KEY, fetch: /** @type {any} */ (null) }), /fetch/);
});

/** Pad an impression so that its JSON is exactly `bytes` long (multi-byte characters included). */
function impressionOfSize(bytes) {
  const base = { event_type: 'impression', video_id: 'v', properties: { pad: '' } };
  const filled = {
    ...base, event_id: '00000000-0000-4000-8000-000000000000', event_time: '2025-01-01T12:00:00.000Z',
    session_id: '00000000-0000-4000-8000-000000000001', user_id: 'user-size',
  };
  const overhead = utf8Length(JSON.stringify(filled));
  const remaining = bytes - overhead;
  // 'é' is two UTF-8 bytes: a byte count, not a character count, must decide.
  const pad = 'é'.repeat(Math.floor(remaining / 2)) + 'x'.repeat(remaining % 2);
  return {
    ...base, properties: { pad }, event_id: filled.event_id, event_time: filled.event_time,
    session_id: filled.session_id, user_id: filled.user_id,
  };
}

test('events over 32 KB are refused through onError; an event of exactly 32 KB goes through', async () => {
  const collector = await startCollector();
  const cb = callbacks();
  const client = createClient({
    endpoint: collector.endpoint, writeKey: KEY, batchSize: 1000, flushIntervalMs: 60_000,
    storage: memoryStorage(), document: null, window: null, ...cb.options,
  });
  try {
    const atLimit = impressionOfSize(MAX_EVENT_BYTES);
    assert.equal(Buffer.byteLength(JSON.stringify(atLimit)), MAX_EVENT_BYTES);
    const overLimit = { ...impressionOfSize(MAX_EVENT_BYTES + 1), event_id: '00000000-0000-4000-8000-00000000000f' };
    assert.equal(Buffer.byteLength(JSON.stringify(overLimit)), MAX_EVENT_BYTES + 1);

    assert.deepEqual(client.track(atLimit), atLimit);
    assert.equal(client.track(overLimit), null);
    assert.equal(cb.errors.length, 1);
    assert.equal(cb.errors[0].code, 'event_too_large');
    assert.match(cb.errors[0].message, new RegExp(`${MAX_EVENT_BYTES + 1} bytes`));
    assert.deepEqual(cb.errors[0].events, [overLimit], 'the refused event is handed back');

    await client.flush();
    assert.deepEqual(collector.acceptedIds, [atLimit.event_id], 'the collector accepted the 32 KB event only');
    assert.deepEqual(collector.seenIds(), [atLimit.event_id], 'the oversize event never left the client');
    const s = client.stats();
    assert.equal(s.oversize, 1);
    assert.equal(s.tracked, 1);
    assert.equal(s.accepted, 1);
    assert.equal(accountedFor(s), s.tracked);
  } finally {
    client.close();
    await collector.close();
  }
});
