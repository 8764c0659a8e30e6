// @ts-check
/**
 * ClickPulse browser SDK: batches player events (Event v1) and delivers them to the collector's
 * `POST /v1/events`, with retries, a bounded queue and a `sendBeacon` hand-off when the page hides.
 *
 * Plain ES module with no dependencies, so it loads with `<script type="module">` as well as through a bundler.
 * @module @clickpulse/sdk
 */

export const SDK_VERSION = '0.1.0';

/** Event types accepted by the Event v1 contract. */
export const EVENT_TYPES = Object.freeze(['click', 'impression', 'conversion']);

/** Contract limit per event (32 KB = 32 * 1024 bytes of UTF-8 JSON); larger events are refused locally. */
export const MAX_EVENT_BYTES = 32 * 1024;

/**
 * Request body budget. The contract caps requests at 500 KB; the SDK stays under 500 000 bytes so that the
 * cap holds whether the collector counts a KB as 1000 or 1024 bytes.
 */
export const MAX_REQUEST_BYTES = 500_000;

/**
 * Budget per beacon. Browsers refuse `sendBeacon` / keepalive bodies once 64 KiB are queued, so page-hide
 * payloads are cut into pieces under that.
 */
export const BEACON_MAX_BYTES = 60_000;

/** Query parameter that carries the write key on beacon URLs (a beacon cannot set an Authorization header). */
export const BEACON_WRITE_KEY_PARAM = 'write_key';

const EVENTS_PATH = '/v1/events';
const SESSION_KEY = 'clickpulse:session';
const ANONYMOUS_KEY = 'clickpulse:anonymous_id';
const TEXT_PLAIN = 'text/plain;charset=UTF-8';

/**
 * @typedef {'click' | 'impression' | 'conversion'} EventType
 */

/**
 * An Event v1 record as sent to the collector. Unknown extra fields are kept.
 * @typedef {Object} ClickPulseEvent
 * @property {string} event_id client UUID, the dedupe key
 * @property {EventType} event_type
 * @property {string} event_time RFC 3339 timestamp
 * @property {string} user_id
 * @property {string} session_id
 * @property {string} video_id
 * @property {string} [button_id] required for clicks
 * @property {number} [playback_position_s] required for clicks, >= 0
 * @property {string} [surface]
 * @property {number} [rec_slot]
 * @property {string} [model_version]
 * @property {string} [conversion_type]
 * @property {string} [device]
 * @property {string} [app_version]
 * @property {Record<string, unknown>} [properties]
 */

/**
 * What callers pass to `track()`: the same fields, with the ones the SDK fills made optional.
 * @typedef {Partial<ClickPulseEvent> & {event_type: EventType, video_id: string} & Record<string, unknown>} TrackInput
 */

/**
 * A per-event rejection from a 2xx collector response, with the event it refers to.
 * @typedef {Object} Rejection
 * @property {number} index position of the event in the request
 * @property {string} error the collector's reason
 * @property {ClickPulseEvent} event
 */

/**
 * Counters. Every event given to `track()` that passed validation is, at any moment, in exactly one of
 * `queued`, `inFlight`, `accepted`, `rejected`, `failed`, `dropped`, `beaconed`, so
 * `tracked === queued + inFlight + accepted + rejected + failed + dropped + beaconed`.
 * @typedef {Object} Stats
 * @property {number} tracked events accepted by `track()` (after validation and the size check)
 * @property {number} queued events waiting in the queue
 * @property {number} inFlight events in a request that has not settled (including ones waiting for a retry)
 * @property {number} sent events in requests that got a 2xx answer (`accepted + rejected`)
 * @property {number} accepted events the collector accepted
 * @property {number} rejected events the collector rejected one by one (see `onRejected`)
 * @property {number} failed events given up on: non-retryable status or retries exhausted (see `onError`)
 * @property {number} dropped events dropped from the head of a full queue (see `onDrop`)
 * @property {number} beaconed events handed to `navigator.sendBeacon` (the browser gives no answer)
 * @property {number} oversize events refused by `track()` for being over the per-event limit
 * @property {number} retries retry attempts made
 * @property {number} requests HTTP requests and beacons issued
 */

/**
 * @typedef {'event_too_large' | 'http_error' | 'retries_exhausted' | 'beacon_failed' | 'client_closed' | 'callback_failed'} ErrorCode
 */

/**
 * Error passed to `onError`. Carries the events it concerns so that nothing is lost without a trace.
 */
