// The console's shell: sign-in, the page router (hash routes, so a page can be
// bookmarked and reloaded), and the live stream that tells the open page to look
// again when something changed at the site.
import * as api from './api.js';
import {fill, h, showError} from './dom.js';
import * as clients from './pages/clients.js';
import * as collections from './pages/collections.js';
import * as deployment from './pages/deployment.js';
import * as dps from './pages/dps.js';
import * as messages from './pages/messages.js';
import * as overview from './pages/overview.js';
import * as pkg from './pages/package.js';
import * as tokens from './pages/tokens.js';

// Route patterns -> page modules. A module exports title and mount(view, ctx,
// params) -> {update(): Promise}; update() loads what the page shows and redraws
// only the parts that changed data, leaving inputs alone.
const kRoutes = [
  ['', overview.page],
  ['packages', pkg.listPage],
  ['package/:name', pkg.page],
  ['deployments', deployment.listPage],
  ['deployments/new', deployment.newPage],
  ['deployment/:id', deployment.page],
  ['dps', dps.page],
  ['dp/:name', dps.detailPage],
  ['clients', clients.page],
  ['client/:id', clients.detailPage],
  ['collections', collections.page],
  ['messages', messages.page],
  ['tokens', tokens.page],
];

const kNav = [
  ['', 'Overview'], ['packages', 'Packages'], ['deployments', 'Deployments'], ['dps', 'DPs'],
  ['clients', 'Clients'], ['collections', 'Collections'], ['messages', 'Messages'],
  ['tokens', 'Tokens', 'admin'],
];

const kRank = {'read-only': 1, operator: 2, admin: 3};

const state = {
  who: null,        // GET /whoami
  page: null,       // the mounted page
  since: 0,         // the newest revision seen on the change stream
  stream: null,     // AbortController of the stream's request
  updating: false,
  again: false,
  lastUpdate: 0,
  lastCost: 0,      // how long the last update took, ms
};

// What pages are handed: who is signed in and what they may do.
const ctx = {
  get role() { return state.who ? state.who.role : ''; },
  can(role) { return (kRank[this.role] || 0) >= kRank[role]; },
  get tokenId() { return state.who ? state.who.token_id : 0; },
  go(route) { location.hash = '#/' + route; },
  refresh() { scheduleUpdate(); },
};

function match(path) {
  const parts = path.split('/').filter((p) => p !== '');
  for (const [pattern, page] of kRoutes) {
    const pp = pattern.split('/').filter((p) => p !== '');
    if (pp.length !== parts.length) continue;
    const params = {};
    let ok = true;
    pp.forEach((p, i) => {
      if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(parts[i]);
      else if (p !== parts[i]) ok = false;
    });
    if (ok) return {page, params};
  }
  return null;
}

function renderNav(current) {
  const nav = document.getElementById('nav');
  fill(nav, kNav.filter(([, , need]) => !need || ctx.can(need)).map(([route, label]) => {
    const top = current.split('/')[0];
    const active = route === top || (route === 'packages' && top === 'package') ||
        (route === 'deployments' && top === 'deployment') || (route === 'dps' && top === 'dp') ||
        (route === 'clients' && top === 'client');
    return h('a', {href: '#/' + route, 'aria-current': active ? 'page' : null}, label);
  }));
  nav.hidden = false;
}

