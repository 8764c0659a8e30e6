// @ts-check
/**
 * In-process stand-ins for browser globals used by the SDK tests: storage, fetch, the page
 * (document + window event targets), and recorders for the SDK callbacks.
 */

/** A Storage-like object backed by a Map (like sessionStorage, shared by clients given the same instance). */
export function memoryStorage() {
  /** @type {Map<string, string>} */
  const map = new Map();
  return {
    map,
    /** @param {string} key */
    getItem(key) {
      return map.has(key) ? /** @type {string} */ (map.get(key)) : null;
    },
    /** @param {string} key @param {string} value */
    setItem(key, value) {
      map.set(key, String(value));
    },
  };
}

/**
 * @typedef {Object} FetchCall
 * @property {string} url
 * @property {RequestInit} init
 * @property {any[]} events the parsed JSON array body
 * @property {number} at performance.now() when called
 */

/**
 * A fetch that records calls and answers through `handler` (default: accept everything).
 * @param {(call: FetchCall, index: number) => Response | Promise<Response>} [handler]
 */
export function fakeFetch(handler) {
  /** @type {FetchCall[]} */
  const calls = [];
  /**
   * @param {string} url
   * @param {RequestInit} init
   */
  async function fetch(url, init) {
    const call = { url, init, events: JSON.parse(String(init.body)), at: performance.now() };
    calls.push(call);
    if (handler) return handler(call, calls.length - 1);
    return jsonResponse(200, { accepted: call.events.length, rejected: [] });
  }
  return { fetch, calls };
}

/**
 * @param {number} status
 * @param {unknown} body
 * @param {Record<string, string>} [headers]
 */
export function jsonResponse(status, body, headers = {}) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
}

/** A page: `document` with a settable visibilityState and `window`, both real EventTargets. */
export function fakePage() {
  const document = Object.assign(new EventTarget(), { visibilityState: 'visible' });
  const window = new EventTarget();
  return {
    document,
    window,
    hide() {
      document.visibilityState = 'hidden';
      document.dispatchEvent(new Event('visibilitychange'));
    },
    show() {
      document.visibilityState = 'visible';
      document.dispatchEvent(new Event('visibilitychange'));
    },
    pagehide() {
      window.dispatchEvent(new Event('pagehide'));
    },
  };
}

/** Records what the SDK reports through its callbacks; spread `options` into createClient. */
export function callbacks() {
  /** @type {any[]} */
  const errors = [];
  /** @type {number[]} */
  const drops = [];
  /** @type {any[]} */
  const droppedEvents = [];
  /** @type {any[][]} */
  const rejections = [];
  return {
    errors,
    drops,
    droppedEvents,
    rejections,
    options: {
      /** @param {any} error */
      onError: (error) => errors.push(error),
      /** @param {number} count @param {any[]} events */
      onDrop: (count, events) => {
        drops.push(count);
        droppedEvents.push(...events);
      },
      /** @param {any[]} rejected */
      onRejected: (rejected) => rejections.push(rejected),
    },
  };
}

/** A hand-driven clock for `now`. */
export function manualClock(start = Date.UTC(2025, 0, 1, 12, 0, 0)) {
  let t = start;
  return {
    now: () => t,
    /** @param {number} ms */
    advance(ms) {
      t += ms;
    },
  };
}

/**
 * Poll until `predicate` holds; fails after `timeoutMs`.
 * @param {() => boolean} predicate
 * @param {number} [timeoutMs]
 */
export async function waitFor(predicate, timeoutMs = 5000) {
  const deadline = performance.now() + timeoutMs;
  while (!predicate()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await delay(5);
  }
}

/** @param {number} ms */
export function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * The stats identity every test checks: each tracked event is in exactly one state.
 * @param {ReturnType<import('../src/clickpulse.js').ClickPulseClient['stats']>} s
 */
export function accountedFor(s) {
  return s.queued + s.inFlight + s.accepted + s.rejected + s.failed + s.dropped + s.beaconed;
}

export const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
