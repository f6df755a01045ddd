// The page's entry: sign-in and the hash router (#/gateways, #/routes/NAME, #/messages/ID …).
// The hash carries only where you are, never the token.

import { api, ApiError, onUnauthorized, token } from './api.js';
import { clearStaleFlash, errorBox, fill, flash, h } from './dom.js';
import { Form } from './forms.js';
import { gatewayForm, listGateways } from './gateways.js';
import { listMessages, messageDetail } from './messages.js';
import { listRoutes, routeForm } from './routes.js';
import { testSend } from './testsend.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let cleanup = null;

function signIn(reason) {
  nav.hidden = true;
  const form = new Form('signin');
  const input = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false' });
  const button = h('button', { type: 'submit', id: 'sign-in' }, 'Sign in');
  const el = h('form', { id: 'signin-form', novalidate: true },
    form.summary,
    form.field('token', 'Admin token', input, { required: true, id: 'token', hint: 'Created with: smsgw token create --name NAME --scope admin. It is kept in this tab only, until you sign out or close it.' }),
    h('div', { class: 'actions' }, button));
  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    const t = input.value.trim();
    if (!t) return form.showProblems([{ key: 'token', message: 'Enter a token.' }]);
    button.disabled = true;
    token.set(t);
    try {
      // Only an admin token may list tokens: the check that this one can use the page.
      const { status } = await api('GET', '/v1/tokens', undefined, { accept: [401, 403] });
      if (status !== 200) throw new ApiError(status, {});
      input.value = '';
      if (!location.hash.startsWith('#/') || location.hash === '#/signin') location.hash = '#/gateways';
      else route();
    } catch (err) {
      token.clear();
      const msg = !(err instanceof ApiError) ? String(err)
        : err.status === 401 ? 'The service does not know this token (or it was revoked).'
          : err.status === 403 ? 'This token may only send messages; the admin page needs a token with the admin scope.'
            : `${err.status ? `${err.status}: ` : ''}${err.message}`;
      form.showProblems([{ key: 'token', message: msg }], 'Not signed in:');
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  fill(main,
    h('h1', { tabindex: '-1' }, 'Sign in'),
    reason ? h('p', { class: 'notice info' }, reason) : null,
    el);
  input.focus();
}

// The views by hash; each may return a function that stops its timers.
const VIEWS = [
  [/^#\/gateways$/, () => listGateways(main)],
  [/^#\/gateways\/new$/, () => gatewayForm(main, null)],
  [/^#\/gateways\/([^/]+)$/, (m) => gatewayForm(main, decodeURIComponent(m[1]))],
  [/^#\/routes$/, () => listRoutes(main)],
  [/^#\/routes\/new$/, () => routeForm(main, null)],
  [/^#\/routes\/([^/]+)$/, (m) => routeForm(main, decodeURIComponent(m[1]))],
  [/^#\/messages$/, () => listMessages(main)],
  [/^#\/messages\/([^/]+)$/, (m) => messageDetail(main, decodeURIComponent(m[1]))],
  [/^#\/test\/(gateway|route)\/([^/]+)$/, (m) => testSend(main, m[1], decodeURIComponent(m[2]))],
];

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  if (!token.get()) return signIn();
  clearStaleFlash();
  nav.hidden = false;
  const hash = location.hash.startsWith('#/') ? location.hash : '#/gateways';
  for (const a of nav.querySelectorAll('a')) {
    if (hash.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const view = VIEWS.find(([re]) => re.test(hash));
  if (!view) {
    fill(main, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, h('a', { href: '#/gateways' }, 'Go to the gateways')));
    return;
  }
  main.setAttribute('aria-busy', 'true');
  try {
    const stop = await view[1](hash.match(view[0]));
    if (typeof stop === 'function') cleanup = stop;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return;
    fill(main, h('h1', { tabindex: '-1' }, 'Something went wrong'),
      errorBox(err instanceof ApiError ? `${err.status ? `${err.status}: ` : ''}${err.message}` : String(err)));
  } finally {
    main.removeAttribute('aria-busy');
  }
  // Move the keyboard to the new view's heading (unless a view placed it on purpose).
  if (!main.contains(document.activeElement) || document.activeElement === main) {
    main.querySelector('h1')?.focus();
  }
}

onUnauthorized(() => {
  token.clear();
  if (cleanup) { cleanup(); cleanup = null; }
  signIn('The service no longer accepts the token: sign in again.');
});

document.getElementById('sign-out').addEventListener('click', () => {
  token.clear();
  if (cleanup) { cleanup(); cleanup = null; }
  flash('Signed out.');
  signIn();
});

// The skip link targets #main, which is no view: focus the content instead of navigating.
document.getElementById('skip').addEventListener('click', (e) => {
  e.preventDefault();
  main.focus();
});

window.addEventListener('hashchange', () => { if (location.hash.startsWith('#/') || location.hash === '') route(); });
route();