async function route() {
  if (!state.who) return;
  const raw = location.hash.replace(/^#\/?/, '').split('?')[0];
  let path = raw, m = null;
  try {
    path = decodeURIComponent(raw);
    m = match(raw);
  } catch {
    m = null;  // a malformed escape in a typed URL: no such page
  }
  renderNav(path);
  const view = document.getElementById('view');
  view.replaceChildren();
  showProblem(null);
  if (!m) {
    state.page = null;
    fill(view, h('h1', 'Not found'), h('p', 'No console page is at ', h('code', path), '.'));
    return;
  }
  document.title = (m.page.title || 'depot') + ' · depot console';
  state.page = m.page.mount(view, ctx, m.params);
  view.focus({preventScroll: true});
  await runUpdate();
}

async function runUpdate() {
  const page = state.page;
  if (!page) return;
  state.updating = true;
  const began = performance.now();
  try {
    await page.update();
    if (state.page === page) showProblem(null);
  } catch (e) {
    if (e.status === 401) return signOut('Your token is no longer valid: ' + e.message);
    // Shown above the page (a deployment that does not exist, the site down), which
    // keeps what it showed last.
    if (state.page === page) showProblem(e);
  } finally {
    state.updating = false;
    state.lastUpdate = performance.now();
    state.lastCost = state.lastUpdate - began;
  }
  if (state.again && state.page === page) {
    state.again = false;
    scheduleUpdate();
  }
}

// The page looks again, at most every 250 ms -- a burst of changes is one update --
// and never sooner than twice its last update took, so a busy site is asked less.
function scheduleUpdate() {
  if (state.updating) {
    state.again = true;
    return;
  }
  const gap = Math.max(250, 2 * state.lastCost);
  const wait = Math.max(0, gap - (performance.now() - state.lastUpdate));
  setTimeout(runUpdate, wait);
}

function showProblem(e) {
  const el = document.getElementById('problem');
  fill(el, e ? (e.status === 404 ? '' : 'Could not load this page: ') + e.message : '');
  el.hidden = !e;
}

function setLive(ok, text) {
  const el = document.getElementById('live');
  el.className = 'live ' + (ok ? 'on' : 'off');
  fill(el, text);
  el.title = ok ? 'Pages update as the site changes' : 'Not connected to the change stream';
}

// One long poll at a time on /changes: it answers when the site's revision moves
// past ours (or after 25 s with nothing new).
async function stream() {
  let failures = 0;
  while (state.who) {
    const ctl = new AbortController();
    state.stream = ctl;
    try {
      const r = await api.get(`/changes?since=${state.since}&wait=25`, {signal: ctl.signal});
      failures = 0;
      setLive(true, 'live');
      // Another site process (or a restarted one) may count from elsewhere: adopt its
      // count and look once.
      if (r.changed || r.revision < state.since) {
        state.since = r.revision;
        scheduleUpdate();
      }
    } catch (e) {
      if (!state.who || e.name === 'AbortError') return;
      if (e.status === 401) return signOut('Your token is no longer valid: ' + e.message);
      ++failures;
      setLive(false, 'reconnecting');
      // Backoff with full jitter, 1 s doubling to 30 s.
      const cap = Math.min(30000, 1000 * 2 ** Math.min(failures, 5));
      await new Promise((r) => setTimeout(r, Math.random() * cap));
      if (failures === 1) scheduleUpdate();
    }
  }
}

function signOut(why) {
  // The stream first: nothing may go out without the token once it is gone.
  if (state.stream) state.stream.abort();
  state.who = null;
  state.page = null;
  api.setToken('');
  showProblem(null);
  showSignIn(why);
}

function showSignIn(why) {
  document.getElementById('nav').hidden = true;
  fill(document.getElementById('who'));
  fill(document.getElementById('site'));
  setLive(false, '');
  const input = h('input', {type: 'password', id: 'token', name: 'token', autocomplete: 'off',
    required: true, spellcheck: 'false', placeholder: 'depot_admin_…'});
  const err = h('p.error', {role: 'alert', hidden: true});
  const form = h('form.signin', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      showError(err, null);
      api.setToken(input.value.trim());
      try {
        await start();
      } catch (e) {
        api.setToken('');
        showError(err, e.status === 401 ? 'That token was refused: ' + e.message : e);
      }
    },
  },
  h('h1', 'Sign in'),
  h('p', 'Paste an admin, operator or read-only token (', h('code', 'depot token create'),
      '). It is kept for this tab only and sent to this site alone.'),
  h('label.field', h('span.label', 'Token'), input),
  err,
  h('button.primary', {type: 'submit'}, 'Sign in'));
  fill(document.getElementById('view'), form);
  if (why) showError(err, why);
  input.focus();
}

async function start() {
  const who = await api.get('/whoami');
  if (!kRank[who.role]) {
    throw new Error(`a ${who.role} credential is for a machine, not the console; ` +
        'sign in with an admin, operator or read-only token');
  }
  state.who = who;
  state.since = who.revision;
  fill(document.getElementById('site'), 'site ' + who.site, who.parent ? ` (child of ${who.parent})` : '');
  fill(document.getElementById('who'), h('span', {title: 'token ' + who.name}, who.role),
      h('button.link', {type: 'button', onclick: () => signOut()}, 'Sign out'));
  setLive(true, 'live');
  stream();
  await route();
}

window.addEventListener('hashchange', () => route());
window.addEventListener('DOMContentLoaded', async () => {
  if (!api.token()) return showSignIn();
  try {
    await start();
  } catch (e) {
    signOut(e.message);
  }
});
