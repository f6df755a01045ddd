// "Send a test SMS" through a gateway or a route: number and text, then the outcome with every
// attempt. The message goes through the queue like any other (POST /v1/messages?wait=), so it
// also shows up in the message list.

import { api, ApiError, seg } from './api.js';
import { attemptsTable, badge, errorBox, fill, h } from './dom.js';
import { Form } from './forms.js';

const WAIT_S = 30;
const FINAL_WAIT_MS = 60000;
const PENDING = new Set(['queued', 'sending']);

export function testSend(main, kind, name) {
  const form = new Form('ts');
  const to = h('input', { type: 'tel', autocomplete: 'off', inputmode: 'tel', placeholder: '+491511234567' });
  const text = h('textarea', { rows: 3 }, 'smsgw test message');
  const send = h('button', { type: 'submit', id: 'send-test' }, 'Send');
  const outcome = h('section', { id: 'outcome', 'aria-live': 'polite', 'aria-label': 'Outcome' });
  const plural = `${kind}s`;
  let stopped = false;

  const show = (m) => {
    fill(outcome,
      h('h2', {}, 'Outcome: ', badge(m.status)),
      h('dl', { class: 'detail' },
        h('dt', {}, 'Message'), h('dd', {}, m.id ? h('a', { href: `#/messages/${seg(m.id)}`, id: 'outcome-message' }, m.id) : '—'),
        h('dt', {}, 'Gateway'), h('dd', {}, m.gateway ?? '—'),
        h('dt', {}, 'Gateway message ids'), h('dd', {}, (m.message_ids || []).join(', ') || '—'),
        PENDING.has(m.status) ? [h('dt', {}, 'Note'), h('dd', {}, 'Still pending; this view updates itself.')] : null),
      h('h3', {}, 'Attempts'), attemptsTable(m.attempts));
  };

  form.summary.setAttribute('aria-live', 'polite');
  const el = h('form', { id: 'test-form', novalidate: true },
    form.summary,
    form.field('to', 'Phone number', to, { required: true, id: 'test-to', hint: 'International format, e.g. +491511234567.' }),
    form.field('text', 'Text', text, { required: true, id: 'test-text' }),
    h('div', { class: 'actions' }, send));

  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    const local = [];
    if (!to.value.trim()) local.push({ key: 'to', message: 'Enter the number to send to.' });
    if (!text.value) local.push({ key: 'text', message: 'Enter a text.' });
    if (local.length) return form.showProblems(local);
    form.clearProblems();
    send.disabled = true;
    fill(outcome, h('p', { class: 'muted' }, 'Sending…'));
    try {
      const body = { to: to.value.trim(), text: text.value, [kind]: name, metadata: { source: 'admin page test' } };
      const { data } = await api('POST', `/v1/messages?wait=${WAIT_S}`, body, { timeout: (WAIT_S + 10) * 1000 });
      show(data);
      // Still pending after the wait: follow it for a while longer.
      let m = data;
      const until = Date.now() + FINAL_WAIT_MS;
      while (m.id && PENDING.has(m.status) && Date.now() < until && !stopped) {
        await new Promise((r) => setTimeout(r, 1000));
        m = (await api('GET', `/v1/messages/${seg(m.id)}`)).data;
        if (!stopped) show(m);
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 422 && err.problems.length) form.showProblems(err.problems);
      else fill(outcome, errorBox(`${err.status ? `${err.status}: ` : ''}${err.message}`));
    } finally {
      send.disabled = false;
    }
  });

  fill(main,
    h('p', { class: 'crumbs' }, h('a', { href: `#/${plural}` }, kind === 'gateway' ? 'Gateways' : 'Routes'), ' / ',
      h('a', { href: `#/${plural}/${seg(name)}` }, name), ' / test'),
    h('h1', { tabindex: '-1' }, `Send a test SMS through ${kind} ${name}`),
    el, outcome);
  return () => { stopped = true; };
}
