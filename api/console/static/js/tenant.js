// The pages of a signed-in account: modules, run, jobs, a job, account.
import { api, session, uploadModule, download, pageURL } from './api.js';
import { h, s, add, clear, field, shown, fmtTime, fmtBytes, fmtLimit, fmtMs, badge, shortID, errorText } from './dom.js';

const TERMINAL = ['succeeded', 'failed', 'timed_out', 'cancelled'];
const STATUSES = ['queued', 'running', ...TERMINAL];

// pager shows one page of a cursor-paginated list at a time, with the
// cursors of the pages before it kept for "Previous": a list of 10,000
// items costs one page per view.
function pager(load, draw, opts = {}) {
  const box = h('div', {});
  const info = h('span', { class: 'muted', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'secondary' }, 'Previous');
  const next = h('button', { type: 'button', class: 'secondary' }, 'Next');
  const stack = [];
  let cursor = null;
  let nextCursor = null;
  let pageNo = 1;
  async function show(c, signal) {
    const page = await load(c, signal);
    cursor = c;
    nextCursor = page.next_cursor;
    clear(box);
    box.append(draw(page.data));
    prev.disabled = stack.length === 0;
    next.disabled = !nextCursor;
    info.textContent = 'Page ' + pageNo + (page.data.length ? '' : ' (empty)');
  }
  prev.addEventListener('click', () => { pageNo--; show(stack.pop()).catch(opts.onError); });
  next.addEventListener('click', () => { stack.push(cursor); pageNo++; show(nextCursor).catch(opts.onError); });
  return {
    el: h('div', {}, box, h('div', { class: 'pager' }, prev, next, info)),
    first(signal) { stack.length = 0; pageNo = 1; return show(null, signal); },
    refresh(signal) { return show(cursor, signal); },
    get onFirst() { return stack.length === 0; },
  };
}

function whenIdle(signal, ms) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}

// ---------------------------------------------------------------- modules

export async function modules(main, params, signal) {
  const status = h('p', { role: 'status', 'aria-live': 'polite' });
  const progress = h('progress', { max: 100, value: 0, hidden: true, 'aria-label': 'Upload progress' });
  const name = h('input', { name: 'name', placeholder: 'optional', autocomplete: 'off' });
  const input = h('input', { type: 'file', accept: '.wasm,application/wasm', name: 'module' });
  const drop = h('div', { class: 'drop' },
    h('p', {}, 'Drop a ', h('code', {}, '.wasm'), ' file here, or choose one:'),
    h('div', { class: 'grid' }, field('Module file', input), field('Name', name)), progress, status);
  const list = pager(
    (c, sig) => api('GET', pageURL('/v1/modules', { limit: 20 }, c), undefined, { signal: sig }),
    (items) => items.length === 0 ? h('p', { class: 'muted' }, 'No modules yet: upload one above.') :
      h('div', { class: 'scroll' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'ID'), h('th', {}, 'Size'), h('th', { class: 'wide' }, 'Uploaded'), h('th', {}, ''))),
        h('tbody', {}, items.map((m) => h('tr', {},
          h('td', {}, h('a', { href: '#/modules/' + m.id }, m.name || '(no name)')),
          h('td', { class: 'mono' }, shortID(m.id)),
          h('td', {}, fmtBytes(m.size_bytes)),
          h('td', { class: 'wide' }, fmtTime(m.created_at)),
          h('td', {}, h('a', { href: '#/run?module=' + m.id }, 'Run…'))))))),
    { onError: (e) => { status.textContent = errorText(e); } });

  async function send(file) {
    if (!file) return;
    progress.hidden = false;
    progress.value = 0;
    status.className = '';
    status.textContent = 'Uploading ' + file.name + '…';
    try {
      const r = await uploadModule(file, name.value.trim() || file.name.replace(/\.wasm$/, ''), (done, total) => {
        progress.value = Math.round((done / total) * 100);
      });
      progress.value = 100;
      status.textContent = (r.created ? 'Uploaded ' : 'Already uploaded: ') + (r.module.name || r.module.id) + '.';
      await list.first(signal);
    } catch (err) {
      status.className = 'error';
      status.textContent = 'Upload refused: ' + errorText(err);
    }
  }
  input.addEventListener('change', () => send(input.files[0]));
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    send(e.dataTransfer.files[0]);
  });
  main.append(h('h1', {}, 'Modules'), h('section', { class: 'card', 'aria-label': 'Upload' }, h('h2', {}, 'Upload'), drop),
    h('section', { class: 'card', 'aria-label': 'Your modules' }, h('h2', {}, 'Your modules'), list.el));
  await list.first(signal);
}

