// Messages: the latest ones with a status filter, refreshing by itself, and a detail view.

import { api, entries, seg, STATUSES } from './api.js';
import { attemptsTable, badge, errorBox, fill, h, pretty, table, when } from './dom.js';

const REFRESH_MS = 3000;
const LIMIT = 50;
const PENDING = new Set(['queued', 'sending']);

// The filter survives leaving the page and coming back (for this tab only).
let filter = '';
let auto = true;

function rows(list) {
  return list.map(([id, m]) => [
    h('a', { href: `#/messages/${seg(id)}`, 'data-id': id, class: 'msg-link' }, when(m.created_at) || id),
    badge(m.status),
    m.to ?? '',
    m.route ? `route ${m.route}${m.gateway ? ` (${m.gateway})` : ''}` : (m.gateway ?? ''),
    String(Array.isArray(m.attempts) ? m.attempts.length : (m.attempts ?? '')),
    when(m.updated_at),
  ]);
}

/** #/messages. Returns a function that stops the refreshing. */
export async function listMessages(main) {
  const statusSel = h('select', { id: 'status-filter' },
    h('option', { value: '' }, 'all'),
    STATUSES.map((s) => h('option', { value: s, selected: s === filter }, s)));
  const autoBox = h('input', { type: 'checkbox', id: 'auto-refresh', checked: auto });
  const stamp = h('p', { class: 'muted', id: 'refreshed', 'aria-live': 'off' });
  const holder = h('div', { id: 'messages-holder' });
  let timer = null;
  let stopped = false;

  const load = async () => {
    const q = new URLSearchParams({ limit: String(LIMIT) });
    if (filter) q.set('status', filter);
    try {
      const { data } = await api('GET', `/v1/messages?${q}`);
      if (stopped) return;
      const list = entries(data, 'messages');
      // Keep the keyboard where it was across a refresh.
      const focusedId = document.activeElement?.closest?.('#messages-holder') ? document.activeElement.getAttribute('data-id') : null;
      fill(holder, list.length === 0
        ? h('p', { class: 'muted', id: 'no-messages' }, filter ? `No ${filter} message.` : 'No message yet.')
        : table('Latest messages', ['Created', 'Status', 'To', 'Sent through', 'Attempts', 'Updated'], rows(list), { id: 'messages' }));
      if (focusedId) holder.querySelector(`a[data-id="${CSS.escape(focusedId)}"]`)?.focus();
      stamp.textContent = `Updated ${new Date().toLocaleTimeString()}${auto ? `, refreshing every ${REFRESH_MS / 1000} s` : ''}.`;
    } catch (err) {
      if (!stopped) fill(stamp, errorBox(`Could not load the messages: ${err.message}`));
    }
  };
  const schedule = () => {
    clearInterval(timer);
    timer = auto ? setInterval(() => { if (!document.hidden) load(); }, REFRESH_MS) : null;
  };
  statusSel.addEventListener('change', () => { filter = statusSel.value; load(); });
  autoBox.addEventListener('change', () => { auto = autoBox.checked; schedule(); load(); });

  fill(main,
    h('h1', { tabindex: '-1' }, 'Messages'),
    h('div', { class: 'filters' },
      h('div', { class: 'field inline-field' }, h('label', { for: statusSel.id }, 'Status'), statusSel),
      h('div', { class: 'field inline-field' }, h('label', { class: 'inline', for: autoBox.id }, autoBox, ' refresh by itself'))),
    stamp, holder);
  await load();
  schedule();
  return () => { stopped = true; clearInterval(timer); };
}

/** #/messages/ID; refreshes while the message is pending. */
export async function messageDetail(main, id) {
  let timer = null;
  let stopped = false;
  const draw = (m) => {
    const hasText = typeof m.text === 'string';
    fill(main,
      h('p', { class: 'crumbs' }, h('a', { href: '#/messages' }, 'Messages'), ' / ', id),
      h('h1', { tabindex: '-1' }, 'Message ', badge(m.status)),
      h('dl', { class: 'detail', id: 'message-detail' },
        h('dt', {}, 'Identifier'), h('dd', {}, m.id ?? id),
        h('dt', {}, 'To'), h('dd', {}, m.to ?? ''),
        h('dt', {}, 'Text'), h('dd', { id: 'message-text' }, hasText ? m.text : h('span', { class: 'muted' }, 'No longer kept (texts are erased after the retention time).')),
        m.route ? [h('dt', {}, 'Route'), h('dd', {}, m.route)] : null,
        h('dt', {}, 'Gateway'), h('dd', {}, m.gateway ?? '—'),
        h('dt', {}, 'Gateway message ids'), h('dd', {}, (m.message_ids || []).join(', ') || '—'),
        m.possible_duplicate ? [h('dt', {}, 'Warning'), h('dd', {}, 'It was being sent when the service stopped: it may have arrived twice.')] : null,
        h('dt', {}, 'Created'), h('dd', {}, when(m.created_at)),
        h('dt', {}, 'Updated'), h('dd', {}, when(m.updated_at)),
        m.metadata ? [h('dt', {}, 'Metadata'), h('dd', {}, pretty(m.metadata))] : null),
      h('h2', {}, 'Attempts'), attemptsTable(m.attempts));
  };
  const load = async () => {
    const { data } = await api('GET', `/v1/messages/${seg(id)}`);
    if (stopped) return;
    draw(data);
    clearTimeout(timer);
    if (PENDING.has(data.status)) timer = setTimeout(() => load().catch(() => {}), REFRESH_MS);
  };
  await load();
  return () => { stopped = true; clearTimeout(timer); };
}