export class ClickPulseError extends Error {
  /**
   * @param {ErrorCode} code
   * @param {string} message
   * @param {{events?: ClickPulseEvent[], status?: number, body?: unknown, cause?: unknown}} [details]
   */
  constructor(code, message, details = {}) {
    super(message);
    this.name = 'ClickPulseError';
    /** @type {ErrorCode} */
    this.code = code;
    /** @type {ClickPulseEvent[]} */
    this.events = details.events ?? [];
    /** @type {number | undefined} HTTP status, when the error comes from a response */
    this.status = details.status;
    /** @type {unknown} response body (parsed JSON when possible), when the error comes from a response */
    this.body = details.body;
    if (details.cause !== undefined) this.cause = details.cause;
  }
}

/**
 * @typedef {Object} StorageLike
 * @property {(key: string) => string | null} getItem
 * @property {(key: string, value: string) => void} setItem
 */

/**
 * @typedef {Object} EventTargetLike
 * @property {(type: string, listener: () => void) => void} addEventListener
 * @property {(type: string, listener: () => void) => void} removeEventListener
 */

/**
 * @typedef {Object} ClientOptions
 * @property {string} endpoint collector base URL, e.g. `https://collect.example.com`; `/v1/events` is appended
 *   unless the URL already ends with it
 * @property {string} writeKey sent as `Authorization: Bearer <writeKey>` (and as `?write_key=` on beacons)
 * @property {number} [batchSize=20] send as soon as this many events are queued
 * @property {number} [flushIntervalMs=2000] send queued events at most this long after the first one arrived
 * @property {number} [maxQueue=1000] queue bound; when full, the oldest event is dropped and reported
 * @property {number} [maxRetries=5] retries per request after the first attempt
 * @property {number} [baseBackoffMs=500] backoff base: retry n waits random() * min(maxBackoffMs, base * 2^n)
 * @property {number} [maxBackoffMs=30000] backoff ceiling
 * @property {number} [maxRetryAfterMs=60000] ceiling applied to a server's `Retry-After`
 * @property {number} [requestTimeoutMs=10000] a request that takes longer is aborted and retried
 * @property {number} [maxEventBytes=32768] per-event limit
 * @property {number} [maxRequestBytes=500000] request body budget
 * @property {number} [beaconMaxBytes=60000] body budget per beacon
 * @property {string} [appVersion] default `app_version` for events that have none (alias: `app_version`)
 * @property {string} [app_version]
 * @property {string} [device] default `device` for events that have none
 * @property {typeof globalThis.fetch} [fetch] defaults to `globalThis.fetch`
 * @property {((url: string, data?: BodyInit | null) => boolean) | null} [sendBeacon] defaults to
 *   `navigator.sendBeacon` (called with `navigator` as `this`)
 * @property {StorageLike | null} [storage] where the session and anonymous id live; defaults to `sessionStorage`
 *   when usable, else memory
 * @property {() => number} [now] clock in epoch milliseconds, defaults to `Date.now`
 * @property {() => number} [random] uniform [0, 1), defaults to `Math.random`
 * @property {number} [sessionIdleMs=1800000] a session ends after this long without events
 * @property {EventTargetLike | null} [document] where `visibilitychange` is listened to; defaults to `document`
 * @property {EventTargetLike | null} [window] where `pagehide` is listened to; defaults to `window`
 * @property {(error: ClickPulseError) => void} [onError] defaults to `console.error`
 * @property {(count: number, events: ClickPulseEvent[]) => void} [onDrop] defaults to `console.warn`
 * @property {(rejected: Rejection[]) => void} [onRejected] defaults to `console.warn`
 */

/**
 * @typedef {Object} ClickPulseClient
 * @property {(event: TrackInput) => ClickPulseEvent | null} track queue an event; returns the completed event, or
 *   null when it was refused (too large, client closed) and reported through `onError`
 * @property {(videoId: string, buttonId: string, playbackPositionS: number, extra?: Record<string, unknown>) => ClickPulseEvent | null} click
 * @property {(videoId: string, extra?: Record<string, unknown>) => ClickPulseEvent | null} impression
 * @property {(videoId: string, conversionType?: string, extra?: Record<string, unknown>) => ClickPulseEvent | null} conversion
 * @property {(userId: string | null) => void} identify set the `user_id` of later events; null goes back to
 *   the anonymous id
 * @property {() => Promise<Stats>} flush send everything queued; resolves (never rejects) when the queue is
 *   empty and no request is pending
 * @property {() => Stats} stats
 * @property {() => void} close stop timers and page listeners; queued events stay queued (call `flush()` first)
 */