export async function module(main, params, signal) {
  const m = await api('GET', '/v1/modules/' + encodeURIComponent(params.id), undefined, { signal });
  const out = h('p', { role: 'status' });
  const del = h('button', { type: 'button', class: 'danger' }, 'Delete module');
  del.addEventListener('click', async () => {
    if (!confirm('Delete module ' + (m.name || m.id) + '? Its queued jobs will fail with module_deleted.')) return;
    try {
      await api('DELETE', '/v1/modules/' + m.id);
      location.hash = '#/modules';
    } catch (err) { out.className = 'error'; out.textContent = errorText(err); }
  });
  const assets = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('h1', {}, 'Module ', m.name || ''),
    h('div', { class: 'card' }, h('dl', { class: 'kv' },
      h('dt', {}, 'ID'), h('dd', { class: 'mono' }, m.id),
      h('dt', {}, 'SHA-256'), h('dd', { class: 'mono' }, m.sha256),
      h('dt', {}, 'Size'), h('dd', {}, fmtBytes(m.size_bytes)),
      h('dt', {}, 'WASI'), h('dd', {}, m.wasi ? 'yes' : 'no'),
      h('dt', {}, 'Uploaded'), h('dd', {}, fmtTime(m.created_at))),
    h('p', { class: 'row' }, h('a', { class: 'button', href: '#/run?module=' + m.id }, 'Run'), del), out),
    h('section', { class: 'card' }, h('h2', {}, 'Exports'), h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Kind'), h('th', {}, 'Signature'))),
      h('tbody', {}, m.exports.map((x) => h('tr', {}, h('td', { class: 'mono' }, x.name), h('td', {}, x.kind),
        h('td', { class: 'mono' }, x.kind === 'function' ? '(' + (x.params || []).join(', ') + ') → (' + (x.results || []).join(', ') + ')' : ''))))))),
    h('section', { class: 'card' }, h('h2', {}, 'Imports'), m.imports.length === 0 ? h('p', { class: 'muted' }, 'None.') :
      h('ul', {}, m.imports.map((i) => h('li', { class: 'mono' }, i.module + '.' + i.name + (i.kind ? ' (' + i.kind + ')' : ''))))),
    h('section', { class: 'card' }, h('h2', {}, 'Assets'), assets));
  try {
    const a = await api('GET', '/v1/modules/' + m.id + '/assets', undefined, { signal });
    clear(assets).append(a.data && a.data.length ? h('ul', {}, a.data.map((x) =>
      h('li', {}, h('code', {}, x.mount), ' — ' + x.files + ' files, ' + fmtBytes(x.size_bytes)))) : h('p', { class: 'muted' }, 'None.'));
  } catch (err) {
    clear(assets).append(h('p', { class: 'muted' }, err.status === 404 ? 'This server does not serve module assets.' : errorText(err)));
  }
}

// -------------------------------------------------------------------- run

function lines(text) { return text.split('\n').map((l) => l.trimEnd()).filter((l) => l !== ''); }

function pairs(text, what, errors) {
  const out = {};
  for (const l of lines(text)) {
    const i = l.indexOf('=');
    if (i <= 0) { errors.push(what + ': "' + l + '" is not KEY=VALUE'); continue; }
    out[l.slice(0, i)] = l.slice(i + 1);
  }
  return out;
}

