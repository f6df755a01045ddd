// Building the page from data without ever parsing data as markup: elements are created one by
// one and every text goes in as a text node (the CSP's Trusted Types would refuse markup assigned as a string).

/**
 * h('p', {class: 'x', onclick: fn}, 'text', child, [more]) — attributes are set with
 * setAttribute (on* keys become listeners; `hidden`, `disabled`, … take booleans), children are
 * nodes or strings (text nodes), null/false are skipped, arrays are flattened.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** A time from the API (milliseconds or an RFC 3339 string) for people; '' when absent. */
export function when(t) {
  if (t === null || t === undefined || t === '') return '';
  const d = new Date(typeof t === 'number' ? t : String(t));
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

/** A status as a badge (the class name comes from a fixed list, never from data). */
const KNOWN = new Set(['queued', 'sending', 'sent', 'delivered', 'undelivered', 'failed', 'unknown']);
export function badge(status) {
  const s = String(status ?? '');
  return h('span', { class: `badge ${KNOWN.has(s) ? `st-${s}` : ''}`, 'data-status': s }, s || '—');
}

/**
 * A table that becomes a list of cards on a narrow screen: every cell carries its column's name
 * (shown by the style sheet through `attr(data-label)`).
 */
export function table(caption, columns, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs,
      h('caption', { class: 'sr-only' }, caption),
      h('thead', {}, h('tr', {}, columns.map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c, i) => h('td', { 'data-label': columns[i] }, c)))))));
}

/** The attempts of a message or test send as a table. */
export function attemptsTable(attempts) {
  if (!Array.isArray(attempts) || attempts.length === 0) return h('p', { class: 'muted' }, 'No attempt yet.');
  return table('Attempts', ['#', 'Gateway', 'Outcome', 'Error', 'Time', 'At'],
    attempts.map((a, i) => [String(i + 1), a.gateway ?? '', a.kind ?? '', a.error ?? '',
      a.ms !== undefined ? `${a.ms} ms` : '', when(a.at)]),
    { class: 'attempts' });
}

/** Shows a short notice in the live region (read out by screen readers). */
export function flash(text, kind = 'info') {
  const box = document.getElementById('flash');
  box.replaceChildren(h('p', { class: `notice ${kind === 'error' ? 'error' : 'ok'}` }, text));
  flash.at = Date.now();
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => box.replaceChildren(), 8000);
}

/** Removes a notice on the next view change, unless it was just set for that view. */
export function clearStaleFlash() {
  if (Date.now() - (flash.at || 0) > 1500) document.getElementById('flash').replaceChildren();
}

/** A problem box for an error that belongs to no field. */
export function errorBox(text) {
  return h('p', { class: 'notice error', role: 'alert' }, text);
}

/** JSON for people, as text. */
export function pretty(v) {
  return h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
}

/** Replaces an element's children like replaceChildren, skipping null/false and flattening arrays. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}
