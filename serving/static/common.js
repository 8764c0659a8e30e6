// Shared by the dashboard and the player: the read key, authorised fetches and the live feed.
// The read key comes from ?key= (then kept in sessionStorage so reloads keep working); fetches send it
// as a Bearer header, EventSource (which cannot set headers) as ?key=.

const KEY_STORAGE = 'clickpulse:read_key';

export const params = new URLSearchParams(window.location.search);

export function readKey() {
  const fromUrl = params.get('key');
  if (fromUrl) {
    try { sessionStorage.setItem(KEY_STORAGE, fromUrl); } catch (_) { /* storage may be disabled */ }
    return fromUrl;
  }
  try { return sessionStorage.getItem(KEY_STORAGE); } catch (_) { return null; }
}

/** Show a small form asking for the read key; reloads the page with ?key= when submitted. */
export function askForKey(message) {
  const form = document.getElementById('key-form');
  if (!form) return;
  form.hidden = false;
  const note = form.querySelector('.note');
  if (note && message) note.textContent = message;
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = form.querySelector('input').value.trim();
    if (!value) return;
    const next = new URLSearchParams(window.location.search);
    next.set('key', value);
    window.location.search = next.toString();
  });
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
  }
}

export async function api(path, key) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
  if (!response.ok) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, typeof detail === 'string' ? detail : JSON.stringify(detail));
  }
  return response.json();
}

/**
 * Open /v1/live (optionally one user's channel) and call onMessage(json) for every message.
 * onState('live' | 'connecting' | 'down') follows the connection; EventSource reconnects by itself.
 */
export function openLive(key, { userId = null, onMessage, onState = () => {} }) {
  const query = new URLSearchParams({ key });
  if (userId) query.set('user_id', userId);
  const source = new EventSource(`/v1/live?${query}`);
  onState('connecting');
  source.onopen = () => onState('live');
  source.onerror = () => onState(source.readyState === EventSource.CLOSED ? 'down' : 'connecting');
  source.onmessage = (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch (_) { message = { type: 'message', raw: event.data }; }
    onMessage(message);
  };
  return source;
}

export function fmtInt(value) {
  return value === null || value === undefined ? '–' : Math.round(value).toLocaleString('en-US');
}

export function fmtPct(value, digits = 1) {
  return value === null || value === undefined ? '–' : `${(value * 100).toFixed(digits)}%`;
}

export function fmtNum(value, digits = 1) {
  return value === null || value === undefined ? '–' : Number(value).toFixed(digits);
}

/** Create an element with attributes and children (strings become text nodes: no HTML injection). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name === 'style') node.setAttribute('style', value);
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}
