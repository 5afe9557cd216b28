// The console's shell: sign-in, navigation and the hash router. Pages are
// functions (main element, route parameters, abort signal) in tenant.js
// and operator.js; the signal is aborted when the user leaves the page, so
// a page's polling stops with it.
import { api, session, whenUnauthorized, ApiError } from './api.js';
import { h, clear, field, errorText } from './dom.js';
import * as tenant from './tenant.js';
import * as operator from './operator.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const flashBox = document.getElementById('flash');

export function flash(text, bad) {
  flashBox.textContent = text || '';
  flashBox.className = bad ? 'bad' : '';
}

const tenantRoutes = [
  { path: 'modules', title: 'Modules', page: tenant.modules, nav: true },
  { path: 'modules/:id', title: 'Module', page: tenant.module },
  { path: 'run', title: 'Run', page: tenant.run, nav: true },
  { path: 'jobs', title: 'Jobs', page: tenant.jobs, nav: true },
  { path: 'jobs/:id', title: 'Job', page: tenant.job },
  { path: 'account', title: 'Account', page: tenant.account, nav: true },
];
const operatorRoutes = [
  { path: 'queues', title: 'Queues', page: operator.queues, nav: true },
  { path: 'accounts', title: 'Accounts', page: operator.accounts, nav: true },
  { path: 'tiers', title: 'Tiers', page: operator.tiers, nav: true },
  { path: 'audit', title: 'Audit log', page: operator.audit, nav: true },
];

function routes() { return session.role === 'operator' ? operatorRoutes : tenantRoutes; }

function match(hash) {
  const [pathPart, query] = hash.replace(/^#\/?/, '').split('?');
  const parts = pathPart.split('/').filter(Boolean);
  for (const r of routes()) {
    const want = r.path.split('/');
    if (want.length !== parts.length) continue;
    const params = Object.fromEntries(new URLSearchParams(query || ''));
    let ok = true;
    want.forEach((w, i) => {
      if (w.startsWith(':')) params[w.slice(1)] = decodeURIComponent(parts[i]);
      else if (w !== parts[i]) ok = false;
    });
    if (ok) return { route: r, params };
  }
  return null;
}

function drawNav(current) {
  clear(nav);
  clear(who);
  if (!session.credential) return;
  const list = h('ul', {});
  for (const r of routes().filter((x) => x.nav)) {
    const here = current && current.path.split('/')[0] === r.path;
    list.append(h('li', {}, h('a', { href: '#/' + r.path, 'aria-current': here ? 'page' : null }, r.title)));
  }
  nav.append(list);
  who.append(h('span', {}, session.role === 'operator' ? 'Operator' : 'Signed in with a key'),
    h('button', { class: 'secondary', type: 'button', onclick: signOut }, 'Sign out'));
}

function signOut() {
  session.clear();
  flash('Signed out.');
  location.hash = '#/signin';
  render();
}

let pageAbort = null;

async function render() {
  if (pageAbort) pageAbort.abort();
  pageAbort = new AbortController();
  const signal = pageAbort.signal;
  clear(main);
  if (!session.credential || location.hash.startsWith('#/signin')) {
    drawNav(null);
    document.title = 'Sign in · Wasm Wizard';
    signIn();
    return;
  }
  let m = match(location.hash);
  if (!m) {
    location.replace('#/' + routes()[0].path);
    m = match(location.hash);
  }
  drawNav(m.route);
  document.title = m.route.title + ' · Wasm Wizard';
  try {
    await m.route.page(main, m.params, signal);
  } catch (err) {
    if (signal.aborted || (err && err.name === 'AbortError')) return;
    main.append(h('p', { class: 'error', role: 'alert' }, errorText(err)));
  }
  if (!signal.aborted) document.body.dataset.page = m.route.path;
}

function signIn() {
  const key = h('input', { type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, name: 'credential' });
  const asOperator = h('input', { type: 'checkbox', name: 'operator' });
  const out = h('p', { role: 'alert', class: 'error' });
  const form = h('form', { class: 'card', novalidate: true },
    field('API key', key, 'ww_… — kept in this tab only (sessionStorage), sent as a Bearer header'),
    h('p', {}, h('label', {}, asOperator, ' Operator: this is the admin token')),
    h('button', { type: 'submit' }, 'Sign in'), out);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    out.textContent = '';
    const value = key.value.trim();
    if (!value) { out.textContent = 'Enter a key.'; key.focus(); return; }
    const role = asOperator.checked ? 'operator' : 'tenant';
    session.set(value, role);
    try {
      await api('GET', role === 'operator' ? '/v1/admin/tiers' : '/v1/account', undefined, { quiet: true });
    } catch (err) {
      session.clear();
      out.textContent = err instanceof ApiError && err.status === 401
        ? 'That ' + (role === 'operator' ? 'admin token' : 'API key') + ' was refused (' + errorText(err) + ').'
        : errorText(err);
      key.focus();
      return;
    }
    flash('');
    location.hash = '#/' + routes()[0].path;
  });
  main.append(h('h1', { tabindex: '-1' }, 'Sign in'), form,
    h('p', { class: 'muted' }, 'Keys are made by an operator (', h('code', {}, 'wasmwizard-api keys create'), ' or the admin API).'));
  key.focus();
}

whenUnauthorized(() => {
  if (!session.credential) return;
  session.clear();
  flash('Your key was refused; sign in again.', true);
  location.hash = '#/signin';
});

window.addEventListener('hashchange', async () => {
  await render();
  const heading = main.querySelector('h1');
  if (heading) { heading.setAttribute('tabindex', '-1'); heading.focus(); }
});
render().then(() => {
  document.body.dataset.ready = 'true';
  performance.mark('console-ready');
});
