// DOM helpers: elements built with textContent only (never parsed HTML, no
// inline style or handler attributes), labelled form fields with their
// error next to them, tables, polling that stops when hidden.
import { ApiError } from './api.js';

let seq = 0;

// el makes an element: attrs are properties or attributes (aria-*, data-*,
// for), children are nodes or strings (as text).
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on') && typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k.includes('-') || k === 'for' || k === 'role') e.setAttribute(k, v === true ? '' : v);
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(typeof c === 'string' || typeof c === 'number' ? String(c) : c);
  }
  return e;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
}

// field is a labelled control with its error line; spec: {name, label,
// type ('text', 'password', 'number', 'checkbox', 'select', 'checks'),
// value, options: [{value, label}], required, autocomplete, placeholder}.
export function field(spec) {
  const id = `f${++seq}-${spec.name}`;
  const err = el('span', { class: 'err', id: `${id}-err`, 'aria-live': 'polite' });
  let input;
  let wrap;
  if (spec.type === 'select') {
    input = el('select', { id, name: spec.name, 'aria-describedby': `${id}-err` },
      (spec.options || []).map((o) => el('option', { value: o.value, selected: o.value === spec.value, text: o.label })));
    wrap = el('div', { class: 'field' }, el('label', { for: id, text: spec.label }), input, err);
  } else if (spec.type === 'checkbox') {
    input = el('input', { id, name: spec.name, type: 'checkbox', checked: !!spec.value, 'aria-describedby': `${id}-err` });
    wrap = el('div', { class: 'field check' }, input, el('label', { for: id, text: spec.label }), err);
  } else if (spec.type === 'checks') {
    const boxes = (spec.options || []).map((o) => {
      const bid = `${id}-${o.value}`;
      return el('span', { class: 'field check' },
        el('input', { id: bid, type: 'checkbox', value: o.value, checked: (spec.value || []).includes(o.value) }),
        el('label', { for: bid, text: o.label }));
    });
    input = el('fieldset', { id, class: 'row', 'aria-describedby': `${id}-err` },
      el('legend', { class: 'muted', text: spec.label }), boxes.length ? boxes : el('span', { class: 'muted', text: 'none yet' }));
    wrap = el('div', { class: 'field' }, input, err);
  } else {
    input = el('input', {
      id, name: spec.name, type: spec.type || 'text', value: spec.value ?? '', required: !!spec.required,
      autocomplete: spec.autocomplete || 'off', placeholder: spec.placeholder, 'aria-describedby': `${id}-err`,
    });
    wrap = el('div', { class: 'field' }, el('label', { for: id, text: spec.label }), input, err);
  }
  return { spec, input, err, wrap };
}

// fieldValue reads a field the way the API wants it.
function fieldValue(f) {
  const t = f.spec.type;
  if (t === 'checkbox') return f.input.checked;
  if (t === 'checks') return [...f.input.querySelectorAll('input:checked')].map((i) => i.value);
  if (t === 'number') return f.input.value === '' ? undefined : Number(f.input.value);
  return f.input.value;
}

// form builds a form of fields; onSubmit(values) may throw an ApiError,
// whose field (e.g. "name", "hosts[0]") puts its message next to that
// field, or under the form when it names none of them.
export function form({ title, fields, submit, onSubmit, className = 'card', id }) {
  const fs = fields.map(field);
  const formErr = el('p', { class: 'err form-err', role: 'alert' });
  const button = el('button', { type: 'submit', text: submit });
  const f = el('form', { class: className, id, 'aria-label': title || submit, novalidate: true },
    title ? el('h2', { text: title, class: 'form-title' }) : null, fs.map((x) => x.wrap), button, formErr);
  const reset = () => {
    formErr.textContent = '';
    fs.forEach((x) => { x.err.textContent = ''; x.input.removeAttribute('aria-invalid'); });
  };
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    reset();
    const values = {};
    fs.forEach((x) => { values[x.spec.name] = fieldValue(x); });
    button.disabled = true;
    try {
      await onSubmit(values, f);
    } catch (e) {
      showError(e, fs, formErr);
    } finally {
      button.disabled = false;
    }
  });
  f.fields = Object.fromEntries(fs.map((x) => [x.spec.name, x]));
  return f;
}

// showError puts an error next to the field it names, else in formErr.
export function showError(e, fields, formErr) {
  const msg = e instanceof ApiError ? `${e.message}` : String(e.message || e);
  if (e instanceof ApiError && e.field) {
    const base = e.field.replace(/\[.*$/, '').replace(/^.*\./, '');
    const f = fields.find((x) => x.spec.name === e.field || x.spec.name === base);
    if (f) {
      f.err.textContent = msg;
      f.input.setAttribute('aria-invalid', 'true');
      f.input.focus();
      return;
    }
  }
  formErr.textContent = msg;
}

// table makes a table from headers and rows of cells (nodes or strings).
export function table(caption, headers, rows, empty = 'Nothing yet.') {
  if (!rows.length) return el('p', { class: 'muted', text: empty });
  return el('div', { class: 'table-wrap' }, el('table', {},
    el('caption', { class: 'muted', text: caption }),
    el('thead', {}, el('tr', {}, headers.map((h) => el('th', { scope: 'col', text: h })))),
    el('tbody', {}, rows.map((r) => el('tr', {}, r.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : el('td', {}, c))))))));
}

export function tag(on, yes, no) {
  return el('span', { class: `tag ${on ? 'on' : 'off'}`, text: on ? yes : no });
}

let toastTimer;
export function toast(msg) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { t.textContent = ''; }, 4000);
}

// pollers counts the running pollers, shown as data-polls on <html> (the
// browser test checks that leaving a page or logging out stops them).
let pollers = 0;
function countPollers(d) {
  pollers += d;
  document.documentElement.dataset.polls = String(pollers);
}

// poll runs fn now and every ms while the page is visible; the returned
// function stops it. A failed fn goes to onError.
export function poll(fn, ms, onError) {
  countPollers(1);
  let timer = null;
  let stopped = false;
  let running = false;
  const tick = async () => {
    timer = null;
    if (stopped || document.hidden || running) return;
    running = true;
    try {
      await fn();
    } catch (e) {
      if (onError) onError(e);
    } finally {
      running = false;
    }
    if (!stopped && !document.hidden) timer = setTimeout(tick, ms);
  };
  const vis = () => {
    if (document.hidden) {
      clearTimeout(timer);
      timer = null;
    } else if (!timer && !running) {
      tick();
    }
  };
  document.addEventListener('visibilitychange', vis);
  tick();
  return () => {
    if (stopped) return;
    countPollers(-1);
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', vis);
  };
}

export function fmtTime(s) {
  if (!s) return '';
  const d = new Date(s);
  return Number.isNaN(d.getTime()) || d.getFullYear() < 1971 ? '' : d.toLocaleString();
}

export function fmtBytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = Number(n) || 0;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${i ? v.toFixed(1) : v} ${u[i]}`;
}

export function fmtDuration(sec) {
  sec = Math.max(0, Math.round(sec));
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  return h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}
