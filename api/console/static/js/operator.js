// The operator's pages (admin token): queues, accounts and their tiers,
// tiers, audit log.
import { api, pageURL } from './api.js';
import { h, clear, field, fmtTime, fmtBytes, shortID, errorText } from './dom.js';

function table(headers, rows) {
  return h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))), h('tbody', {}, rows)));
}

function pages(load, draw, note) {
  const box = h('div', {});
  const prev = h('button', { type: 'button', class: 'secondary' }, 'Previous');
  const next = h('button', { type: 'button', class: 'secondary' }, 'Next');
  const stack = [];
  let cur = null;
  let nxt = null;
  async function show(c) {
    const p = await load(c);
    cur = c;
    nxt = p.next_cursor;
    clear(box).append(draw(p.data));
    prev.disabled = stack.length === 0;
    next.disabled = !nxt;
  }
  const fail = (e) => { note.textContent = errorText(e); };
  prev.addEventListener('click', () => show(stack.pop()).catch(fail));
  next.addEventListener('click', () => { stack.push(cur); show(nxt).catch(fail); });
  return { el: h('div', {}, box, h('div', { class: 'pager' }, prev, next)), first: () => { stack.length = 0; return show(null); }, refresh: () => show(cur) };
}

export async function queues(main, params, signal) {
  const box = h('div', {});
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  async function load() {
    const q = await api('GET', '/v1/admin/queues', undefined, { signal });
    clear(box).append(q.data.length === 0 ? h('p', { class: 'muted' }, 'No queue has held a task yet.') :
      table(['Queue', 'Pending', 'Active', 'Scheduled', 'Retry', 'Archived', 'Oldest pending', 'Paused'], q.data.map((x) => h('tr', {},
        h('td', { class: 'mono' }, x.name), h('td', {}, String(x.pending)), h('td', {}, String(x.active)), h('td', {}, String(x.scheduled)),
        h('td', {}, String(x.retry)), h('td', {}, String(x.archived)), h('td', {}, x.latency_ms + ' ms'), h('td', {}, x.paused ? 'yes' : 'no')))));
  }
  refresh.addEventListener('click', () => load().catch((e) => { box.textContent = errorText(e); }));
  main.append(h('h1', {}, 'Queues'), h('div', { class: 'card' }, h('p', {}, refresh), box));
  await load();
}

export async function accounts(main, params, signal) {
  const tiers = (await api('GET', '/v1/admin/tiers', undefined, { signal })).data.map((t) => t.name);
  const note = h('div', { role: 'status', 'aria-live': 'polite' });
  const tierSelect = (current) => h('select', {}, tiers.map((t) => h('option', { value: t, selected: t === current }, t)));
  const list = pages((c) => api('GET', pageURL('/v1/admin/accounts', { limit: 50 }, c), undefined, { signal }),
    (items) => items.length === 0 ? h('p', { class: 'muted' }, 'No accounts.') : table(['Name', 'ID', 'Tier', 'Created', ''], items.map((a) => {
      const sel = tierSelect(a.tier);
      sel.setAttribute('aria-label', 'Tier of ' + a.name);
      const save = h('button', { type: 'button', class: 'secondary' }, 'Change tier');
      save.addEventListener('click', async () => {
        try {
          const r = await api('PATCH', '/v1/admin/accounts/' + a.id, { tier: sel.value });
          note.className = '';
          note.textContent = a.name + ' is now on the ' + r.tier + ' tier.';
        } catch (e) { note.className = 'error'; note.textContent = errorText(e); }
      });
      const mk = h('button', { type: 'button', class: 'secondary' }, 'New key');
      mk.addEventListener('click', async () => {
        try {
          const k = await api('POST', '/v1/admin/accounts/' + a.id + '/keys', { name: 'console' });
          note.className = 'secret';
          clear(note).append('New key for ' + a.name + ' (shown once): ', h('code', { id: 'new-key' }, k.key));
        } catch (e) { note.className = 'error'; note.textContent = errorText(e); }
      });
      return h('tr', {}, h('td', {}, a.name), h('td', { class: 'mono' }, shortID(a.id)), h('td', {}, sel, ' ', save),
        h('td', {}, fmtTime(a.created_at)), h('td', {}, mk));
    })), note);
  const name = h('input', { name: 'name', required: true, autocomplete: 'off' });
  const tier = tierSelect('free');
  const form = h('form', { class: 'row', novalidate: true }, h('div', {}, field('Name', name)), h('div', {}, field('Tier', tier)),
    h('button', { type: 'submit' }, 'Create account'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!name.value.trim()) { note.className = 'error'; note.textContent = 'Give the account a name.'; name.focus(); return; }
    try {
      const a = await api('POST', '/v1/admin/accounts', { name: name.value.trim(), tier: tier.value });
      note.className = '';
      note.textContent = 'Created ' + a.name + ' (' + a.id + ').';
      name.value = '';
      await list.first();
    } catch (err) { note.className = 'error'; note.textContent = errorText(err); }
  });
  main.append(h('h1', {}, 'Accounts'), h('section', { class: 'card' }, h('h2', {}, 'New account'), form), note,
    h('section', { class: 'card' }, h('h2', {}, 'Accounts'), list.el));
  await list.first();
}

export async function tiers(main, params, signal) {
  const t = await api('GET', '/v1/admin/tiers', undefined, { signal });
  const cols = ['runs_per_minute', 'runs_per_day', 'max_concurrent_runs', 'max_timeout_ms', 'max_memory_mb', 'max_module_bytes', 'queue_weight'];
  main.append(h('h1', {}, 'Tiers'), h('div', { class: 'card' }, table(['Tier', ...cols.map((c) => c.replaceAll('_', ' '))], t.data.map((x) =>
    h('tr', {}, h('th', { scope: 'row' }, x.name), cols.map((c) => h('td', {}, c.endsWith('_bytes') ? fmtBytes(x[c]) : x[c] === 0 ? 'unlimited' : String(x[c]))))))),
  h('p', { class: 'muted' }, 'Change tiers with PATCH /v1/admin/tiers/{name}; see the API reference.'));
}

export async function audit(main, params, signal) {
  const note = h('p', { role: 'status' });
  const action = h('input', { name: 'action', placeholder: 'e.g. auth.failed', autocomplete: 'off' });
  const list = pages((c) => api('GET', pageURL('/v1/admin/audit', { limit: 50, action: action.value.trim() }, c), undefined, { signal }),
    (items) => items.length === 0 ? h('p', { class: 'muted' }, 'Nothing.') : table(['When', 'Action', 'Actor', 'Subject', 'Data'], items.map((e) => h('tr', {},
      h('td', {}, fmtTime(e.created_at)), h('td', { class: 'mono' }, e.action), h('td', { class: 'mono' }, e.actor),
      h('td', { class: 'mono' }, e.subject_type + (e.subject_id ? ' ' + shortID(e.subject_id) : '')),
      h('td', { class: 'mono' }, e.data ? JSON.stringify(e.data) : '')))), note);
  const form = h('form', { class: 'row', role: 'search' }, h('div', {}, field('Action', action)), h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (e) => { e.preventDefault(); note.textContent = ''; list.first().catch((err) => { note.textContent = errorText(err); }); });
  main.append(h('h1', {}, 'Audit log'), h('div', { class: 'card' }, form, note, list.el));
  await list.first();
}