export async function run(main, params, signal) {
  const [mods, acct] = await Promise.all([
    api('GET', '/v1/modules?limit=200', undefined, { signal }),
    api('GET', '/v1/account', undefined, { signal })]);
  const L = acct.limits;
  if (mods.data.length === 0) {
    main.append(h('h1', {}, 'Run'), h('p', {}, 'Upload a module first: ', h('a', { href: '#/modules' }, 'Modules'), '.'));
    return;
  }
  const moduleSel = h('select', { name: 'module_id', required: true },
    mods.data.map((m) => h('option', { value: m.id, selected: m.id === params.module }, (m.name || '(no name)') + ' — ' + shortID(m.id))));
  const fnSel = h('select', { name: 'function' });
  const args = h('textarea', { name: 'args', rows: 2, placeholder: 'one argument per line' });
  const env = h('textarea', { name: 'env', rows: 2, placeholder: 'KEY=value, one per line' });
  const stdin = h('textarea', { name: 'stdin', rows: 4 });
  const fparams = h('input', { name: 'params', placeholder: 'e.g. 2, 3', autocomplete: 'off' });
  const timeout = h('input', { name: 'timeout_ms', type: 'number', min: 1, max: L.max_timeout_ms || null, placeholder: String(L.default_timeout_ms) });
  const memory = h('input', { name: 'memory_limit_mb', type: 'number', min: 1, max: L.max_memory_mb || null, placeholder: String(L.default_memory_mb) });
  const output = h('input', { name: 'max_output_bytes', type: 'number', min: 1, max: L.max_output_bytes || null, placeholder: String(L.default_output_bytes) });
  const det = h('input', { type: 'checkbox', name: 'deterministic' });
  const hook = h('input', { name: 'webhook_url', type: 'url', placeholder: 'https://…', autocomplete: 'off' });
  const meta = h('textarea', { name: 'metadata', rows: 2, placeholder: 'key=value, one per line' });
  const files = h('input', { type: 'file', multiple: true, name: 'files' });
  const filesDir = h('input', { name: 'files_dir', value: '/in', autocomplete: 'off' });
  const collect = h('input', { name: 'collect', placeholder: '/out/**', autocomplete: 'off' });
  const chosen = h('div', { class: 'chosen', 'aria-live': 'polite' });
  const out = h('div', { role: 'status', 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit' }, 'Run');

  function fillFunctions() {
    const m = mods.data.find((x) => x.id === moduleSel.value);
    clear(fnSel);
    const fns = (m ? m.exports : []).filter((x) => x.kind === 'function' && x.name !== '_initialize');
    fns.sort((a, b) => (a.name === '_start' ? -1 : b.name === '_start' ? 1 : a.name.localeCompare(b.name)));
    for (const f of fns) fnSel.append(h('option', { value: f.name }, f.name + ' (' + (f.params || []).join(', ') + ')'));
    if (fns.length === 0) fnSel.append(h('option', { value: '_start' }, '_start'));
  }
  const paramsField = field('Params', fparams, 'numbers for an exported function, comma-separated');
  const showParams = () => { paramsField.hidden = fnSel.value === '_start'; };
  moduleSel.addEventListener('change', () => { fillFunctions(); showParams(); });
  fnSel.addEventListener('change', showParams);
  fillFunctions();
  showParams();

  // The chosen files as the guest will see them, and their total against
  // the tier's max_input_bytes (0: no input files at all).
  const maxInput = L.max_input_bytes || 0;
  const dirOf = () => filesDir.value.trim().replace(/\/+$/, '');
  function showChosen() {
    clear(chosen);
    const list = [...files.files];
    if (list.length === 0) {
      chosen.append(h('p', { class: 'muted' }, maxInput ? 'No files chosen. Your tier takes up to ' + fmtBytes(maxInput) + ' of input files.' : 'Your tier takes no input files.'));
      return;
    }
    const total = list.reduce((n, f) => n + f.size, 0);
    chosen.append(h('ul', {}, list.map((f) => h('li', {}, h('code', {}, dirOf() + '/' + f.name), ' ', h('span', { class: 'muted' }, fmtBytes(f.size))))),
      total > maxInput ? h('p', { class: 'error' }, tooMuch(list.length, total)) :
        h('p', { class: 'muted' }, list.length + (list.length === 1 ? ' file, ' : ' files, ') + fmtBytes(total) + ' of the ' + fmtBytes(maxInput) + ' your tier takes.'));
  }
  const tooMuch = (n, total) => (n === 1 ? 'This file takes ' : 'These files take ') + total + ' bytes, more than the ' + maxInput + ' (' + fmtBytes(maxInput) + ') your tier takes.';
  files.addEventListener('change', showChosen);
  filesDir.addEventListener('input', showChosen);
  showChosen();

  const form = h('form', { class: 'card', novalidate: true },
    h('div', { class: 'grid' }, field('Module', moduleSel), field('Function', fnSel, '_start runs a WASI command')),
    h('div', { class: 'grid' }, field('Arguments', args), field('Environment', env)),
    field('Standard input', stdin),
    paramsField,
    h('h2', { id: 'run-files' }, 'Files'),
    h('div', { class: 'grid' }, h('div', {}, field('Input files', files, 'placed in the directory for input files'), chosen), field('Directory for input files', filesDir),
      field('Collect', collect, 'globs of files to keep, comma-separated')),
    h('h2', {}, 'Limits'),
    h('p', { class: 'muted' }, 'Your tier (' + acct.tier + ') allows up to ' + fmtMs(L.max_timeout_ms) + ', ' + L.max_memory_mb + ' MiB of memory and ' +
      fmtBytes(L.max_output_bytes) + ' of output per stream. Empty fields take the tier\'s defaults.'),
    h('div', { class: 'grid' }, field('Timeout (ms)', timeout, 'max ' + L.max_timeout_ms), field('Memory (MiB)', memory, 'max ' + L.max_memory_mb),
      field('Max output (bytes)', output, 'max ' + L.max_output_bytes)),
    h('p', {}, h('label', {}, det, ' Deterministic (fixed clock and random seed)')),
    h('div', { class: 'grid' }, field('Webhook URL', hook), field('Metadata', meta)),
    h('p', {}, submit), out);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(out);
    const errors = [];
    const req = { module_id: moduleSel.value, function: fnSel.value };
    const a = lines(args.value);
    if (a.length) req.args = a;
    const en = pairs(env.value, 'Environment', errors);
    if (Object.keys(en).length) req.env = en;
    if (stdin.value !== '') req.stdin = stdin.value;
    if (!paramsField.hidden && fparams.value.trim() !== '') {
      req.params = fparams.value.split(',').map((x) => x.trim()).map((x) => (/^-?\d+(\.\d+)?$/.test(x) && Math.abs(Number(x)) < 2 ** 53 ? Number(x) : x));
    }
    for (const [el, key] of [[timeout, 'timeout_ms'], [memory, 'memory_limit_mb'], [output, 'max_output_bytes']]) {
      if (el.value === '') continue;
      const n = Number(el.value);
      if (!Number.isInteger(n) || n < 1 || (el.max && n > Number(el.max))) errors.push(key + ' must be a whole number from 1 to ' + el.max);
      else req[key] = n;
    }
    if (det.checked) req.deterministic = true;
    if (hook.value.trim()) req.webhook_url = hook.value.trim();
    const md = pairs(meta.value, 'Metadata', errors);
    if (Object.keys(md).length) req.metadata = md;
    if (collect.value.trim()) req.collect = collect.value.split(',').map((x) => x.trim()).filter(Boolean);
    if (files.files.length) {
      const dir = dirOf();
      const total = [...files.files].reduce((n, f) => n + f.size, 0);
      if (dir !== '' && !dir.startsWith('/')) errors.push('Directory for input files: must start with /');
      if (total > maxInput) errors.push(tooMuch(files.files.length, total));
    }
    if (files.files.length && errors.length === 0) {
      const dir = dirOf();
      req.files = [];
      for (const f of files.files) {
        const bytes = new Uint8Array(await f.arrayBuffer());
        let bin = '';
        for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
        req.files.push({ path: dir + '/' + f.name, content: btoa(bin), encoding: 'base64' });
      }
    }
    if (errors.length) {
      out.append(h('ul', { class: 'error', role: 'alert' }, errors.map((x) => h('li', {}, x))));
      return;
    }
    submit.disabled = true;
    try {
      const job = await api('POST', '/v1/jobs', req);
      location.hash = '#/jobs/' + job.id;
    } catch (err) {
      out.append(h('p', { class: 'error', role: 'alert' }, 'Not submitted: ' + errorText(err)));
      if (err.problem && Array.isArray(err.problem.errors)) {
        out.append(h('ul', { class: 'error' }, err.problem.errors.map((x) => h('li', {}, x.field + ': ' + x.message))));
      }
    } finally { submit.disabled = false; }
  });
  main.append(h('h1', {}, 'Run'), form);
}

