// railgun dashboard. Reads the read token from the URL fragment (#token=…, never sent to the
// server) or a form, keeps it in sessionStorage, and calls the read API with it as a bearer
// token. Builds the DOM with textContent only: nothing the server answers is parsed as HTML.
// Live: rollout decisions, alerts and today's active users arrive through an EventSource on
// /dashboard/live, opened with a single-use ticket that an authenticated POST returns (an
// EventSource cannot send the token as a header, and the token never goes into a URL).
'use strict';

(function () {
  const TOKEN_KEY = 'railgun.readToken';
  const REFRESH_MS = 300000; // 5 min: the feature summary scans its whole range
  const $ = (id) => document.getElementById(id);
  const nf = new Intl.NumberFormat('en-US');
  const nf1 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

  // Uncaught errors are shown on the page as well as in the console (tests read both).
  function recordError(message) {
    const list = $('js-errors');
    if (!list) return;
    const li = document.createElement('li');
    li.textContent = String(message);
    list.appendChild(li);
    list.hidden = false;
  }
  window.addEventListener('error', (e) => recordError(e.message || 'error'));
  window.addEventListener('unhandledrejection', (e) =>
    recordError((e.reason && e.reason.message) || String(e.reason)));

  // ---- token -------------------------------------------------------------------------
  let memoryToken = null; // when sessionStorage is unavailable

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || memoryToken;
    } catch (_) {
      return memoryToken;
    }
  }

  function setToken(t) {
    memoryToken = t;
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) { /* memory only */ }
  }

  // Moves `#token=…` into session storage and removes it from the address bar and history.
  function takeTokenFromFragment() {
    const raw = location.hash.replace(/^#/, '');
    if (!raw) return;
    const params = new URLSearchParams(raw);
    const t = params.get('token');
    if (t === null) return;
    if (t.trim()) setToken(t.trim());
    params.delete('token');
    const rest = params.toString();
    history.replaceState(null, '', location.pathname + location.search + (rest ? '#' + rest : ''));
  }

  // `#day=YYYY-MM-DD` picks the day of the session lengths (kept in the fragment, so a link
  // can carry it).
  function dayFromFragment() {
    const d = new URLSearchParams(location.hash.replace(/^#/, '')).get('day');
    return d && /^\d{4}-\d{2}-\d{2}$/.test(d) ? d : null;
  }

  function dayToFragment(day) {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    params.set('day', day);
    history.replaceState(null, '', location.pathname + location.search + '#' + params.toString());
  }

  // ---- API ---------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(kind, status, message) {
      super(message);
      this.kind = kind; // 'auth' | 'down' | 'missing' | 'http'
      this.status = status;
    }
  }

  async function api(path) {
    const token = getToken();
    if (!token) throw new ApiError('auth', 401, 'A read token is needed.');
    let res;
    try {
      res = await fetch(path, {
        headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
    } catch (_) {
      throw new ApiError('down', 0, 'The server cannot be reached.');
    }
    if (res.status === 401) throw new ApiError('auth', 401, 'The server asks for a read token.');
    if (res.status === 403) throw new ApiError('auth', 403, 'The server refused this token.');
    let body = null;
    try {
      body = await res.json();
    } catch (_) {
      body = null;
    }
    if (!res.ok) {
      const msg = body && typeof body.error === 'string' ? body.error : res.statusText;
      throw new ApiError(res.status === 404 ? 'missing' : 'http', res.status,
        'HTTP ' + res.status + (msg ? ': ' + msg : ''));
    }
    if (body === null) throw new ApiError('http', res.status, 'The answer is not JSON.');
    return body;
  }

  // ---- formatting --------------------------------------------------------------------
  const isNum = (x) => typeof x === 'number' && Number.isFinite(x);
  const int = (x) => (isNum(x) ? nf.format(Math.round(x)) : '—');
  // Every rate of the rollout answers (rates, bounds, limits) is already in percent.
  const pct = (x) => (isNum(x) ? x.toFixed(2) + ' %' : '—');
  const pctPoints = (x) => (isNum(x) ? nf1.format(x) + ' %' : '—');

  function duration(ms) {
    if (!isNum(ms)) return '—';
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(1) + ' s';
    const m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + Math.round(s - m * 60) + ' s';
    const h = Math.floor(m / 60);
    return h + ' h ' + String(m - h * 60).padStart(2, '0') + ' min';
  }

  function when(at) {
    if (at === null || at === undefined || at === '') return '—';
    const d = new Date(typeof at === 'number' && at < 1e11 ? at * 1000 : at);
    if (Number.isNaN(d.getTime())) return String(at);
    return d.toISOString().slice(0, 16).replace('T', ' ');
  }

  function text(el, value, title) {
    el.textContent = value;
    if (title !== undefined) el.title = title;
    else el.removeAttribute('title');
  }

  function cell(tag, value, cls) {
    const c = document.createElement(tag);
    c.textContent = value;
    if (cls) c.className = cls;
    return c;
  }

  function estimateNote(raw, estimate) {
    return isNum(estimate) && Math.abs(estimate - raw) > 0.5 ? '≈ ' + int(estimate) + ' estimated' : '';
  }

  function sectionError(id, err) {
    const el = $(id);
    if (!err) {
      el.hidden = true;
      el.textContent = '';
      return;
    }
    el.hidden = false;
    el.textContent = err.message;
  }

  // ---- DAU ---------------------------------------------------------------------------
  let chart = null;
  let lastActiveDay = null; // default day of the session picker

  function drawChart(days) {
    const box = $('dau-chart');
    if (chart) {
      chart.destroy();
      chart = null;
    }
    box.textContent = '';
    if (typeof window.uPlot !== 'function') {
      box.textContent = 'The chart library did not load.';
      return;
    }
    const xs = days.map((d) => Date.parse(d.date + 'T00:00:00Z') / 1000);
    const ys = days.map((d) => d.users);
    const css = getComputedStyle(document.documentElement);
    const accent = css.getPropertyValue('--accent').trim() || '#2f6fde';
    const muted = css.getPropertyValue('--muted').trim() || '#667085';
    const grid = css.getPropertyValue('--line').trim() || '#e3e6eb';
    const axis = { stroke: muted, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    chart = new window.uPlot({
      width: Math.max(300, box.clientWidth || 800),
      height: 260,
      tzDate: (ts) => window.uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, Math.max(1, max) * 1.1] } },
      axes: [
        Object.assign({}, axis, {
          // Whole days only: the series has one point a day.
          incrs: [86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400, 91 * 86400],
          values: (_u, ticks) => ticks.map((t) => new Date(t * 1000).toISOString().slice(5, 10)),
        }),
        Object.assign({}, axis, { values: (_u, ticks) => ticks.map((v) => (Number.isInteger(v) ? nf.format(v) : '')) }),
      ],
      series: [
        { value: (_u, v) => (v === null ? '—' : new Date(v * 1000).toISOString().slice(0, 10)) },
        { label: 'Users', stroke: accent, width: 2, fill: accent + '22', points: { show: true, size: 5 }, value: (_u, v) => (v === null ? '—' : nf.format(v)) },
      ],
    }, [xs, ys], box);
  }

  function renderDau(series) {
    const days = Array.isArray(series.days) ? series.days : [];
    text($('dau-range'), '(' + series.from + ' to ' + series.to + ', UTC)');
    const rows = $('dau-rows');
    rows.textContent = '';
    for (const d of days.slice().reverse()) {
      const tr = document.createElement('tr');
      tr.appendChild(cell('td', d.date));
      const users = cell('td', int(d.users), 'num');
      users.dataset.date = d.date;
      tr.appendChild(users);
      tr.appendChild(cell('td', isNum(d.estimate) ? nf1.format(d.estimate) : '—', 'num'));
      rows.appendChild(tr);
    }
    const last = days[days.length - 1];
    text($('dau-latest'), last ? int(last.users) : '—');
    if (last && last.date === series.to) showToday(last.date, last.users);
    text($('dau-latest-date'), last ? last.date : '');
    let peak = null;
    for (const d of days) if (!peak || d.users > peak.users) peak = d;
    text($('dau-peak'), peak ? int(peak.users) : '—');
    text($('dau-peak-date'), peak ? peak.date : '');
    const mean = days.length ? days.reduce((a, d) => a + d.users, 0) / days.length : NaN;
    text($('dau-mean'), isNum(mean) ? nf1.format(mean) : '—');
    const input = $('sessions-date');
    input.min = series.from;
    input.max = series.to;
    const active = days.filter((d) => d.users > 0);
    lastActiveDay = active.length ? active[active.length - 1].date : series.to;
    drawChart(days);
  }

  // ---- sessions ----------------------------------------------------------------------
  async function loadSessions(date) {
    const s = await api('/analytics/sessions?date=' + encodeURIComponent(date));
    text($('sessions-count'), int(s.count));
    text($('sessions-estimate'), estimateNote(s.count, s.estimate));
    const ms = (v) => (isNum(v) ? Math.round(v) + ' ms' : undefined);
    text($('sessions-mean'), s.count ? duration(s.meanMs) : '—', ms(s.meanMs));
    text($('sessions-median'), s.count ? duration(s.medianMs) : '—', ms(s.medianMs));
    text($('sessions-p90'), s.count ? duration(s.p90Ms) : '—', ms(s.p90Ms));
    sectionError('sessions-error', null);
  }

  // ---- features ----------------------------------------------------------------------
  function renderFeatures(answer) {
    const list = Array.isArray(answer.features) ? answer.features : [];
    text($('features-range'), '(' + answer.from + ' to ' + answer.to + ')');
    const rows = $('features-rows');
    rows.textContent = '';
    const max = list.reduce((m, f) => Math.max(m, f.events || 0), 0);
    for (const f of list) {
      const tr = document.createElement('tr');
      tr.dataset.feature = f.name;
      tr.appendChild(cell('td', f.name));
      const ev = cell('td', int(f.events), 'num feature-events');
      const evNote = estimateNote(f.events, f.eventsEstimate);
      if (evNote) ev.title = evNote;
      tr.appendChild(ev);
      const us = cell('td', int(f.users), 'num feature-users');
      const usNote = estimateNote(f.users, f.usersEstimate);
      if (usNote) us.title = usNote;
      tr.appendChild(us);
      const barCell = cell('td', '');
      const bar = document.createElement('div');
      bar.className = 'bar';
      bar.style.width = (max ? (100 * (f.events || 0)) / max : 0).toFixed(1) + '%';
      barCell.appendChild(bar);
      tr.appendChild(barCell);
      rows.appendChild(tr);
    }
    $('features-empty').hidden = list.length > 0;
  }

  // ---- rollouts ----------------------------------------------------------------------
  function verdict(lower, upper, limit, installs, minInstalls) {
    if (!isNum(limit)) return ['—', ''];
    if (isNum(minInstalls) && isNum(installs) && installs < minInstalls) {
      return ['too few installs', 'verdict-wait'];
    }
    if (isNum(lower) && lower > limit) return ['over limit', 'verdict-over'];
    if (isNum(upper) && upper < limit) return ['within limit', 'verdict-ok'];
    return ['not yet certain', 'verdict-wait'];
  }

  function fillRate(row, count, rate, bounds, limit, installs, minInstalls) {
    const b = bounds || {};
    text(row.querySelector('.r-count'), int(count));
    text(row.querySelector('.r-rate'), pct(rate));
    text(row.querySelector('.r-bounds'), pct(b.lower) + ' – ' + pct(b.upper));
    text(row.querySelector('.r-limit'), pct(limit));
    const [label, cls] = verdict(b.lower, b.upper, limit, installs, minInstalls);
    const v = row.querySelector('.r-verdict');
    v.textContent = label;
    v.className = 'r-verdict ' + cls;
  }

  function stageText(r) {
    const stages = Array.isArray(r.stages) ? r.stages : [];
    if (isNum(r.stage) && stages.length) return 'Stage ' + (r.stage + 1) + ' of ' + stages.length;
    return r.stage === undefined || r.stage === null ? '—' : String(r.stage);
  }

  function renderDecision(d) {
    const tr = document.createElement('tr');
    tr.appendChild(cell('td', when(d.at), 'nowrap'));
    tr.appendChild(cell('td', String(d.action || '—'), 'action-' + String(d.action || '').replace(/[^a-z_]/g, '')));
    tr.appendChild(cell('td', String(d.actor || '—')));
    const from = isNum(d.fromPercentage) ? pctPoints(d.fromPercentage) : '—';
    const to = isNum(d.toPercentage) ? pctPoints(d.toPercentage) : '—';
    tr.appendChild(cell('td', from === to ? to : from + ' → ' + to, 'num'));
    tr.appendChild(cell('td', int(d.installs), 'num'));
    // Without installs the rates say nothing (their bounds are 0 – 100 %).
    const rate = (v, lo, hi) => (d.installs === 0 ? '—' : pct(v) + ' [' + pct(lo) + ' – ' + pct(hi) + ']');
    tr.appendChild(cell('td', rate(d.errorRate, d.errorLower, d.errorUpper), 'num'));
    tr.appendChild(cell('td', rate(d.crashRate, d.crashLower, d.crashUpper), 'num'));
    tr.appendChild(cell('td', d.reason ? String(d.reason) : ''));
    return tr;
  }

  function renderRollout(r) {
    const node = $('rollout-template').content.firstElementChild.cloneNode(true);
    const q = (sel) => node.querySelector(sel);
    node.dataset.version = String(r.version);
    text(q('.r-version'), String(r.version || '—'));
    text(q('.r-where'), [r.app, r.channel].filter(Boolean).join(' / '));
    const status = String(r.status || 'unknown');
    const badge = q('.r-status');
    badge.textContent = status;
    badge.classList.add('status-' + status.replace(/[^a-z]/g, ''));
    if (r.rolledBack === true) badge.textContent = status + ' · rolled back';
    if (r.current === false) text(q('.r-where'), q('.r-where').textContent + ' · superseded');
    text(q('.r-stage'), stageText(r));
    const stages = Array.isArray(r.stages) ? r.stages : [];
    const list = q('.r-stages');
    list.textContent = '';
    stages.forEach((s, i) => {
      if (i) list.appendChild(document.createTextNode(' → '));
      list.appendChild(cell('span', pctPoints(s), i === r.stage ? 'stage-current' : ''));
    });
    text(q('.r-percentage'), pctPoints(r.rolloutPercentage));
    text(q('.r-started'), r.stageStartedAt ? 'since ' + when(r.stageStartedAt) + ' UTC' : '');
    const limits = r.limits || {};
    text(q('.r-installs'), int(r.totalInstalls));
    const min = limits.minInstalls;
    text(q('.r-min-installs'), !isNum(min) ? ''
      : isNum(r.totalInstalls) && r.totalInstalls >= min ? 'at least ' + int(min) + ' to decide'
        : 'needs ' + int(min) + ' to decide');
    text(q('.r-health'), isNum(r.healthScore) ? nf1.format(r.healthScore) + ' / 100' : '—');
    text(q('.r-fallback'), r.fallbackVersion ? 'fallback ' + r.fallbackVersion : 'no fallback');
    // Release health with sessions: null rates before any session ended.
    const s = r.sessions || {};
    text(q('.r-crash-free-sessions'), pct(r.crashFreeSessions));
    text(q('.r-sessions'), ['ok', 'errored', 'crashed', 'abnormal']
      .map((k) => int(s[k]) + ' ' + k).join(' · '));
    text(q('.r-crash-free-users'), pct(r.crashFreeUsers));
    text(q('.r-adoption'), 'adoption ' + pct(r.adoption) + ' (' + int(r.activeInstalls) + ' of '
      + int(r.appActiveInstalls) + ' installs in 24 h)');
    fillRate(q('.r-errors'), r.installsWithErrors, r.errorRate, r.errorRateBounds,
      limits.maxErrorRate, r.totalInstalls, limits.minInstalls);
    fillRate(q('.r-crashes'), r.installsWithCrashes, r.crashRate, r.crashRateBounds,
      limits.maxCrashRate, r.totalInstalls, limits.minInstalls);
    const decisions = Array.isArray(r.decisions) ? r.decisions.slice() : [];
    decisions.sort((a, b) => String(b.at).localeCompare(String(a.at)));
    text(q('.r-log-count'), String(decisions.length));
    const body = q('.r-decisions');
    for (const d of decisions) body.appendChild(renderDecision(d));
    return node;
  }

  function renderRollouts(answer) {
    const list = Array.isArray(answer.rollouts) ? answer.rollouts : [];
    const box = $('rollouts');
    box.textContent = '';
    for (const r of list) box.appendChild(renderRollout(r));
    $('rollouts-empty').hidden = list.length > 0;
  }

  // ---- live feed ---------------------------------------------------------------------
  const LIVE_MAX_ITEMS = 50;
  let live = null; // the open EventSource
  let liveTimer = null;
  let liveDelayMs = 1000;

  function showToday(date, users) {
    text($('live-today'), int(users));
    text($('live-today-date'), date);
  }

  function liveState(on) {
    const el = $('live-state');
    el.dataset.live = on ? 'on' : 'off';
    el.textContent = on ? '● live' : 'not live';
  }

  function liveItem(kind, label, cls) {
    const list = $('live-events');
    const li = cell('li', label, cls);
    li.dataset.kind = kind;
    list.insertBefore(li, list.firstChild);
    while (list.children.length > LIVE_MAX_ITEMS) list.removeChild(list.lastChild);
    $('live-empty').hidden = true;
  }

  function parsed(e) {
    try {
      return JSON.parse(e.data);
    } catch (_) {
      return null;
    }
  }

  function onDecision(e) {
    const d = parsed(e);
    if (!d || typeof d !== 'object') return;
    const to = isNum(d.toPercentage) ? ' → ' + pctPoints(d.toPercentage) : '';
    liveItem('decision', when(d.at) + ' UTC · ' + String(d.action || '?') + ' ' +
      [d.app, d.channel, d.version].filter(Boolean).join(' / ') + to + ' by ' +
      String(d.actor || '?') + (d.reason ? ' (' + String(d.reason) + ')' : ''),
    'live-decision action-' + String(d.action || '').replace(/[^a-z_]/g, ''));
    api('/analytics/rollouts').then(renderRollouts).catch((err) => sectionError('rollouts-error', err));
  }

  function onAlert(e) {
    const a = parsed(e);
    if (!a || typeof a !== 'object') return;
    liveItem('alert', when(a.at) + ' UTC · ' + String(a.severity || 'alert').toUpperCase() + ' ' +
      String(a.title || a.kind || ''), a.severity === 'critical' ? 'live-critical' : '');
  }

  function onActiveUsers(e) {
    const a = parsed(e);
    if (a && isNum(a.users) && typeof a.date === 'string') showToday(a.date, a.users);
  }

  function closeLive() {
    clearTimeout(liveTimer);
    liveTimer = null;
    if (live) live.close();
    live = null;
    liveState(false);
  }

  // Retries with a doubling delay (1 s to 60 s) and jitter, so a restarted server is not met
  // by every page in the same second.
  function retryLive() {
    closeLive();
    const wait = liveDelayMs / 2 + Math.random() * (liveDelayMs / 2);
    liveDelayMs = Math.min(liveDelayMs * 2, 60000);
    liveTimer = setTimeout(openLive, wait);
  }

  async function openLive() {
    if (live || typeof window.EventSource !== 'function') return;
    const token = getToken();
    if (!token) return;
    let ticket = null;
    try {
      const res = await fetch('/dashboard/live/ticket', {
        method: 'POST',
        headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        referrerPolicy: 'no-referrer',
      });
      if (res.ok) ticket = (await res.json()).ticket;
      else if (res.status === 404) return; // a server without the live feed
    } catch (_) {
      ticket = null;
    }
    if (typeof ticket !== 'string' || live) {
      if (!live) retryLive();
      return;
    }
    const es = new window.EventSource('/dashboard/live?ticket=' + encodeURIComponent(ticket));
    live = es;
    es.addEventListener('open', () => {
      liveDelayMs = 1000;
      liveState(true);
    });
    es.addEventListener('decision', onDecision);
    es.addEventListener('alert', onAlert);
    es.addEventListener('active-users', onActiveUsers);
    // The ticket is spent: EventSource's own reconnect would be refused, so take a new one.
    es.addEventListener('error', () => {
      if (live === es) retryLive();
    });
  }

  // ---- page state --------------------------------------------------------------------
  function banner(message, retry) {
    const b = $('banner');
    b.textContent = '';
    if (!message) {
      b.hidden = true;
      return;
    }
    b.appendChild(document.createTextNode(message));
    if (retry) {
      const btn = document.createElement('button');
      btn.type = 'button';
      btn.textContent = 'Retry';
      btn.addEventListener('click', () => load());
      b.appendChild(btn);
    }
    b.hidden = false;
  }

  function askForToken(reason) {
    closeLive();
    $('token-reason').textContent = reason;
    $('token-panel').hidden = false;
    $('content').hidden = true;
    $('forget').hidden = true;
    document.body.dataset.state = 'need-token';
    $('token-input').focus();
  }

  let loading = false;
  let pickedDay = null; // chosen in the picker or by #day=; else the latest active day

  async function load() {
    if (loading) return;
    loading = true;
    try {
      await loadAll();
    } finally {
      loading = false;
    }
  }

  async function loadAll() {
    banner(null);
    if (!getToken()) {
      askForToken('Enter the read token (RAILGUN_READ_TOKEN) to see the dashboard.');
      return;
    }
    document.body.dataset.state = 'loading';
    $('token-panel').hidden = true;
    $('content').hidden = false;
    $('forget').hidden = false;
    const parts = [
      ['dau-error', api('/analytics/dau-series').then(renderDau)],
      ['features-error', api('/analytics/feature-summary').then(renderFeatures)],
      ['rollouts-error', api('/analytics/rollouts').then(renderRollouts)],
    ];
    const series = parts[0][1];
    const sessions = series.then(() => {
      const input = $('sessions-date');
      const day = pickedDay || lastActiveDay || input.max;
      input.value = day;
      return loadSessions(day);
    });
    parts.push(['sessions-error', sessions]);
    const results = await Promise.allSettled(parts.map((p) => p[1]));
    const errors = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
    const auth = errors.find((e) => e instanceof ApiError && e.kind === 'auth');
    if (auth) {
      setToken(null);
      askForToken(auth.status === 403
        ? 'The server refused this token (403). Enter the read token.'
        : 'The server asks for a read token (401). Enter the read token.');
      return;
    }
    if (errors.some((e) => e instanceof ApiError && e.kind === 'down')) {
      banner('The railgun server cannot be reached. Check that it is running, then retry.', true);
      document.body.dataset.state = 'down';
      return;
    }
    let failed = false;
    results.forEach((r, i) => {
      const id = parts[i][0];
      if (r.status === 'fulfilled') {
        sectionError(id, null);
      } else if (id === 'rollouts-error' && r.reason instanceof ApiError && r.reason.kind === 'missing') {
        sectionError(id, new Error('This server has no rollout API (GET /analytics/rollouts).'));
      } else {
        sectionError(id, r.reason instanceof Error ? r.reason : new Error(String(r.reason)));
        failed = true;
      }
    });
    text($('updated'), 'Updated ' + new Date().toISOString().slice(11, 19) + ' UTC');
    document.body.dataset.state = failed ? 'error' : 'ready';
    openLive();
  }

  function init() {
    takeTokenFromFragment();
    pickedDay = dayFromFragment();
    $('token-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const t = $('token-input').value.trim();
      if (!t) return;
      setToken(t);
      $('token-input').value = '';
      $('token-panel').hidden = true;
      load();
    });
    $('refresh').addEventListener('click', () => load());
    $('forget').addEventListener('click', () => {
      setToken(null);
      askForToken('Token forgotten. Enter the read token to see the dashboard again.');
    });
    $('sessions-form').addEventListener('submit', (e) => e.preventDefault());
    $('sessions-date').addEventListener('change', (e) => {
      const v = e.target.value;
      if (!/^\d{4}-\d{2}-\d{2}$/.test(v)) return;
      pickedDay = v;
      dayToFragment(v);
      loadSessions(v).catch((err) => sectionError('sessions-error', err));
    });
    window.addEventListener('hashchange', () => {
      const day = dayFromFragment();
      if (/(^#|&)token=/.test(location.hash)) {
        takeTokenFromFragment();
        if (day) pickedDay = day;
        load();
      } else if (day && day !== pickedDay) {
        pickedDay = day;
        $('sessions-date').value = day;
        loadSessions(day).catch((err) => sectionError('sessions-error', err));
      }
    });
    let resizeTimer = null;
    window.addEventListener('resize', () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(() => {
        if (chart) chart.setSize({ width: Math.max(300, $('dau-chart').clientWidth), height: 260 });
      }, 150);
    });
    setInterval(() => {
      if (!document.hidden && getToken() && $('token-panel').hidden) load();
    }, REFRESH_MS);
    load();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