/**
 * @typedef {Object} QueueItem
 * @property {ClickPulseEvent} event
 * @property {string} json
 * @property {number} bytes
 */

/**
 * @typedef {Object} HttpResult
 * @property {number} status 0 for a network error or timeout
 * @property {string} text
 * @property {string | null} retryAfter
 * @property {unknown} [error]
 */

/**
 * Create a client. Throws a TypeError for invalid options.
 * @param {ClientOptions} options
 * @returns {ClickPulseClient}
 */
export function createClient(options) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('createClient(options): an options object is required');
  }
  const {
    endpoint,
    writeKey,
    batchSize = 20,
    flushIntervalMs = 2000,
    maxQueue = 1000,
    maxRetries = 5,
    baseBackoffMs = 500,
    maxBackoffMs = 30_000,
    maxRetryAfterMs = 60_000,
    requestTimeoutMs = 10_000,
    maxEventBytes = MAX_EVENT_BYTES,
    maxRequestBytes = MAX_REQUEST_BYTES,
    beaconMaxBytes = BEACON_MAX_BYTES,
    appVersion = options.app_version,
    device,
    fetch: fetchFn = globalThis.fetch,
    sendBeacon = globalThis.navigator?.sendBeacon,
    storage = defaultSessionStorage(),
    now = Date.now,
    random = Math.random,
    sessionIdleMs = 30 * 60 * 1000,
    document: doc = globalThis.document,
    window: win = /** @type {EventTargetLike | undefined} */ (globalThis.window),
    onError = defaultOnError,
    onDrop = defaultOnDrop,
    onRejected = defaultOnRejected,
  } = options;

  requireString('endpoint', endpoint);
  requireString('writeKey', writeKey);
  requireInteger('batchSize', batchSize, 1);
  requireInteger('flushIntervalMs', flushIntervalMs, 0);
  requireInteger('maxQueue', maxQueue, 1);
  requireInteger('maxRetries', maxRetries, 0);
  requireInteger('baseBackoffMs', baseBackoffMs, 0);
  requireInteger('maxBackoffMs', maxBackoffMs, 0);
  requireInteger('maxRetryAfterMs', maxRetryAfterMs, 0);
  requireInteger('requestTimeoutMs', requestTimeoutMs, 1);
  requireInteger('maxEventBytes', maxEventBytes, 1);
  requireInteger('maxRequestBytes', maxRequestBytes, maxEventBytes + 2);
  requireInteger('beaconMaxBytes', beaconMaxBytes, 1);
  requireInteger('sessionIdleMs', sessionIdleMs, 1);
  if (typeof fetchFn !== 'function') {
    throw new TypeError('createClient: no fetch implementation; pass options.fetch');
  }
  for (const [name, fn] of /** @type {const} */ ([['now', now], ['random', random], ['onError', onError],
    ['onDrop', onDrop], ['onRejected', onRejected]])) {
    if (typeof fn !== 'function') throw new TypeError(`createClient: ${name} must be a function`);
  }
  if (sendBeacon != null && typeof sendBeacon !== 'function') {
    throw new TypeError('createClient: sendBeacon must be a function or null');
  }

  const url = eventsUrl(endpoint);
  const beaconUrl = withQueryParam(url, BEACON_WRITE_KEY_PARAM, writeKey);
  const store = safeStore(storage);

  /** @type {QueueItem[]} */
  const queue = [];
  const counters = {
    tracked: 0, inFlight: 0, sent: 0, accepted: 0, rejected: 0, failed: 0,
    dropped: 0, beaconed: 0, oversize: 0, retries: 0, requests: 0,
  };
  /** @type {string | null} */
  let userId = null;
  let closed = false;
  /** @type {ReturnType<typeof setTimeout> | null} */
  let flushTimer = null;
  /** @type {Promise<void> | null} */
  let draining = null;
  /** set by flush() and the timer: the running loop sends everything, not only full batches */
  let drainAll = false;
  /**
   * The batch the drain loop owns. While it waits for a retry, a page hide may take it over.
   * @type {{items: QueueItem[], state: 'sending' | 'waiting' | 'handedOff', wake: () => void} | null}
   */
  let current = null;

  /**
   * Run a user callback; a throwing callback must not break delivery.
   * @param {Function} fn
   * @param {...unknown} args
   */
  function safeCall(fn, ...args) {
    try {
      fn(...args);
    } catch (err) {
      if (fn !== onError) {
        safeCall(onError, new ClickPulseError('callback_failed', `a ClickPulse callback threw: ${errorMessage(err)}`, { cause: err }));
      } else {
        globalThis.console?.error?.('[clickpulse] onError threw', err);
      }
    }
  }

  /** @param {ClickPulseError} error */
  function reportError(error) {
    safeCall(onError, error);
  }

  function uuid() {
    return uuid4({ random });
  }

  function anonymousId() {
    let id = store.get(ANONYMOUS_KEY);
    if (!id) {
      id = `anon-${uuid()}`;
      store.set(ANONYMOUS_KEY, id);
    }
    return id;
  }

  /** The current session id, renewed when the last event is older than `sessionIdleMs`. */
  function sessionId() {
    const t = now();
    /** @type {{id: string, started: number, last: number} | null} */
    let session = null;
    try {
      const raw = store.get(SESSION_KEY);
      session = raw ? JSON.parse(raw) : null;
    } catch {
      session = null;
    }
    if (!session || typeof session.id !== 'string' || !session.id || typeof session.last !== 'number'
        || t - session.last > sessionIdleMs) {
      session = { id: uuid(), started: t, last: t };
    } else {
      session.last = Math.max(session.last, t);
    }
    store.set(SESSION_KEY, JSON.stringify(session));
    return session.id;
  }

  /**
   * @param {TrackInput} input
   * @returns {ClickPulseEvent | null}
   */
  function track(input) {
    if (input === null || typeof input !== 'object' || Array.isArray(input)) {
      throw new TypeError('track(event): event must be an object');
    }
    const event = /** @type {ClickPulseEvent} */ ({ ...input });
    validate(event);
    if (event.event_id == null) event.event_id = uuid();
    if (event.event_time == null) event.event_time = new Date(now()).toISOString();
    if (event.session_id == null) event.session_id = sessionId();
    if (event.user_id == null) event.user_id = userId ?? anonymousId();
    if (event.app_version == null && appVersion != null) event.app_version = appVersion;
    if (event.device == null && device != null) event.device = device;

    let json;
    try {
      json = JSON.stringify(event);
    } catch (err) {
      throw new TypeError(`track(event): event is not JSON-serialisable (${errorMessage(err)})`);
    }
    const bytes = utf8Length(json);
    if (bytes > maxEventBytes) {
      counters.oversize += 1;
      reportError(new ClickPulseError('event_too_large',
        `event ${event.event_id} is ${bytes} bytes of JSON, over the ${maxEventBytes}-byte limit; it was not queued`,
        { events: [event] }));
      return null;
    }
    if (closed) {
      reportError(new ClickPulseError('client_closed',
        `event ${event.event_id} was tracked after close(); it was not queued`, { events: [event] }));
      return null;
    }
    counters.tracked += 1;
    if (queue.length >= maxQueue) dropOldest(queue.length - maxQueue + 1);
    queue.push({ event, json, bytes });
    armFlushTimer();
    if (queue.length >= batchSize) startDrain(false);
    return event;
  }

  /** @param {number} count */
  function dropOldest(count) {
    if (count <= 0) return;
    const dropped = queue.splice(0, count).map((item) => item.event);
    counters.dropped += dropped.length;
    safeCall(onDrop, dropped.length, dropped);
  }

  /** Put items back at the head of the queue (they are the oldest), then enforce the bound. */
  function requeue(/** @type {QueueItem[]} */ items) {
    queue.unshift(...items);
    dropOldest(queue.length - maxQueue);
    armFlushTimer();
  }

  /** Make sure queued events go out within `flushIntervalMs` even if no batch fills up. */
  function armFlushTimer() {
    if (flushTimer !== null || closed || queue.length === 0) return;
    flushTimer = setTimeout(() => {
      flushTimer = null;
      void flush();
    }, flushIntervalMs);
    unrefTimer(flushTimer);
  }

  function clearFlushTimer() {
    if (flushTimer !== null) clearTimeout(flushTimer);
    flushTimer = null;
  }

  /** @returns {Promise<Stats>} */
  function flush() {
    return (startDrain(true) ?? Promise.resolve()).then(stats);
  }

  /**
   * Start the send loop unless it runs. `all` sends everything queued; otherwise only full batches go and
   * the remainder waits for the flush timer.
   * @param {boolean} all
   */
  function startDrain(all) {
    if (all) drainAll = true;
    if (draining === null && queue.length > 0 && !closed) draining = drain();
    return draining;
  }

  async function drain() {
    await null;
    try {
      while (!closed && (queue.length >= batchSize || (drainAll && queue.length > 0))) {
        const items = takeBatch(queue, batchSize, maxRequestBytes);
        if (queue.length === 0) clearFlushTimer();
        counters.inFlight += items.length;
        current = { items, state: 'sending', wake: () => {} };
        await deliver(current);
        current = null;
      }
    } finally {
      current = null;
      draining = null;
      drainAll = false;
    }
  }

  /**
   * Send one batch until it settles: answered, given up on, or taken over by a page hide.
   * @param {NonNullable<typeof current>} batch
   */
  async function deliver(batch) {
    const { items } = batch;
    const body = joinBatch(items);
    for (let attempt = 0; ; attempt += 1) {
      const result = await post(body);
      // A page unload took these events over while the request was out; the beacon owns them now.
      if (/** @type {string} */ (batch.state) === 'handedOff') return;
      const verdict = classify(result);
      if (verdict === 'ok') {
        counters.inFlight -= items.length;
        settle(items, result.text);
        return;
      }
      if (verdict === 'fatal') {
        counters.inFlight -= items.length;
        fail(items, result, `collector answered HTTP ${result.status}; ${items.length} event(s) not retried`);
        return;
      }
      if (attempt >= maxRetries) {
        counters.inFlight -= items.length;
        fail(items, result, `gave up after ${maxRetries} retries (last: ${describe(result)})`, 'retries_exhausted');
        return;
      }
      if (!closed) {
        counters.retries += 1;
        batch.state = 'waiting';
        await sleep(retryDelay(attempt, result), batch);
        // handOff() may have changed the state while we slept.
        if (/** @type {string} */ (batch.state) === 'handedOff') return;
      }
      if (closed) {
        counters.inFlight -= items.length;
        requeue(items);
        return;
      }
      batch.state = 'sending';
    }
  }

  /**
   * @param {number} attempt 0 for the first retry
   * @param {HttpResult} result
   */
  function retryDelay(attempt, result) {
    const hinted = parseRetryAfter(result.retryAfter, now());
    if (hinted !== null) return Math.min(hinted, maxRetryAfterMs);
    return backoffDelay(attempt, baseBackoffMs, maxBackoffMs, random);
  }

  /**
   * A timer that the page-hide handler and close() can cut short through `batch.wake`.
   * @param {number} ms
   * @param {NonNullable<typeof current>} batch
   * @returns {Promise<void>}
   */
  function sleep(ms, batch) {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        batch.wake = () => {};
        resolve();
      }
      batch.wake = done;
    });
  }

  /**
   * @param {string} body
   * @returns {Promise<HttpResult>}
   */
  async function post(body) {
    counters.requests += 1;
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = controller ? setTimeout(() => controller.abort(), requestTimeoutMs) : null;
    try {
      const res = await fetchFn.call(globalThis, url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${writeKey}` },
        body,
        credentials: 'omit',
        signal: controller?.signal,
      });
      return await readResponse(res);
    } catch (error) {
      return { status: 0, text: '', retryAfter: null, error };
    } finally {
      if (timer !== null) clearTimeout(timer);
    }
  }

  /**
   * Account for a 2xx answer: everything not listed in `rejected` was accepted.
   * @param {QueueItem[]} items
   * @param {string} text
   */
  function settle(items, text) {
    const body = parseJson(text);
    const listed = body && typeof body === 'object' && Array.isArray(/** @type {any} */ (body).rejected)
      ? /** @type {unknown[]} */ (/** @type {any} */ (body).rejected) : [];
    /** @type {Map<number, Rejection>} */
    const byIndex = new Map();
    for (const entry of listed) {
      const index = /** @type {any} */ (entry)?.index;
      if (Number.isInteger(index) && index >= 0 && index < items.length && !byIndex.has(index)) {
        const error = /** @type {any} */ (entry).error;
        byIndex.set(index, { index, error: typeof error === 'string' ? error : JSON.stringify(error ?? 'rejected'), event: items[index].event });
      }
    }
    const rejected = [...byIndex.values()].sort((a, b) => a.index - b.index);
    counters.sent += items.length;
    counters.accepted += items.length - rejected.length;
    counters.rejected += rejected.length;
    if (rejected.length > 0) safeCall(onRejected, rejected);
  }

  /**
   * @param {QueueItem[]} items
   * @param {HttpResult} result
   * @param {string} message
   * @param {ErrorCode} [code]
   */
  function fail(items, result, message, code = 'http_error') {
    counters.failed += items.length;
    reportError(new ClickPulseError(code, message, {
      events: items.map((item) => item.event),
      status: result.status || undefined,
      body: result.status ? parseJson(result.text) ?? result.text : undefined,
      cause: result.error,
    }));
  }

  /**
   * Hand everything not yet answered to the browser before the page goes away: the queue and a batch waiting
   * for a retry. On `pagehide` the page is being unloaded and will cancel a request still in flight, so that
   * batch goes too (should the request complete after all, the collector sees its event ids twice and the
   * pipeline's event_id dedupe absorbs it). A mere `visibilitychange` (tab switch) leaves it alone.
   * @param {boolean} unloading
   */
  function handOff(unloading) {
    if (closed) return;
    /** @type {QueueItem[]} */
    const items = [];
    if (current !== null && (current.state === 'waiting' || (unloading && current.state === 'sending'))) {
      current.state = 'handedOff';
      counters.inFlight -= current.items.length;
      items.push(...current.items);
      current.wake();
    }
    items.push(...queue.splice(0));
    clearFlushTimer();
    while (items.length > 0) {
      const chunk = takeBatch(items, Infinity, beaconMaxBytes);
      beacon(chunk);
    }
  }

  function onVisibilityChange() {
    if (/** @type {any} */ (doc)?.visibilityState === 'hidden') handOff(false);
  }

  function onPageHide() {
    handOff(true);
  }

  /** @param {QueueItem[]} items */
  function beacon(items) {
    const body = joinBatch(items);
    if (typeof sendBeacon === 'function') {
      let queuedByBrowser = false;
      try {
        const data = typeof Blob === 'function' ? new Blob([body], { type: TEXT_PLAIN }) : body;
        queuedByBrowser = sendBeacon.call(globalThis.navigator, beaconUrl, data) === true;
      } catch {
        queuedByBrowser = false;
      }
      if (queuedByBrowser) {
        counters.requests += 1;
        counters.beaconed += items.length;
        return;
      }
    }
    keepaliveFetch(items, body);
  }

  /**
   * Fallback when the beacon was refused: a keepalive fetch to the same URL. The body is text/plain and the
   * key is in the query, so the request is CORS-simple and needs no preflight while the page unloads.
   * @param {QueueItem[]} items
   * @param {string} body
   */
  function keepaliveFetch(items, body) {
    counters.requests += 1;
    counters.inFlight += items.length;
    /** @type {Promise<HttpResult>} */
    let pending;
    try {
      pending = Promise.resolve(fetchFn.call(globalThis, beaconUrl, {
        method: 'POST',
        headers: { 'Content-Type': TEXT_PLAIN },
        body,
        keepalive: true,
        credentials: 'omit',
      })).then(readResponse, (error) => ({ status: 0, text: '', retryAfter: null, error }));
    } catch (error) {
      pending = Promise.resolve({ status: 0, text: '', retryAfter: null, error });
    }
    void pending.then((result) => {
      counters.inFlight -= items.length;
      const verdict = classify(result);
      if (verdict === 'ok') {
        settle(items, result.text);
      } else if (verdict === 'fatal') {
        fail(items, result, `collector answered HTTP ${result.status} to the page-hide request`);
      } else {
        reportError(new ClickPulseError('beacon_failed',
          `sendBeacon was refused and the keepalive request failed (${describe(result)}); `
          + `${items.length} event(s) put back in the queue`,
          { events: items.map((item) => item.event), status: result.status || undefined, cause: result.error }));
        requeue(items);
      }
    });
  }

  /** @returns {Stats} */
  function stats() {
    return { ...counters, queued: queue.length };
  }

  /** @param {string | null} id */
  function identify(id) {
    if (id === null || id === undefined) {
      userId = null;
      return;
    }
    if (typeof id !== 'string' || id.length === 0) {
      throw new TypeError('identify(userId): userId must be a non-empty string, or null to go back to anonymous');
    }
    userId = id;
  }

  function close() {
    if (closed) return;
    closed = true;
    clearFlushTimer();
    doc?.removeEventListener?.('visibilitychange', onVisibilityChange);
    win?.removeEventListener?.('pagehide', onPageHide);
    if (current !== null && current.state === 'waiting') current.wake();
  }

  doc?.addEventListener?.('visibilitychange', onVisibilityChange);
  win?.addEventListener?.('pagehide', onPageHide);

  return {
    track,
    click(videoId, buttonId, playbackPositionS, extra) {
      return track({
        ...extraFields('click', extra),
        event_type: 'click',
        video_id: videoId,
        button_id: buttonId,
        playback_position_s: playbackPositionS,
      });
    },
    impression(videoId, extra) {
      return track({ ...extraFields('impression', extra), event_type: 'impression', video_id: videoId });
    },
    conversion(videoId, conversionType, extra) {
      /** @type {TrackInput} */
      const event = { ...extraFields('conversion', extra), event_type: 'conversion', video_id: videoId };
      if (conversionType !== undefined) event.conversion_type = conversionType;
      return track(event);
    },
    identify,
    flush,
    stats,
    close,
  };
}

/**
 * Throws a TypeError naming the first field that breaks the Event v1 contract.
 * @param {Record<string, unknown>} event
 */
function validate(event) {
  const type = event.event_type;
  if (typeof type !== 'string' || !EVENT_TYPES.includes(type)) {
    throw new TypeError(`track(event): event_type must be one of ${EVENT_TYPES.join(', ')} (got ${show(type)})`);
  }
  if (typeof event.video_id !== 'string' || event.video_id.length === 0) {
    throw new TypeError(`track(event): video_id must be a non-empty string (got ${show(event.video_id)})`);
  }
  if (type === 'click') {
    if (typeof event.button_id !== 'string' || event.button_id.length === 0) {
      throw new TypeError(`track(event): a click needs button_id, a non-empty string (got ${show(event.button_id)})`);
    }
    const position = event.playback_position_s;
    if (typeof position !== 'number' || !Number.isFinite(position) || position < 0) {
      throw new TypeError(`track(event): a click needs playback_position_s, a finite number >= 0 (got ${show(position)})`);
    }
  }
  for (const field of ['event_id', 'event_time', 'session_id', 'user_id']) {
    const value = event[field];
    if (value != null && (typeof value !== 'string' || value.length === 0)) {
      throw new TypeError(`track(event): ${field} must be a non-empty string when given (got ${show(value)})`);
    }
  }
}

/**
 * @param {string} helper
 * @param {unknown} extra
 * @returns {Record<string, unknown>}
 */
function extraFields(helper, extra) {
  if (extra === undefined || extra === null) return {};
  if (typeof extra !== 'object' || Array.isArray(extra)) {
    throw new TypeError(`${helper}(): extra must be an object of additional event fields`);
  }
  return /** @type {Record<string, unknown>} */ (extra);
}

/**
 * Take items from the head of `source` for one request: at most `maxCount` events and `maxBytes` bytes of body
 * (`[` + events joined by `,` + `]`), but always at least one event.
 * @param {QueueItem[]} source
 * @param {number} maxCount
 * @param {number} maxBytes
 */
function takeBatch(source, maxCount, maxBytes) {
  let count = 0;
  let size = 2;
  while (count < source.length && count < maxCount) {
    const next = size + source[count].bytes + (count > 0 ? 1 : 0);
    if (count > 0 && next > maxBytes) break;
    size = next;
    count += 1;
  }
  return source.splice(0, count);
}

/** @param {QueueItem[]} items */
function joinBatch(items) {
  return `[${items.map((item) => item.json).join(',')}]`;
}

/**
 * @param {HttpResult} result
 * @returns {'ok' | 'retry' | 'fatal'}
 */
function classify(result) {
  const { status } = result;
  if (status >= 200 && status < 300) return 'ok';
  if (status === 0 || status === 429 || status >= 500) return 'retry';
  return 'fatal';
}

/**
 * @param {Response} res
 * @returns {Promise<HttpResult>}
 */
async function readResponse(res) {
  let text = '';
  try {
    text = await res.text();
  } catch {
    text = '';
  }
  return { status: res.status, text, retryAfter: res.headers?.get?.('retry-after') ?? null };
}

/** @param {HttpResult} result */
function describe(result) {
  return result.status ? `HTTP ${result.status}` : `network error: ${errorMessage(result.error)}`;
}

/**
 * Exponential backoff with full jitter: a uniform wait in [0, min(maxMs, baseMs * 2^attempt)).
 * @param {number} attempt 0 for the first retry
 * @param {number} baseMs
 * @param {number} maxMs
 * @param {() => number} random uniform [0, 1)
 */
export function backoffDelay(attempt, baseMs, maxMs, random) {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** attempt));
}

/**
 * `Retry-After` as milliseconds: delay-seconds or an HTTP date. Null when absent or unreadable.
 * @param {string | null} value
 * @param {number} nowMs
 * @returns {number | null}
 */
export function parseRetryAfter(value, nowMs) {
  if (value == null) return null;
  const trimmed = String(value).trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return null;
  return Math.max(0, date - nowMs);
}

/**
 * Number of bytes `str` takes as UTF-8, without allocating. `JSON.stringify` output has no lone surrogates.
 * @param {string} str
 */
export function utf8Length(str) {
  let bytes = 0;
  for (let i = 0; i < str.length; i += 1) {
    const code = str.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < str.length
             && (str.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4;
      i += 1;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * A version 4 UUID: `crypto.randomUUID` when the page has it (secure contexts only), else
 * `crypto.getRandomValues`, else the given random source.
 * @param {{crypto?: Partial<Crypto> | null, random?: () => number}} [sources]
 * @returns {string}
 */
export function uuid4({ crypto = globalThis.crypto, random = Math.random } = {}) {
  if (typeof crypto?.randomUUID === 'function') return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  if (typeof crypto?.getRandomValues === 'function') {
    crypto.getRandomValues(bytes);
  } else {
    for (let i = 0; i < 16; i += 1) bytes[i] = Math.floor(random() * 256) & 0xff;
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** @param {string} endpoint */
function eventsUrl(endpoint) {
  const base = endpoint.replace(/\/+$/, '');
  return base.endsWith(EVENTS_PATH) ? base : `${base}${EVENTS_PATH}`;
}

/**
 * @param {string} url
 * @param {string} name
 * @param {string} value
 */
function withQueryParam(url, name, value) {
  return `${url}${url.includes('?') ? '&' : '?'}${encodeURIComponent(name)}=${encodeURIComponent(value)}`;
}

/** @returns {StorageLike | null} */
function defaultSessionStorage() {
  try {
    return globalThis.sessionStorage ?? null;
  } catch {
    return null; // the getter throws in sandboxed iframes and with storage blocked
  }
}

/**
 * Storage that never throws: falls back to memory when the real one is missing, full or blocked.
 * @param {StorageLike | null | undefined} storage
 */
function safeStore(storage) {
  /** @type {Map<string, string>} */
  const memory = new Map();
  return {
    /** @param {string} key */
    get(key) {
      try {
        const value = storage?.getItem(key);
        if (value != null) return value;
      } catch {
        // fall through to memory
      }
      return memory.get(key) ?? null;
    },
    /** @param {string} key @param {string} value */
    set(key, value) {
      memory.set(key, value);
      try {
        storage?.setItem(key, value);
      } catch {
        // quota or privacy mode: memory keeps the value for this page
      }
    },
  };
}

/** @param {ReturnType<typeof setTimeout>} timer */
function unrefTimer(timer) {
  const maybe = /** @type {any} */ (timer);
  if (typeof maybe?.unref === 'function') maybe.unref();
}

/** @param {string} text */
function parseJson(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/** @param {unknown} err */
function errorMessage(err) {
  return err instanceof Error ? err.message : String(err);
}

/** @param {unknown} value */
function show(value) {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  return typeof value;
}

/** @param {string} name @param {unknown} value */
function requireString(name, value) {
  if (typeof value !== 'string' || value.length === 0) {
    throw new TypeError(`createClient: ${name} must be a non-empty string`);
  }
}

/** @param {string} name @param {unknown} value @param {number} min */
function requireInteger(name, value, min) {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new TypeError(`createClient: ${name} must be an integer >= ${min} (got ${show(value)})`);
  }
}

/** @param {ClickPulseError} error */
function defaultOnError(error) {
  globalThis.console?.error?.(`[clickpulse] ${error.code}: ${error.message}`, error);
}

/** @param {number} count */
function defaultOnDrop(count) {
  globalThis.console?.warn?.(`[clickpulse] queue full: dropped ${count} oldest event(s)`);
}

/** @param {Rejection[]} rejected */
function defaultOnRejected(rejected) {
  globalThis.console?.warn?.(`[clickpulse] collector rejected ${rejected.length} event(s)`, rejected);
}