// ------------------------------------------------------------------- jobs

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export async function jobs(main, params, signal) {
  const statusSel = h('select', { name: 'status' }, h('option', { value: '' }, 'any'),
    STATUSES.map((x) => h('option', { value: x, selected: params.status === x }, x.replace('_', ' '))));
  const search = h('input', { name: 'search', type: 'search', placeholder: 'job ID, or metadata key=value', autocomplete: 'off', value: params.q || '' });
  const live = h('input', { type: 'checkbox', name: 'live', checked: true });
  const note = h('p', { class: 'muted', 'aria-live': 'polite' });
  let metaFilter = null;
  const list = pager(
    (c, sig) => api('GET', pageURL('/v1/jobs', { limit: 50, status: statusSel.value }, c), undefined, { signal: sig }),
    (items) => {
      const shown = metaFilter ? items.filter((j) => j.metadata && j.metadata[metaFilter[0]] === metaFilter[1]) : items;
      note.textContent = metaFilter ? shown.length + ' of the ' + items.length + ' jobs on this page have ' + metaFilter.join('=') + '.' : '';
      if (shown.length === 0) return h('p', { class: 'muted' }, 'No jobs here.');
      return h('div', { class: 'scroll' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', {}, 'Job'), h('th', {}, 'Status'), h('th', {}, 'Function'), h('th', { class: 'wide' }, 'Created'),
          h('th', { class: 'wide' }, 'Run time'), h('th', { class: 'wide' }, 'Metadata'))),
        h('tbody', {}, shown.map((j) => h('tr', {},
          h('td', { class: 'mono' }, h('a', { href: '#/jobs/' + j.id }, shortID(j.id))),
          h('td', {}, badge(j.status), j.error ? h('div', { class: 'muted' }, j.error.code) : null),
          h('td', { class: 'mono' }, j.function),
          h('td', { class: 'wide' }, fmtTime(j.created_at)),
          h('td', { class: 'wide' }, fmtMs(j.usage.run_ms)),
          h('td', { class: 'wide mono' }, Object.entries(j.metadata || {}).map(([k, v]) => k + '=' + v).join(' ')))))));
    }, { onError: (e) => { note.textContent = errorText(e); } });
  const form = h('form', { class: 'row', role: 'search' },
    h('div', {}, field('Status', statusSel)), h('div', {}, field('Search', search)),
    h('button', { type: 'submit' }, 'Search'), h('label', {}, live, ' Update live'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = search.value.trim();
    if (UUID.test(q)) { location.hash = '#/jobs/' + q.toLowerCase(); return; }
    metaFilter = q.includes('=') ? [q.slice(0, q.indexOf('=')), q.slice(q.indexOf('=') + 1)] : null;
    if (q && !metaFilter) { note.textContent = 'Search takes a job ID or key=value.'; return; }
    list.first(signal).catch((err) => { note.textContent = errorText(err); });
  });
  statusSel.addEventListener('change', () => list.first(signal).catch((err) => { note.textContent = errorText(err); }));
  main.append(h('h1', {}, 'Jobs'), h('div', { class: 'card' }, form, note, list.el));
  await list.first(signal);
  // Live: the page on view is read again every 3 s while the tab is
  // visible (one page, whatever the number of jobs).
  (async () => {
    while (!signal.aborted) {
      await whenIdle(signal, 3000);
      if (signal.aborted) return;
      if (live.checked && document.visibilityState === 'visible') await list.refresh(signal).catch(() => {});
    }
  })();
}

