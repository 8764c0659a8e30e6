// The demo player: a mock-up whose buttons send clicks through the ClickPulse JS SDK to the collector,
// and a "Next up" panel fed by the user's live channel (/v1/live?user_id=).
//
// Query parameters: key (read key), user_id, video_id, collector (collector base URL), write_key.
// collector and write_key default to GET /v1/pages/config.
import { createClient } from '/sdk/clickpulse.js';
import { api, askForKey, el, fmtNum, openLive, params, readKey } from '/static/common.js';

const USER_STORAGE = 'clickpulse:demo_user';
const DEFAULT_DURATION_S = 45 * 60;
const INTRO_END_S = 90;

const state = {
  videos: [],     // [{video_id, title}]
  video: null,    // {video_id, title, duration_s}
  position: 0,
  playing: false,
  liked: false,
  listed: false,
  subtitles: false,
  timer: null,
};
let client = null;
let userId = null;
let key = null;

function $(id) { return document.getElementById(id); }

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h ? String(m).padStart(2, '0') : String(m);
  return `${h ? `${h}:` : ''}${mm}:${String(r).padStart(2, '0')}`;
}

function toast(text) { $('toast').textContent = text; }

function demoUser() {
  const given = params.get('user_id');
  if (given) return given;
  try {
    let id = localStorage.getItem(USER_STORAGE);
    if (!id) {
      id = `demo-${Math.random().toString(36).slice(2, 10)}`;
      localStorage.setItem(USER_STORAGE, id);
    }
    return id;
  } catch (_) {
    return `demo-${Math.random().toString(36).slice(2, 10)}`;
  }
}

function render() {
  const v = state.video;
  const duration = (v && v.duration_s) || DEFAULT_DURATION_S;
  $('video-title').textContent = v ? (v.title || v.video_id) : '–';
  $('play-state').textContent = `${state.playing ? 'playing' : 'paused'} · ${v ? v.video_id : ''}`;
  $('position').textContent = clock(state.position);
  $('duration').textContent = clock(duration);
  $('progress-fill').style.width = `${Math.min(100, (state.position / duration) * 100)}%`;
  $('subtitles').hidden = !state.subtitles;
  for (const [button, on] of [['like', state.liked], ['add_to_list', state.listed], ['subtitles', state.subtitles],
    ['play', state.playing]]) {
    document.querySelector(`[data-button="${button}"]`).classList.toggle('on', on);
  }
}

function updateCounts() {
  const stats = client.stats();
  $('sent-count').textContent = String(stats.tracked);
  $('accepted-count').textContent = String(stats.accepted);
  $('sdk-status').textContent = stats.failed ? `${stats.failed} failed` : 'sdk ok';
  $('sdk-status').className = `pill ${stats.failed ? 'down' : 'live'}`;
}

async function send() {
  updateCounts();
  await client.flush(); // send at once: a click should reach the dashboard within a second
  updateCounts();
}

function setPlaying(playing) {
  state.playing = playing;
  window.clearInterval(state.timer);
  state.timer = null;
  if (playing) {
    state.timer = window.setInterval(() => {
      const duration = state.video.duration_s || DEFAULT_DURATION_S;
      state.position = Math.min(duration, state.position + 1);
      render();
    }, 1000);
  }
}

async function loadVideo(video, { surface = 'player', extra = {} } = {}) {
  setPlaying(false);
  state.video = { duration_s: DEFAULT_DURATION_S, ...video };
  state.position = 0;
  state.liked = state.listed = false;
  $('video-select').value = video.video_id;
  render();
  client.impression(video.video_id, { surface, ...extra });
  await send();
  try {
    const meta = await api(`/v1/videos/${encodeURIComponent(video.video_id)}`, key);
    if (state.video.video_id === meta.video_id) {
      state.video = { ...state.video, ...meta, duration_s: meta.duration_s || DEFAULT_DURATION_S };
      render();
    }
  } catch (_) { /* not in the catalog: keep the id as the title */ }
}

function nextVideo() {
  const list = state.videos;
  const index = list.findIndex((v) => v.video_id === state.video.video_id);
  return list.length ? list[(index + 1) % list.length] : { video_id: `${state.video.video_id}-next` };
}

