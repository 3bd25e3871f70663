// Building blocks for the console's pages. Every text from the catalog goes into
// the page through text nodes (h() and text()), never as markup: a package
// description or client name holding `<b>` shows those characters.

// h('tag.class', {attr: value, onclick: fn}, child...) -> Element. Children are
// nodes, strings (as text), numbers, arrays, or null/false (skipped).
export function h(spec, attrs, ...children) {
  const [tag, ...classes] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') el.style.cssText = v;  // CSSOM: allowed by the CSP
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

// Replaces the children of `el` with `children` (same forms as h()).
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A link inside the console (hash routes: #/package/NAME).
export function link(route, ...children) {
  return h('a', {href: '#' + route}, ...children);
}

// Route segment encoding: names may hold anything a name may hold.
export function seg(s) {
  return encodeURIComponent(String(s));
}

const pad = (n) => String(n).padStart(2, '0');

// An API time ("2026-12-05T03:26:39Z") in the browser's zone, with UTC on hover.
export function time(iso) {
  if (!iso) return h('span.muted', '—');
  const d = new Date(iso);
  if (isNaN(d)) return h('span', iso);
  const local = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h('time', {datetime: iso, title: iso.replace('T', ' ').replace('Z', ' UTC')}, local);
}

export function bytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n), i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; ++i; }
  return (i === 0 ? String(v) : v.toFixed(1)) + ' ' + units[i];
}

// A state as a coloured label.
export function badge(state) {
  return h('span.badge.s-' + String(state).replace(/[^a-z_-]/gi, ''), String(state));
}

// The deployment states, in the order a client passes them.
export const kStates = ['waiting', 'downloading', 'downloaded', 'installing', 'succeeded', 'failed'];

// A bar with one segment per state, sized by its share of `total`.
export function stateBar(counts, total) {
  const bar = h('div.bar', {role: 'img'});
  const parts = [];
  for (const s of kStates) {
    const n = counts[s] || 0;
    if (!n || !total) continue;
    parts.push(`${s} ${n}`);
    bar.appendChild(h('span.seg.s-' + s, {style: `width:${(100 * n / total).toFixed(2)}%`}));
  }
  const done = total ? Math.round(100 * (counts.succeeded || 0) / total) : 0;
  bar.setAttribute('aria-label', `${done}% succeeded: ` + (parts.join(', ') || 'no clients'));
  bar.dataset.succeeded = String(done);
  return h('div.barwrap', bar, h('span.pct', `${done}%`));
}

// A table: columns [{title, cell(row) -> node|string, cls}], rows, and what to say
// when there are none.
export function table(columns, rows, empty = 'None.') {
  if (!rows.length) return h('p.muted.empty', empty);
  return h('div.tablewrap', h('table',
      h('thead', h('tr', columns.map((c) => h('th', {scope: 'col', class: c.cls}, c.title)))),
      h('tbody', rows.map((r) => h('tr', columns.map((c) => h('td', {class: c.cls}, c.cell(r))))))));
}

export function section(title, ...children) {
  return h('section.card', h('h2', title), ...children);
}

// A form field with its label.
export function field(label, input, hint) {
  return h('label.field', h('span.label', label), input, hint ? h('span.hint', hint) : null);
}

// Shows an error (or clears with null) in a form's error line.
export function showError(el, err) {
  fill(el, err ? String(err.message || err) : '');
  el.hidden = !err;
}