function outputBlock(title, job, stream) {
  const text = job[stream];
  const b64 = job[stream + '_base64'];
  let body;
  if (text !== null && text !== undefined) body = shown(text);
  else if (b64) body = '(not UTF-8; base64) ' + b64;
  else body = TERMINAL.includes(job.status) ? '' : '(waiting for the job to finish…)';
  return h('section', { class: 'card' }, h('h2', {}, title, job[stream + '_truncated'] ? h('span', { class: 'hint' }, ' (cut at the limit)') : null),
    h('pre', { class: 'output', id: stream, tabindex: '0', 'aria-label': title }, body));
}

// artifactsSection lists the files a job kept (its collect patterns), each
// with a button that downloads it, and one for all of them as a tar. The
// bytes are fetched with the key in the Authorization header and saved
// from a blob: URL: no link to the API could carry the key.
function artifactsSection(j) {
  if (!j.collect || j.collect.length === 0) return null;
  const base = '/v1/jobs/' + encodeURIComponent(j.id) + '/artifacts';
  const note = h('p', { role: 'status', 'aria-live': 'polite' });
  const get = (btn, path, name, sha256) => {
    btn.disabled = true;
    note.className = '';
    note.textContent = 'Downloading ' + name + '…';
    download(path, name, sha256).then((n) => { note.textContent = 'Downloaded ' + name + ' (' + fmtBytes(n) + ').'; },
      (err) => { note.className = 'error'; note.textContent = name + ': ' + errorText(err); })
      .finally(() => { btn.disabled = false; });
  };
  let body;
  if (!TERMINAL.includes(j.status)) body = h('p', { class: 'muted' }, 'The files matching the collect patterns are kept when the job ends.');
  else if (!j.artifacts || j.artifacts.length === 0) {
    body = h('p', { class: 'muted' }, j.artifacts_truncated ? 'Files matched, but none fitted in the tier\'s max_artifact_bytes.' : 'No file matched the collect patterns.');
  }
  else {
    const all = h('button', { type: 'button', class: 'secondary' }, 'Download all (.tar)');
    const tarName = 'job-' + j.id.slice(0, 8) + '-artifacts.tar';
    all.addEventListener('click', () => get(all, base + '?format=tar', tarName));
    body = [h('div', { class: 'scroll' }, h('table', { class: 'artifacts' },
      h('thead', {}, h('tr', {}, h('th', {}, 'File'), h('th', {}, 'Size'), h('th', { class: 'wide' }, 'SHA-256'))),
      h('tbody', {}, j.artifacts.map((a) => {
        const name = a.path.split('/').pop();
        const btn = h('button', { type: 'button', class: 'link', 'aria-label': 'Download ' + a.path }, a.path);
        btn.addEventListener('click', () => get(btn, base + a.path.split('/').map(encodeURIComponent).join('/'), name, a.sha256));
        return h('tr', {}, h('td', { class: 'mono' }, btn), h('td', {}, fmtBytes(a.size_bytes)),
          h('td', { class: 'wide mono' }, a.sha256));
      })))),
    j.artifacts_truncated ? h('p', { class: 'muted' }, 'More files matched than the tier keeps (max_artifact_bytes): some were left out.') : null,
    h('p', {}, all)];
  }
  return h('section', { class: 'card', 'aria-label': 'Artifacts' }, h('h2', {}, 'Artifacts'), body, note);
}

