// The live dashboard: every number comes from /v1/live snapshots (live:global, about 4 per second);
// clicks per second are the change in total clicks over the last 5 seconds of snapshots.
import { api, askForKey, el, fmtInt, fmtNum, fmtPct, openLive, params, readKey } from '/static/common.js';

const RATE_WINDOW_MS = 5000;
const CHART_SPAN_MS = 120_000;
const TICKER_SIZE = 30;

const history = []; // {t, clicks} per snapshot, for the rate
const series = [];  // {t, rate} points drawn on the chart
const ticker = [];
let latest = null;

function $(id) { return document.getElementById(id); }

function setText(id, text) {
  const node = $(id);
  if (node.textContent !== text) node.textContent = text;
}

function clicksPerSecond(now, clicks) {
  history.push({ t: now, clicks });
  while (history.length > 2 && now - history[0].t > RATE_WINDOW_MS) history.shift();
  const first = history[0];
  if (!first || now - first.t < 500) return null;
  return Math.max(0, (clicks - first.clicks) / ((now - first.t) / 1000));
}

function onSnapshot(snapshot) {
  latest = snapshot;
  const now = Date.now();
  const totals = snapshot.totals || {};
  const funnel = snapshot.funnel || {};
  const rate = clicksPerSecond(now, totals.clicks || 0);
  if (rate !== null) {
    series.push({ t: now, rate });
    while (series.length && now - series[0].t > CHART_SPAN_MS) series.shift();
  }
  setText('clicks-per-s', rate === null ? '–' : fmtNum(rate, 1));
  setText('total-clicks', fmtInt(totals.clicks));
  setText('total-impressions', fmtInt(totals.impressions));
  setText('total-conversions', fmtInt(totals.conversions));
  setText('ctr', fmtPct(funnel.ctr));
  setText('conversion-rate', fmtPct(funnel.conversion_rate));
  setText('events-per-s', fmtNum(snapshot.events_per_s, 1));
  const lag = snapshot.consumer_lag || {};
  setText('lag-total', fmtInt(Object.values(lag).reduce((a, b) => a + b, 0)));
  setText('updated', snapshot.at ? `updated ${new Date(snapshot.at).toLocaleTimeString()}` : '');
  renderTop(snapshot.trending || []);
  renderButtons((snapshot.ctr || {}).button || {}, totals.clicks || 0);
  renderSurfaces((snapshot.ctr || {}).surface || {});
  renderLag(lag);
  renderFunnel(funnel);
}

function replaceRows(tbodyId, rows) {
  $(tbodyId).replaceChildren(...rows);
}

function bar(share, alt = false) {
  const width = Math.max(0, Math.min(1, share || 0)) * 100;
  return el('td', { class: 'bar-cell' }, el('div', { class: alt ? 'hbar alt' : 'hbar', style: `width:${width}%` }));
}

function renderTop(items) {
  const max = Math.max(...items.map((i) => i.score), 1e-9);
  replaceRows('top-videos', items.map((item, index) => el('tr', { 'data-video-id': item.video_id },
    el('td', {}, String(index + 1)),
    el('td', { class: 'title', title: item.video_id }, item.title || item.video_id,
      item.title ? el('span', { class: 'muted small' }, ` · ${item.video_id}`) : null),
    el('td', { class: 'num' }, fmtNum(item.score, 1)),
    bar(item.score / max))));
}

function renderButtons(buttons, totalClicks) {
  const rows = Object.entries(buttons).sort((a, b) => b[1].clicks - a[1].clicks);
  replaceRows('ctr-button', rows.map(([name, c]) => {
    const share = totalClicks ? c.clicks / totalClicks : null;
    return el('tr', { 'data-button': name },
      el('td', {}, name), el('td', { class: 'num' }, fmtInt(c.clicks)), el('td', { class: 'num' }, fmtPct(share)),
      el('td', { class: 'num' }, fmtPct(c.ctr)), bar(share));
  }));
}

function renderSurfaces(surfaces) {
  const rows = Object.entries(surfaces).sort((a, b) => (b[1].impressions + b[1].clicks) - (a[1].impressions + a[1].clicks));
  const maxCtr = Math.max(...rows.map(([, c]) => c.ctr || 0), 1e-9);
  replaceRows('ctr-surface', rows.map(([name, c]) => el('tr', { 'data-surface': name },
    el('td', {}, name), el('td', { class: 'num' }, fmtInt(c.impressions)), el('td', { class: 'num' }, fmtInt(c.clicks)),
    el('td', { class: 'num' }, fmtPct(c.ctr)), el('td', { class: 'num' }, fmtPct(c.conversion_rate)),
    bar((c.ctr || 0) / maxCtr, true))));
}

function renderLag(lag) {
  const rows = Object.entries(lag).sort();
  const max = Math.max(...rows.map(([, v]) => v), 1);
  if (!rows.length) {
    replaceRows('lag', [el('tr', {}, el('td', { colspan: 3, class: 'muted' }, 'no consumer reported lag in the last minute'))]);
    return;
  }
  replaceRows('lag', rows.map(([name, value]) => el('tr', {},
    el('td', {}, name), el('td', { class: 'num' }, fmtInt(value)), bar(value / max, true))));
}

