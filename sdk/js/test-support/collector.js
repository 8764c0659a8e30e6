// @ts-check
/**
 * A stand-in collector for the SDK tests: a real node:http server on an ephemeral loopback port that speaks the
 * collector contract (`POST /v1/events`, write key as a Bearer token or, for beacons, the `write_key` query
 * parameter; JSON array body; `{"accepted": n, "rejected": [{"index": i, "error": "..."}]}`; CORS for browser
 * pages on other origins) and records every request so tests can compare what arrived with what they sent.
 *
 * Kept outside `test/` so that `node --test` does not run it as a test file.
 */
import http from 'node:http';

export const CONTRACT_MAX_EVENT_BYTES = 32 * 1024;
export const CONTRACT_MAX_REQUEST_BYTES = 500 * 1024;

/** What a collector must send for browsers on other origins to read its answers. */
export const CORS_HEADERS = {
  'access-control-allow-origin': '*',
  'access-control-allow-methods': 'POST, OPTIONS',
  'access-control-allow-headers': 'authorization, content-type',
  'access-control-expose-headers': 'retry-after',
};

const EVENT_TYPES = new Set(['click', 'impression', 'conversion']);
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;

/**
 * @typedef {Object} RecordedRequest
 * @property {number} index order of arrival, from 0
 * @property {number} at arrival time (performance.now(), ms)
 * @property {string} method
 * @property {string} path
 * @property {'header' | 'query' | null} auth how the write key came, null when missing or wrong
 * @property {string | undefined} contentType
 * @property {number} bytes raw body size
 * @property {any[] | null} events parsed body when it was a JSON array
 * @property {number} status status the stand-in answered
 */

/**
 * @typedef {{status: number, headers?: Record<string, string>, body?: unknown}} ScriptedResponse
 */

/**
 * @param {{
 *   writeKeys?: string[],
 *   respond?: (request: RecordedRequest) => ScriptedResponse | undefined,
 * }} [options] `respond` may override the answer to a well-formed, authorised request (e.g. a 503)
 */
export async function startCollector({ writeKeys = ['wk_test'], respond } = {}) {
  /** @type {RecordedRequest[]} */
  const requests = [];
  /** @type {string[]} event_ids answered as accepted, in order, duplicates kept */
  const acceptedIds = [];

  const server = http.createServer((req, res) => {
    /** @type {Buffer[]} */
    const chunks = [];
    let bytes = 0;
    req.on('data', (chunk) => {
      bytes += chunk.length;
      if (bytes <= CONTRACT_MAX_REQUEST_BYTES) chunks.push(chunk);
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://collector.invalid');
      /** @type {RecordedRequest} */
      const record = {
        index: requests.length,
        at: performance.now(),
        method: req.method ?? '',
        path: url.pathname,
        auth: authOf(req.headers.authorization, url.searchParams.get('write_key'), writeKeys),
        contentType: req.headers['content-type'],
        bytes,
        events: null,
        status: 0,
      };
      requests.push(record);
      /** @param {number} status @param {unknown} body @param {Record<string, string>} [headers] */
      const answer = (status, body, headers = {}) => {
        record.status = status;
        res.writeHead(status, { 'content-type': 'application/json', ...CORS_HEADERS, ...headers });
        res.end(body === undefined ? '' : JSON.stringify(body));
      };

      // Browsers preflight the SDK's requests (Authorization header, JSON body) from other origins.
      if (record.method === 'OPTIONS' && record.path === '/v1/events') {
        record.status = 204;
        res.writeHead(204, { ...CORS_HEADERS, 'access-control-max-age': '600' });
        return res.end();
      }

      if (record.path !== '/v1/events') return answer(404, { error: 'not found' });
      if (record.method !== 'POST') return answer(405, { error: 'method not allowed' });
      if (record.auth === null) return answer(401, { error: 'missing or invalid write key' });
      if (bytes > CONTRACT_MAX_REQUEST_BYTES) return answer(413, { error: 'request over 500 KB' });
      let parsed;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return answer(400, { error: 'body is not JSON' });
      }
      if (!Array.isArray(parsed)) return answer(400, { error: 'body must be a JSON array of events' });
      record.events = parsed;

      const scripted = respond?.(record);
      if (scripted) return answer(scripted.status, scripted.body, scripted.headers);

      /** @type {{index: number, error: string}[]} */
      const rejected = [];
      parsed.forEach((event, index) => {
        const error = validateEvent(event);
        if (error) rejected.push({ index, error });
        else acceptedIds.push(event.event_id);
      });
      return answer(200, { accepted: parsed.length - rejected.length, rejected });
    });
  });

  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('unexpected server address');

  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    requests,
    acceptedIds,
    /** every event_id that reached the collector in a well-formed body, whatever the answer */
    seenIds() {
      return requests.flatMap((r) => (r.events ?? []).map((e) => e?.event_id));
    },
    /** @returns {Promise<void>} */
    close() {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * @param {string | undefined} header
 * @param {string | null} queryKey
 * @param {string[]} writeKeys
 * @returns {'header' | 'query' | null}
 */
function authOf(header, queryKey, writeKeys) {
  const match = /^Bearer (.+)$/.exec(header ?? '');
  if (match && writeKeys.includes(match[1])) return 'header';
  if (!header && queryKey !== null && writeKeys.includes(queryKey)) return 'query';
  return null;
}

/**
 * The Event v1 contract, checked the way the collector must: null when valid, else the reason.
 * @param {any} event
 * @returns {string | null}
 */
export function validateEvent(event) {
  if (event === null || typeof event !== 'object' || Array.isArray(event)) return 'event must be an object';
  if (Buffer.byteLength(JSON.stringify(event), 'utf8') > CONTRACT_MAX_EVENT_BYTES) return 'event over 32 KB';
  for (const field of ['event_id', 'event_time', 'user_id', 'session_id', 'video_id']) {
    if (typeof event[field] !== 'string' || event[field] === '') return `${field} is required`;
  }
  if (!EVENT_TYPES.has(event.event_type)) return 'event_type must be click, impression or conversion';
  if (!RFC3339.test(event.event_time) || Number.isNaN(Date.parse(event.event_time))) {
    return 'event_time must be RFC 3339';
  }
  if (event.event_type === 'click') {
    if (typeof event.button_id !== 'string' || event.button_id === '') return 'button_id is required for clicks';
    if (typeof event.playback_position_s !== 'number' || event.playback_position_s < 0) {
      return 'playback_position_s must be >= 0';
    }
  }
  return null;
}