export async function job(main, params, signal) {
  const id = params.id;
  const head = h('div', {});
  const body = h('div', {});
  main.append(h('h1', {}, 'Job ', h('span', { class: 'mono' }, shortID(id))), head, body);

  async function draw(j) {
    const [events, deliveries] = await Promise.all([
      api('GET', '/v1/jobs/' + id + '/events', undefined, { signal }),
      j.webhook_url ? api('GET', '/v1/jobs/' + id + '/deliveries', undefined, { signal }) : Promise.resolve({ data: [] })]);
    const msg = h('p', { role: 'status', 'aria-live': 'polite' });
    const cancel = h('button', { type: 'button', class: 'danger' }, 'Cancel job');
    cancel.addEventListener('click', async () => {
      cancel.disabled = true;
      try {
        const r = await api('POST', '/v1/jobs/' + id + '/cancel');
        msg.textContent = r.status === 'cancelled' ? 'Cancelled.' : 'Cancelling…';
      } catch (err) { msg.className = 'error'; msg.textContent = errorText(err); cancel.disabled = false; }
    });
    clear(head).append(h('div', { class: 'card' },
      h('p', {}, h('span', { id: 'job-status' }, badge(j.status)), ' ', j.error ? h('span', { class: 'error' }, j.error.code + ': ', shown(j.error.message)) : null),
      h('dl', { class: 'kv' },
        h('dt', {}, 'ID'), h('dd', { class: 'mono' }, j.id),
        h('dt', {}, 'Module'), h('dd', { class: 'mono' }, h('a', { href: '#/modules/' + j.module_id }, j.module_id)),
        h('dt', {}, 'Function'), h('dd', { class: 'mono' }, j.function),
        h('dt', {}, 'Exit code'), h('dd', {}, j.exit_code === null ? '—' : String(j.exit_code)),
        j.return_values ? [h('dt', {}, 'Returned'), h('dd', { class: 'mono' }, JSON.stringify(j.return_values))] : null,
        h('dt', {}, 'Attempts'), h('dd', {}, String(j.attempts)),
        h('dt', {}, 'Usage'), h('dd', {}, 'queued ' + fmtMs(j.usage.queue_ms) + ', ran ' + fmtMs(j.usage.run_ms) + ', memory peak ' + fmtBytes(j.usage.memory_peak_bytes)),
        h('dt', {}, 'Limits'), h('dd', {}, fmtMs(j.limits.timeout_ms) + ', ' + j.limits.memory_limit_mb + ' MiB, ' + fmtBytes(j.limits.max_output_bytes) + ' output'),
        Object.keys(j.metadata || {}).length ? [h('dt', {}, 'Metadata'), h('dd', { class: 'mono' }, Object.entries(j.metadata).map(([k, v]) => k + '=' + v).join(' '))] : null,
        j.input_files || (j.collect && j.collect.length) ? [h('dt', {}, 'Files'), h('dd', {}, (j.input_files || 0) + (j.input_files === 1 ? ' input file' : ' input files'),
          j.collect && j.collect.length ? [', collects ', j.collect.map((c, i) => [i ? ', ' : '', h('code', {}, c)])] : null)] : null),
      TERMINAL.includes(j.status) ? null : h('p', {}, cancel), msg));
    const artifacts = artifactsSection(j);
    const dl = deliveries.data.length ? h('section', { class: 'card' }, h('h2', {}, 'Webhook deliveries'),
      deliveries.data.map((d) => {
        const retry = h('button', { type: 'button', class: 'secondary' }, 'Retry delivery');
        retry.addEventListener('click', async () => {
          retry.disabled = true;
          try { await api('POST', '/v1/jobs/' + id + '/deliveries/retry'); msg.textContent = 'Delivery queued again.'; draw(await api('GET', '/v1/jobs/' + id)); } catch (err) { msg.className = 'error'; msg.textContent = errorText(err); retry.disabled = false; }
        });
        return h('div', {}, h('p', {}, h('code', {}, d.url), ' — ', h('strong', {}, d.status), ', ' + d.attempts.length + ' attempts ', d.status !== 'pending' ? retry : null),
          h('div', { class: 'scroll' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'Answer'), h('th', {}, 'Took'), h('th', {}, 'When'))),
            h('tbody', {}, d.attempts.map((a) => h('tr', {}, h('td', {}, String(a.attempt)), h('td', {}, a.status_code ? String(a.status_code) : shown(a.error || '—')),
              h('td', {}, fmtMs(a.duration_ms)), h('td', {}, fmtTime(a.created_at))))))));
      })) : null;
    add(clear(body), [outputBlock('Standard output', j, 'stdout'), outputBlock('Standard error', j, 'stderr'), artifacts, dl,
      h('section', { class: 'card' }, h('h2', {}, 'Timeline'), h('ol', { class: 'timeline' }, events.data.map((e) =>
        h('li', {}, h('time', { datetime: e.created_at }, fmtTime(e.created_at)), ' ', h('strong', {}, e.action), ' ', h('span', { class: 'muted' }, 'by ' + e.actor),
          e.data && Object.keys(e.data).length ? h('span', { class: 'mono muted' }, ' ' + JSON.stringify(e.data)) : null))))]);
  }

  let j = await api('GET', '/v1/jobs/' + encodeURIComponent(id), undefined, { signal });
  await draw(j);
  if (TERMINAL.includes(j.status)) return;
  // Until the job ends: its live output from the stream route, where the
  // API has it; else (or if the stream breaks) long-polls with ?wait=,
  // which return the moment the job finishes.
  (async () => {
    try {
      const ended = await follow(id, signal, {
        output(stream, text) {
          const pre = document.getElementById(stream);
          if (!pre) return;
          if (!pre.dataset.live) { pre.dataset.live = 'true'; clear(pre); }
          add(pre, [shown(text)]);
        },
        status(st) {
          const el = document.getElementById('job-status');
          if (el) clear(el).append(badge(st));
        },
      });
      // The end event's Job carries no outputs (the stream sent them):
      // the page is drawn from the whole Job.
      if (ended) { await draw(await api('GET', '/v1/jobs/' + encodeURIComponent(id), undefined, { signal })); return; }
    } catch (err) {
      if (signal.aborted) return;
    }
    while (!TERMINAL.includes(j.status) && !signal.aborted) {
      const before = j.status;
      try {
        j = await api('GET', '/v1/jobs/' + id + '?wait=' + (j.status === 'queued' ? '2s' : '20s'), undefined, { signal });
      } catch (err) {
        if (signal.aborted) return;
        await whenIdle(signal, 2000); // the API refused or was away: try again
        continue;
      }
      if (j.status !== before || TERMINAL.includes(j.status)) await draw(j).catch(() => {});
    }
  })();
}