const SVG = 'http://www.w3.org/2000/svg';
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderFunnel(funnel) {
  const stages = [
    ['impressions', funnel.impressions || 0, '#4cc2ff'],
    ['clicks', funnel.clicks || 0, '#7fd3ff'],
    ['conversions', funnel.conversions || 0, '#ffb454'],
  ];
  const max = Math.max(...stages.map((s) => s[1]), 1);
  const nodes = [];
  stages.forEach(([name, value, color], i) => {
    const y = 8 + i * 62;
    const width = Math.max(2, (value / max) * 260);
    nodes.push(svg('rect', { x: 130 - width / 2 + 70, y, width, height: 38, rx: 4, fill: color, opacity: 0.85 }));
    nodes.push(svg('text', { x: 4, y: y + 17, fill: '#e6edf3', 'font-size': 13 }, name));
    nodes.push(svg('text', { x: 4, y: y + 33, fill: '#8b98a5', 'font-size': 12 }, fmtInt(value)));
  });
  nodes.push(svg('text', { x: 396, y: 66, fill: '#8b98a5', 'font-size': 12, 'text-anchor': 'end' }, `CTR ${fmtPct(funnel.ctr)}`));
  nodes.push(svg('text', { x: 396, y: 128, fill: '#8b98a5', 'font-size': 12, 'text-anchor': 'end' },
    `conv. ${fmtPct(funnel.conversion_rate)}`));
  $('funnel').replaceChildren(...nodes);
}

function drawChart() {
  const canvas = $('rate-chart');
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  const left = 44, right = 8, top = 8, bottom = 20;
  const plotW = width - left - right, plotH = height - top - bottom;
  const now = Date.now();
  const max = Math.max(1, ...series.map((p) => p.rate)) * 1.15;
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#8b98a5';
  ctx.strokeStyle = '#26313d';
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = top + plotH - (plotH * i) / 4;
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(width - right, y); ctx.stroke();
    ctx.fillText(fmtNum((max * i) / 4, max < 10 ? 1 : 0), 4, y + 4);
  }
  for (let s = 0; s <= CHART_SPAN_MS / 1000; s += 30) {
    const x = left + plotW - (plotW * s * 1000) / CHART_SPAN_MS;
    ctx.fillText(s === 0 ? 'now' : `-${s}s`, x - 12, height - 4);
  }
  if (series.length < 2) return;
  const xOf = (t) => left + plotW - (plotW * (now - t)) / CHART_SPAN_MS;
  const yOf = (v) => top + plotH - (plotH * v) / max;
  ctx.beginPath();
  series.forEach((p, i) => (i ? ctx.lineTo(xOf(p.t), yOf(p.rate)) : ctx.moveTo(xOf(p.t), yOf(p.rate))));
  ctx.strokeStyle = '#4cc2ff';
  ctx.lineWidth = 2;
  ctx.stroke();
  ctx.lineTo(xOf(series[series.length - 1].t), top + plotH);
  ctx.lineTo(xOf(series[0].t), top + plotH);
  ctx.closePath();
  ctx.fillStyle = 'rgba(76, 194, 255, 0.12)';
  ctx.fill();
}

function onEvents(message) {
  if (message.event_type !== 'click') return;
  for (const e of message.recent || []) {
    ticker.unshift(e);
  }
  ticker.length = Math.min(ticker.length, TICKER_SIZE);
  $('ticker').replaceChildren(...ticker.map((e) => el('li', {},
    el('b', {}, e.button_id || '?'), ` on ${e.video_id} `, el('span', { class: 'muted' }, `by ${e.user_id}`))));
}

function setStatus(state) {
  const pill = $('status');
  pill.textContent = state;
  pill.className = `pill ${state === 'live' ? 'live' : state === 'down' ? 'down' : ''}`;
}

async function start() {
  const key = readKey();
  if (!key) {
    askForKey('This dashboard needs a read key (CLICKPULSE_READ_KEYS); it is kept for this tab only.');
    return;
  }
  try {
    await api('/v1/trending?limit=1', key);
  } catch (error) {
    if (error.status === 401) {
      askForKey('That read key was refused; enter a key from CLICKPULSE_READ_KEYS.');
      return;
    }
    setStatus('down');
  }
  $('dashboard').hidden = false;
  const playerQuery = new URLSearchParams(params);
  playerQuery.set('key', key);
  $('player-link').href = `/player?${playerQuery}`;
  openLive(key, {
    onMessage: (message) => {
      if (message.type === 'snapshot') onSnapshot(message);
      else if (message.type === 'events') onEvents(message);
    },
    onState: setStatus,
  });
  const frame = () => { drawChart(); window.setTimeout(() => requestAnimationFrame(frame), 250); };
  frame();
  window.clickpulseDashboard = { latest: () => latest };
}

start();
