// main.js - the single-page app: signs in, keeps the live event stream, and
// routes the URL hash to a view.
//
//   #/                           my workflows           (views/list.js)
//   #/submit                     a new analysis         (views/submit.js)
//   #/workflows/ID               one workflow           (views/workflow.js)
//   #/workflows/ID/view/JOB      results on the slide   (views/viewer.js)
//   #/ops                        operations, administrators only (views/ops.js);
//                                anyone else gets "page not found", as for any
//                                path that does not exist
//
// A view is mount(container, params, app) -> {onEvent(ev), onResync(),
// unmount()}. Views read their own snapshots over HTTP and are told about
// every event of the signed-in user; they decide what to re-read.

import { api, onUnauthorized } from './api.js';
import { LiveEvents } from './events.js';
import { h, clear } from './dom.js';
import * as listView from './views/list.js';
import * as submitView from './views/submit.js';
import * as workflowView from './views/workflow.js';
import * as viewerView from './views/viewer.js';
import * as opsView from './views/ops.js';

const CONN_TEXT = { live: 'Live', connecting: 'Reconnecting…', polling: 'Polling', offline: 'Offline — retrying' };

const app = {
  user: null,
  admin: false,
  authMode: 'header',
  view: null,
  live: null,
  navigate(hash) { location.hash = hash; },
};

const $ = (sel) => document.querySelector(sel);

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  let m;
  if (hash === '/' || hash === '') return { view: listView, params: {}, nav: '#/' };
  if (hash === '/submit') return { view: submitView, params: {}, nav: '#/submit' };
  if (hash === '/ops' && app.admin) return { view: opsView, params: {}, nav: '#/ops' };
  if ((m = hash.match(/^\/workflows\/([^/]+)\/view\/([^/]+)$/)))
    return { view: viewerView, params: { id: decodeURIComponent(m[1]), job: decodeURIComponent(m[2]) } };
  if ((m = hash.match(/^\/workflows\/([^/]+)$/)))
    return { view: workflowView, params: { id: decodeURIComponent(m[1]) } };
  return { view: null, params: {} };
}

function render() {
  if (!app.user) return;
  if (app.view) app.view.unmount();
  app.view = null;
  const main = clear($('#main'));
  const r = route();
  for (const a of document.querySelectorAll('.nav a')) {
    if (a.getAttribute('href') === r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (!r.view) {
    main.append(h('div', { class: 'panel', id: 'page-notfound' }, h('h1', {}, 'Page not found'),
      h('p', {}, 'There is nothing at ', h('code', {}, location.hash), '. ', h('a', { href: '#/' }, 'Back to my workflows'), '.')));
    return;
  }
  app.view = r.view.mount(main, r.params, app);
  // Keyboard and screen-reader users land on the new page's heading, also
  // when they followed a nav link (which would otherwise keep the focus).
  const heading = main.querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: true });
  }
}

function setConn(state) {
  const el = $('#conn');
  el.dataset.state = state;
  el.querySelector('.conn-text').textContent = CONN_TEXT[state] || state;
  el.title = state === 'live' ? 'Live updates over WebSocket'
    : state === 'polling' ? 'WebSocket unavailable: checking for updates every 2 s'
      : 'Not connected to the service; the page keeps retrying';
}

async function startSession(user, admin = false) {
  app.user = user;
  app.admin = admin === true;
  $('#nav-ops').hidden = !app.admin;
  $('#signin-page').hidden = true;
  $('#main').hidden = false;
  $('.nav').hidden = false;
  $('.session').hidden = false;
  $('#whoami').textContent = user;
  let since = 0;
  try { since = (await api.workflows(1)).event_seq || 0; } catch { /* the stream starts at 0 */ }
  if (!app.live) {
    app.live = new LiveEvents({
      onEvent: (ev) => app.view && app.view.onEvent(ev),
      onResync: () => app.view && app.view.onResync(),
      onState: setConn,
    });
  }
  app.live.start(since);
  render();
}

function showSignIn(message = '') {
  app.user = null;
  app.admin = false;
  if (app.live) app.live.stop();
  if (app.view) app.view.unmount();
  app.view = null;
  clear($('#main')).hidden = true;
  $('.nav').hidden = true;
  $('.session').hidden = true;
  $('#signin-page').hidden = false;
  const token = app.authMode !== 'header';
  $('#signin-user').hidden = token;
  $('#signin-user-label').hidden = token;
  $('#signin-token').hidden = !token;
  $('#signin-token-label').hidden = !token;
  $('#signin-error').textContent = message;
  (token ? $('#signin-token') : $('#signin-user')).focus();
}

async function onSignIn(e) {
  e.preventDefault();
  const token = app.authMode !== 'header';
  const value = (token ? $('#signin-token') : $('#signin-user')).value.trim();
  if (!value) {
    $('#signin-error').textContent = token ? 'Enter your API token.' : 'Enter a user name.';
    return;
  }
  $('#signin-submit').disabled = true;
  try {
    const res = await api.signIn(token ? { token: value } : { user: value });
    $('#signin-token').value = '';
    await startSession(res.user, res.admin);
  } catch (err) {
    // The API speaks of headers; the form of user names.
    $('#signin-error').textContent = err.message.replace(/^invalid X-User-ID: /i, 'This user name cannot be used: ');
  } finally {
    $('#signin-submit').disabled = false;
  }
}

async function onSignOut() {
  try { await api.signOut(); } catch { /* signed out locally anyway */ }
  showSignIn('Signed out.');
}

async function boot() {
  $('#signin').addEventListener('submit', onSignIn);
  $('#signout').addEventListener('click', onSignOut);
  window.addEventListener('hashchange', render);
  onUnauthorized(() => { if (app.user) showSignIn('Your session has ended; sign in again.'); });
  let session = null;
  for (let attempt = 0; !session; attempt++) {
    try {
      session = await api.session();
    } catch (err) {
      $('#main').replaceChildren(h('p', { class: 'banner bad' }, `The service does not answer: ${err.message}. Retrying…`));
      await new Promise((r) => setTimeout(r, Math.min(5000, 500 * 2 ** attempt)));
    }
  }
  app.authMode = session.auth_mode;
  $('#signin-hint').textContent = app.authMode === 'header'
    ? 'Enter your user name. (The service trusts names given on this machine; on a shared server it asks for a token instead.)'
    : 'Enter the API token an administrator created for you with tessera user add.';
  if (session.user) await startSession(session.user, session.admin);
  else showSignIn();
}

boot();
