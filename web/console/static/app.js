// The console's entry: the session (login, first-login password change,
// logout, reload), the hash router and the page lifecycle (each page's
// render returns its stop function: polling ends when the page changes,
// the tab is hidden or the session ends).
import { call, setSession, clearSession, hadSession, whenLoggedOut } from './api.js';
import { el, clear, toast } from './ui.js';
import * as login from './login.js';
import * as orgs from './orgs.js';
import * as users from './users.js';
import * as servers from './servers.js';
import * as approvals from './approvals.js';
import * as links from './links.js';
import * as notification from './notification.js';
import * as audit from './audit.js';

// Violations of the Content-Security-Policy surface on the console (and so
// in the browser test, which fails on any console error).
document.addEventListener('securitypolicyviolation', (e) => {
  console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
});

const pages = {
  '#/orgs': orgs, '#/users': users, '#/servers': servers, '#/approvals': approvals,
  '#/links': links, '#/notification': notification, '#/audit': audit,
};

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const logoutBtn = document.getElementById('logout');
let user = '';
let stop = null;

function stopPage() {
  if (stop) stop();
  stop = null;
}

function showLogin(message) {
  stopPage();
  user = '';
  nav.hidden = true;
  logoutBtn.hidden = true;
  who.textContent = '';
  clear(main);
  stop = login.render(main, { loggedIn, message });
}

function loggedIn(session) {
  setSession(session.csrf_token);
  user = session.username;
  who.textContent = `signed in as ${user}`;
  nav.hidden = false;
  logoutBtn.hidden = false;
  if (!pages[location.hash]) {
    location.hash = '#/orgs';
  } else {
    route();
  }
}

function route() {
  if (!user) return;
  const page = pages[location.hash] || orgs;
  stopPage();
  for (const a of nav.querySelectorAll('a')) {
    if (a.getAttribute('href') === location.hash) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  clear(main);
  stop = page.render(main, { toast }) || null;
  main.focus();
}

window.addEventListener('hashchange', route);
whenLoggedOut(() => showLogin('Your session ended: log in again.'));

logoutBtn.addEventListener('click', async () => {
  stopPage(); // no poll may race the logout (its 401 would end the page twice)
  try {
    await call('DELETE', '/auth/session');
  } catch {
    // The session is gone either way for this page.
  }
  clearSession();
  showLogin('Logged out.');
});

async function start() {
  if (hadSession()) {
    try {
      const st = await call('GET', '/status');
      loggedIn(st);
      return;
    } catch {
      clearSession();
    }
  }
  showLogin();
}

main.append(el('p', { class: 'muted', text: 'Loading…' }));
start();
