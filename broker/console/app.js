// The console's entry point: sign-in, the header, and a hash router over the pages
// (#/queues, #/queues/NAME, #/topics, #/topics/NAME, #/admin). Each page is a function that
// fills <main> and returns a cleanup (stopping its polling or stream) called when the page changes.

import { onSignedOut, session, signIn, signOut } from './api.js';
import { fill, form, field, h } from './ui.js';
import { queueList, queuePage } from './queues.js';
import { topicList, topicPage } from './topics.js';
import { adminPage } from './admin.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let cleanup = null;

function signInPage(message) {
  fill(nav);
  const error = h('p', { id: 'signin-error', class: 'error', role: 'alert', hidden: !message }, message || '');
  const f = form(
    { id: 'signin', class: 'card narrow', autocomplete: 'on' },
    [
      h('h1', {}, 'Sign in'),
      field('Username', h('input', { id: 'username', name: 'username', required: true, autocomplete: 'username' })),
      field(
        'Password',
        h('input', { id: 'password', name: 'password', type: 'password', required: true, autocomplete: 'current-password' }),
      ),
      error,
      h('button', { type: 'submit', id: 'sign-in' }, 'Sign in'),
    ],
    async (v, f) => {
      try {
        await signIn(v.username || '', v.password || '');
      } catch (e) {
        error.hidden = false;
        error.textContent =
          e.status === 401 ? 'Wrong username or password.' : `${e.message} (${e.code})`;
        f.elements.password.value = '';
        return;
      }
      if (!location.hash || location.hash === '#/') location.hash = '#/queues';
      route();
    },
  );
  fill(main, f);
}

function header(s) {
  const link = (href, text) =>
    h('a', { href, class: location.hash.startsWith(href) ? 'active' : null }, text);
  fill(
    nav,
    link('#/queues', 'Queues'),
    link('#/topics', 'Topics'),
    s.admin ? link('#/admin', 'Admin') : null,
    h('span', { class: 'who', id: 'who' }, s.username + (s.admin ? ' (admin)' : '')),
    h(
      'button',
      {
        type: 'button',
        class: 'secondary',
        id: 'sign-out',
        onclick: () => {
          signOut();
          route();
        },
      },
      'Sign out',
    ),
  );
}

function route() {
  if (cleanup) cleanup();
  cleanup = null;
  // Notices belong to the page they were shown on.
  fill(document.getElementById('toast'));
  const s = session();
  if (!s) {
    signInPage();
    return;
  }
  header(s);
  const parts = (location.hash.replace(/^#\/?/, '') || 'queues').split('/').map(decodeURIComponent);
  const [section, name] = parts;
  const page =
    section === 'queues' && name
      ? () => queuePage(main, name)
      : section === 'topics' && name
        ? () => topicPage(main, name)
        : section === 'topics'
          ? () => topicList(main)
          : section === 'admin' && s.admin
            ? () => adminPage(main)
            : () => queueList(main);
  cleanup = page() || null;
}

onSignedOut(() => {
  if (cleanup) cleanup();
  cleanup = null;
  signInPage('Your session ended; sign in again.');
});

// Whatever the Content-Security-Policy blocks is a bug of the console: say so where a developer
// looks (and where the browser test checks that nothing was blocked).
window.momCspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  const what = `${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`;
  window.momCspViolations.push(what);
  console.error('Content-Security-Policy: ' + what);
});

window.addEventListener('hashchange', route);
route();