// follow reads GET /v1/jobs/{id}/stream (Server-Sent Events, read with
// fetch because EventSource cannot send the key) and calls on.output and
// on.status as events come. It returns the Job of the end event, or null
// when the API has no stream route or the stream ended without one.
async function follow(id, signal, on) {
  const res = await fetch('/v1/jobs/' + id + '/stream', {
    headers: { Authorization: 'Bearer ' + (session.credential || ''), Accept: 'text/event-stream' },
    cache: 'no-store', credentials: 'omit', signal,
  });
  if (!res.ok || !(res.headers.get('Content-Type') || '').startsWith('text/event-stream')) return null;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return null;
    buf += value;
    let cut;
    while ((cut = buf.search(/\r?\n\r?\n/)) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut).replace(/^\r?\n\r?\n/, '');
      let event = 'message';
      let data = '';
      for (const line of block.split(/\r?\n/)) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data += (data ? '\n' : '') + line.slice(5).replace(/^ /, '');
      }
      if (!data) continue;
      let d;
      try { d = JSON.parse(data); } catch { continue; }
      if (event === 'stdout' || event === 'stderr') {
        on.output(event, d.text !== undefined && d.text !== null ? d.text : '(bytes that are not UTF-8, base64) ' + d.base64);
      } else if (event === 'status') on.status(d.status);
      else if (event === 'end') { reader.cancel().catch(() => {}); return d; }
    }
  }
}

// ---------------------------------------------------------------- account

function usageChart(hours) {
  const W = 720, H = 180, pad = 24, n = hours.length;
  const max = Math.max(1, ...hours.map((x) => x.runs));
  const bw = (W - pad) / n;
  const svg = s('svg', { viewBox: '0 0 ' + W + ' ' + (H + 20), role: 'img', 'aria-labelledby': 'chart-title' },
    s('title', { id: 'chart-title' }, 'Runs per hour for the last ' + n + ' hours: succeeded, failed and unfinished'),
    s('line', { class: 'axis', x1: pad, y1: H, x2: W, y2: H }),
    s('text', { x: 0, y: 10 }, String(max)), s('text', { x: 0, y: H }, '0'));
  hours.forEach((x, i) => {
    const failed = Object.values(x.failures).reduce((a, b) => a + b, 0);
    const pend = x.runs - x.succeeded - failed;
    let y = H;
    const xpos = pad + i * bw + 1;
    for (const [v, cls] of [[x.succeeded, 'ok'], [failed, 'bad'], [pend, 'pend']]) {
      if (!v) continue;
      const hgt = (v / max) * (H - 12);
      y -= hgt;
      svg.append(s('rect', { class: cls, x: xpos, y, width: Math.max(1, bw - 2), height: hgt },
        s('title', {}, new Date(x.hour).toLocaleString() + ': ' + v + ' ' + (cls === 'ok' ? 'succeeded' : cls === 'bad' ? 'failed' : 'unfinished'))));
    }
    if (i % 6 === 0) svg.append(s('text', { x: xpos, y: H + 14 }, new Date(x.hour).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })));
  });
  return svg;
}

