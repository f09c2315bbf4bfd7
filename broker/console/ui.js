// Small DOM helpers. Everything shown is set as text (never innerHTML), so a message body or a
// queue name can never inject markup; styles come from classes only (the CSP has no inline styles).

/** SVG's XML namespace: a name, not something fetched. */
const SVG_NS = 'http://www.w3.org/2000/svg';

/** Makes an element: h('td', {class: 'num'}, 'text', child, ...). `on*` attributes are listeners. */
export function h(tag, attrs = {}, ...children) {
  const svg = ['svg', 'polyline', 'line', 'path'].includes(tag);
  const el = svg ? document.createElementNS(SVG_NS, tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces the content of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A short notice at the bottom of the page; errors stay until the next notice. */
export function toast(text, kind = 'ok') {
  const box = document.getElementById('toast');
  fill(box, h('div', { class: 'toast ' + kind, role: kind === 'error' ? 'alert' : 'status' }, text));
  if (kind !== 'error') {
    const shown = box.firstChild;
    setTimeout(() => shown.remove(), 4000);
  }
}

/** Shows an API error where the user looks: a toast naming its code. */
export function failed(e) {
  toast(e.code ? `${e.message} (${e.code})` : String(e.message || e), 'error');
}

/** Asks in the page (not window.confirm) and resolves to true when the user confirms. */
export function confirmed(question, action = 'Confirm') {
  return new Promise((resolve) => {
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    const dialog = h(
      'dialog',
      { class: 'confirm', 'aria-label': 'confirmation' },
      h('p', {}, question),
      h(
        'div',
        { class: 'buttons' },
        h('button', { type: 'button', class: 'secondary', onclick: () => close(false) }, 'Cancel'),
        h('button', { type: 'button', class: 'danger', id: 'confirm-yes', onclick: () => close(true) }, action),
      ),
    );
    dialog.addEventListener('cancel', () => resolve(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** A sparkline of the values (oldest first) as inline SVG; no chart library. */
export function sparkline(values, label) {
  const w = 80;
  const hgt = 20;
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const points = values.map((v, i) => `${(i * step).toFixed(1)},${(hgt - 1 - (v / max) * (hgt - 2)).toFixed(1)}`);
  return h(
    'svg',
    { class: 'spark', viewBox: `0 0 ${w} ${hgt}`, width: w, height: hgt, role: 'img', 'aria-label': label },
    h('polyline', { points: points.join(' ') || `0,${hgt - 1} ${w},${hgt - 1}` }),
  );
}

export function age(seconds) {
  if (seconds === null || seconds === undefined) return '–';
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

export function rate(perSecond) {
  return perSecond < 10 ? perSecond.toFixed(1) : Math.round(perSecond).toString();
}

/** A labelled input; returns the label (holding the input). */
export function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', {}, label), input, hint ? h('small', {}, hint) : null);
}

/** Reads a form's named inputs: text as text, empty as undefined, checkboxes as booleans. */
export function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.type === 'checkbox') out[el.name] = el.checked;
    else out[el.name] = el.value.trim() === '' ? undefined : el.value;
  }
  return out;
}

/** Attribute pairs typed as "key=value" lines. */
export function parseAttributes(text) {
  const attributes = {};
  for (const line of (text || '').split('\n')) {
    const t = line.trim();
    if (!t) continue;
    const eq = t.indexOf('=');
    if (eq <= 0) throw new Error(`attribute line "${t}" is not key=value`);
    attributes[t.slice(0, eq).trim()] = t.slice(eq + 1).trim();
  }
  return attributes;
}

/** A form whose submit runs `action(values)` (never a browser form post). */
export function form(attrs, children, action) {
  const f = h('form', { method: 'post', ...attrs }, ...children);
  f.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = f.querySelector('button[type=submit]');
    if (button) button.disabled = true;
    try {
      await action(values(f), f);
    } catch (e) {
      failed(e);
    } finally {
      if (button) button.disabled = false;
    }
  });
  return f;
}

/** A table with a header row; `rows` are arrays of cells (text or elements). */
export function table(headers, rows, attrs = {}) {
  return h(
    'div',
    { class: 'scroll' },
    h(
      'table',
      attrs,
      h('thead', {}, h('tr', {}, headers.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', {}, rows),
    ),
  );
}

export function attributesText(attributes) {
  return Object.entries(attributes || {})
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}
