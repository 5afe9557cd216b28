// DOM helpers. Everything is built with createElement and text nodes: no
// HTML strings ever (the page's policy requires Trusted Types, so giving
// an element markup as a string would throw), so text from the API or a
// guest is shown as text.

// h makes an element: h('a', {href: '#/jobs'}, 'Jobs').
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  add(el, children);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';

// s makes an SVG element.
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  setAttrs(el, attrs);
  add(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
}

export function add(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// clear empties an element.
export function clear(el) {
  el.replaceChildren();
  return el;
}

// shown makes guest output visible as text: control characters other than
// tab and newline (the escape of ANSI sequences among them) are not passed
// on but shown in caret notation (^[ for ESC) in a span of their own,
// marked so that they stand apart from text the guest printed.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f]/g;
export function shown(text) {
  text = String(text);
  const out = [];
  let last = 0;
  for (const m of text.matchAll(CONTROL)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const code = m[0].charCodeAt(0);
    out.push(h('span', { class: 'ctl', title: 'control character 0x' + code.toString(16).padStart(2, '0') },
      '^' + String.fromCharCode(code === 0x7f ? 0x3f : code + 0x40)));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
}

// fmtLimit shows a tier's limit: 0 is "none" for the file limits (no
// input files, no writes, no artifacts) and "unlimited" for the others.
const NONE_AT_ZERO = ['max_input_bytes', 'max_fs_bytes', 'max_artifact_bytes', 'max_asset_bytes'];
export function fmtLimit(name, v) {
  if (v === 0) return NONE_AT_ZERO.includes(name) ? 'none' : 'unlimited';
  return name.endsWith('_bytes') ? fmtBytes(v) : String(v);
}

export function fmtMs(n) {
  if (n === null || n === undefined) return '—';
  return n < 1000 ? n + ' ms' : (n / 1000).toFixed(2) + ' s';
}

export function badge(status) {
  return h('span', { class: 'badge s-' + status }, status.replace('_', ' '));
}

export function shortID(id) {
  return id ? id.slice(0, 8) + '…' + id.slice(-4) : '';
}

// field makes a labelled input; the label's for= names the control.
let seq = 0;
export function field(label, control, hint) {
  const id = control.id || 'f' + (++seq);
  control.id = id;
  return h('div', {}, h('label', { for: id }, label, hint ? h('span', { class: 'hint' }, ' ', hint) : null), control);
}

export function errorText(err) {
  if (err && err.problem) {
    const p = err.problem;
    let text = (p.code ? p.code + ': ' : '') + (p.detail || p.title || 'HTTP ' + err.status);
    if (Array.isArray(p.errors) && p.errors.length > 1) {
      text += ' — ' + p.errors.map((e) => e.field + ': ' + e.message).join('; ');
    }
    return text;
  }
  return err && err.message ? err.message : String(err);
}