function meterRow(label, used, limit, fmt = String) {
  return h('tr', {}, h('th', { scope: 'row' }, label), h('td', {}, fmt(used) + ' of ' + (limit ? fmt(limit) : 'unlimited')),
    h('td', {}, limit ? h('meter', { min: 0, max: limit, value: Math.min(used, limit), high: limit * 0.8, 'aria-label': label }) : ''));
}

export async function account(main, params, signal) {
  const [a, usage, keys] = await Promise.all([
    api('GET', '/v1/account', undefined, { signal }),
    api('GET', '/v1/account/usage?hours=24', undefined, { signal }),
    api('GET', '/v1/account/keys?limit=200', undefined, { signal })]);
  const L = a.limits;
  const U = a.usage;
  const failures = {};
  let runs = 0;
  for (const x of usage.data) {
    runs += x.runs;
    for (const [k, v] of Object.entries(x.failures)) failures[k] = (failures[k] || 0) + v;
  }
  const secret = h('code', {}, '••••••••');
  const reveal = h('button', { type: 'button', class: 'secondary' }, 'Show');
  reveal.addEventListener('click', () => { secret.textContent = a.webhook_secret; reveal.remove(); });
  main.append(h('h1', {}, 'Account ', a.name),
    h('div', { class: 'card' }, h('dl', { class: 'kv' },
      h('dt', {}, 'ID'), h('dd', { class: 'mono' }, a.id),
      h('dt', {}, 'Tier'), h('dd', {}, a.tier),
      h('dt', {}, 'Webhook secret'), h('dd', {}, secret, ' ', reveal))),
    h('section', { class: 'card' }, h('h2', {}, 'Today'), h('div', { class: 'scroll' }, h('table', {}, h('tbody', {},
      meterRow('Runs today (UTC)', U.runs_today, L.runs_per_day),
      meterRow('Running now', U.running, L.max_concurrent_runs),
      h('tr', {}, h('th', { scope: 'row' }, 'Queued'), h('td', {}, String(U.queued)), h('td', {}, '')),
      meterRow('Modules', U.modules, L.max_modules),
      meterRow('Module storage', U.module_bytes, L.max_module_storage_bytes, fmtBytes))))),
    h('section', { class: 'card chart' }, h('h2', {}, 'Runs per hour (last 24 hours)'),
      h('div', { class: 'legend' }, h('span', { class: 'ok' }, 'succeeded'), h('span', { class: 'bad' }, 'failed'), h('span', { class: 'pend' }, 'unfinished')),
      usageChart(usage.data),
      h('p', { class: 'muted' }, runs + ' runs in the last 24 hours.'),
      h('h2', {}, 'Failures by code'),
      Object.keys(failures).length === 0 ? h('p', { class: 'muted' }, 'None.') : h('table', {}, h('tbody', {},
        Object.entries(failures).sort((x, y) => y[1] - x[1]).map(([k, v]) => h('tr', {}, h('th', { scope: 'row', class: 'mono' }, k), h('td', {}, String(v))))))),
    h('section', { class: 'card' }, h('h2', {}, 'Limits of the ' + a.tier + ' tier'), h('div', { class: 'scroll' }, h('table', {}, h('tbody', {},
      Object.entries(L).map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k.replaceAll('_', ' ')),
        h('td', {}, fmtLimit(k, v)))))))),
    h('section', { class: 'card' }, h('h2', {}, 'Keys'), h('div', { class: 'scroll' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Prefix'), h('th', {}, 'Name'), h('th', {}, 'Last used'), h('th', { class: 'wide' }, 'Created'), h('th', {}, 'Revoked'))),
      h('tbody', {}, keys.data.map((k) => h('tr', {}, h('td', { class: 'mono' }, k.prefix), h('td', {}, k.name || '—'),
        h('td', {}, k.last_used_at ? fmtTime(k.last_used_at) : 'never'), h('td', { class: 'wide' }, fmtTime(k.created_at)),
        h('td', {}, k.revoked_at ? fmtTime(k.revoked_at) : 'no'))))))));
}