const ACTIONS = {
  play: () => { setPlaying(true); },
  pause: () => { setPlaying(false); },
  seek_forward: () => { state.position = Math.min(state.video.duration_s, state.position + 10); },
  seek_back: () => { state.position = Math.max(0, state.position - 10); },
  skip_intro: () => { state.position = Math.max(state.position, INTRO_END_S); },
  like: () => { state.liked = !state.liked; toast(state.liked ? 'liked' : 'like removed'); },
  share: () => {
    const link = `${window.location.origin}/player?video_id=${encodeURIComponent(state.video.video_id)}`;
    if (navigator.clipboard) navigator.clipboard.writeText(link).catch(() => {});
    toast(`share link: ${link}`);
  },
  add_to_list: () => {
    state.listed = !state.listed;
    if (state.listed) client.conversion(state.video.video_id, 'add_to_list_complete', { surface: 'player' });
    toast(state.listed ? 'added to my list (conversion sent)' : 'removed from my list');
  },
  subtitles: () => { state.subtitles = !state.subtitles; },
  fullscreen: () => {
    const screen = $('screen');
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else if (screen.requestFullscreen) screen.requestFullscreen().catch(() => toast('fullscreen not allowed here'));
  },
};

async function press(button) {
  const position = Math.round(state.position * 10) / 10;
  client.click(state.video.video_id, button, position, { surface: 'player' });
  if (button === 'next_episode') {
    await send();
    await loadVideo(nextVideo());
    return;
  }
  ACTIONS[button]();
  render();
  await send();
}

function logMessage(message) {
  const log = $('user-log');
  log.prepend(el('div', {}, `${new Date().toLocaleTimeString()} ${JSON.stringify(message)}`));
  while (log.childElementCount > 30) log.lastChild.remove();
}

function renderNextUp(message) {
  const items = Array.isArray(message.items) ? message.items
    : Array.isArray(message.recommendations) ? message.recommendations : null;
  if (!items) return;
  const tiles = items.map((item, slot) => {
    const videoId = typeof item === 'string' ? item : item.video_id;
    const title = (item && item.title) || videoId;
    return el('button', {
      class: 'tile', 'data-video-id': videoId,
      onclick: async () => {
        const extra = { rec_slot: slot };
        if (message.model_version) extra.model_version = message.model_version;
        client.click(state.video.video_id, 'rec_tile', state.position, { surface: 'next_up', ...extra });
        await send();
        await loadVideo({ video_id: videoId, title }, { surface: 'next_up', extra });
      },
    }, el('span', { class: 't' }, title),
    el('span', { class: 'muted small' }, [
      videoId !== title ? videoId : null,
      item && item.score !== undefined ? `score ${fmtNum(item.score, 2)}` : null,
      item && item.reason ? item.reason : null,
    ].filter(Boolean).join(' · ')));
  });
  $('next-up').replaceChildren(...tiles);
}

function onUserMessage(message) {
  logMessage(message);
  renderNextUp(message);
}

async function start() {
  key = readKey();
  if (!key) {
    askForKey('The player needs a read key (CLICKPULSE_READ_KEYS); it is kept for this tab only.');
    return;
  }
  let config;
  try {
    config = await api('/v1/pages/config', key);
  } catch (error) {
    askForKey(error.status === 401 ? 'That read key was refused.' : `The API did not answer: ${error.message}`);
    return;
  }
  const endpoint = params.get('collector') || config.collector_url;
  const writeKey = params.get('write_key') || config.write_key;
  userId = demoUser();
  client = createClient({
    endpoint,
    writeKey,
    device: 'web',
    appVersion: 'demo-player',
    flushIntervalMs: 500,
    onError: (error) => { toast(`SDK: ${error.message}`); updateCounts(); },
  });
  client.identify(userId);
  window.clickpulsePlayer = { client, userId, state };
  $('player').hidden = false;
  $('user-id').textContent = userId;
  $('collector-url').textContent = endpoint;
  const dashboardQuery = new URLSearchParams({ key });
  $('dashboard-link').href = `/dashboard?${dashboardQuery}`;

  try {
    const trending = await api('/v1/trending?limit=20', key);
    state.videos = trending.items.map((i) => ({ video_id: i.video_id, title: i.title }));
  } catch (_) { state.videos = []; }
  const wanted = params.get('video_id');
  if (wanted && !state.videos.some((v) => v.video_id === wanted)) state.videos.unshift({ video_id: wanted });
  if (!state.videos.length) state.videos.push({ video_id: 'demo-video-1', title: 'Demo video' });
  $('video-select').replaceChildren(...state.videos.map((v) => el('option', { value: v.video_id }, v.title || v.video_id)));
  $('video-select').addEventListener('change', (event) => {
    const video = state.videos.find((v) => v.video_id === event.target.value);
    if (video) loadVideo(video, { surface: 'search' });
  });
  for (const button of document.querySelectorAll('#controls [data-button]')) {
    button.addEventListener('click', () => press(button.dataset.button));
  }

  openLive(key, {
    userId,
    onMessage: onUserMessage,
    onState: (s) => {
      const pill = $('live-status');
      pill.textContent = s;
      pill.className = `pill ${s === 'live' ? 'live' : s === 'down' ? 'down' : ''}`;
    },
  });
  await loadVideo(state.videos.find((v) => v.video_id === wanted) || state.videos[0]);
}

start();
