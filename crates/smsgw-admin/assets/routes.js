// Routes: the list, and a form with the gateway order editable (move up/down, add, remove).
// The defaults (deadline, retries, …) belong to the routing crate: empty fields leave them to it.

import { api, entries, origin, seg } from './api.js';
import { fill, h, table } from './dom.js';
import { Form } from './forms.js';
import { deleteControl, showSaveError } from './gateways.js';

export async function listRoutes(main) {
  const { data } = await api('GET', '/v1/routes');
  const list = entries(data, 'routes');
  fill(main,
    h('div', { class: 'title-row' }, h('h1', { tabindex: '-1' }, 'Routes'),
      h('a', { class: 'button', href: '#/routes/new', id: 'new-route' }, 'New route')),
    h('p', { class: 'hint' }, 'A route tries its gateways in order: a message that one gateway could not send goes to the next.'),
    list.length === 0 ? h('p', { class: 'muted' }, 'No route yet.') :
      table('Routes', ['Name', 'Gateways, in order', 'Defined in', 'Actions'],
        list.map(([name, r]) => [
          h('a', { href: `#/routes/${seg(name)}`, 'data-id': name }, name),
          (r.gateways || []).join(' → '),
          origin(r) === 'file' ? 'file (read-only)' : 'database',
          h('a', { href: `#/test/route/${seg(name)}`, 'aria-label': `Send a test SMS through route ${name}` }, 'Test'),
        ]), { id: 'routes' }));
}

/** An ordered list of gateway ids with buttons to reorder, remove and add. */
class Order {
  constructor(id, label, gateways, known, disabled) {
    this.items = [...gateways];
    this.known = known;
    this.disabled = disabled;
    this.list = h('ol', { class: 'order', id: `${id}-list`, 'aria-label': label });
    this.pick = h('select', { id: `${id}-pick`, disabled });
    this.control = this.pick;
    const add = h('button', { type: 'button', class: 'secondary', id: `${id}-add`, disabled }, 'Add');
    add.addEventListener('click', () => {
      if (!this.pick.value) return;
      this.items.push(this.pick.value);
      this.render(this.items.length - 1, 'up');
    });
    this.adder = disabled ? this.pick : h('div', { class: 'inline-add' }, this.pick, add);
    this.render();
  }

  move(i, d) {
    const j = i + d;
    if (j < 0 || j >= this.items.length) return;
    [this.items[i], this.items[j]] = [this.items[j], this.items[i]];
    this.render(j, d < 0 ? 'up' : 'down');
  }

  // Redraws; focus follows the moved item's button so that the keyboard can keep moving it.
  render(focusIndex, which) {
    fill(this.list, this.items.map((g, i) => h('li', { 'data-gateway': g },
      h('span', { class: 'gw' }, g),
      this.disabled ? null : [
        h('button', { type: 'button', class: 'small secondary up', 'aria-label': `Move ${g} up`, disabled: i === 0, onclick: () => this.move(i, -1) }, '↑'),
        h('button', { type: 'button', class: 'small secondary down', 'aria-label': `Move ${g} down`, disabled: i === this.items.length - 1, onclick: () => this.move(i, 1) }, '↓'),
        h('button', { type: 'button', class: 'small secondary', 'aria-label': `Remove ${g}`, onclick: () => { this.items.splice(i, 1); this.render(); this.pick.focus(); } }, 'Remove'),
      ])));
    fill(this.pick, h('option', { value: '' }, 'choose a gateway'),
      this.known.filter((g) => !this.items.includes(g)).map((g) => h('option', { value: g }, g)));
    if (focusIndex !== undefined) {
      const li = this.list.children[focusIndex];
      const btn = li && (li.querySelector(`button.${which}:not([disabled])`) || li.querySelector('button:not([disabled])'));
      if (btn) btn.focus();
    }
  }
}

/**
 * The rules, editable: each a number pattern and the gateways it sends through (comma-separated,
 * in order). Fields are registered as `rules[i].match` / `rules[i].gateways`, the keys the
 * server's problems use, so that a bad pattern is shown beside its field.
 */
class Rules {
  constructor(form, rules, disabled) {
    this.form = form;
    this.disabled = disabled;
    this.rows = rules.map((r) => ({ match: r.match ?? '', gateways: (r.gateways || []).join(', ') }));
    this.list = h('div', { class: 'rules', id: 'route-rules' });
    this.add = disabled ? null : h('button', { type: 'button', class: 'secondary', id: 'rule-add' }, 'Add a rule');
    if (this.add) this.add.addEventListener('click', () => { this.read(); this.rows.push({ match: '', gateways: '' }); this.render(this.rows.length - 1); });
    this.render();
  }

  // Takes what was typed into the rows (before a redraw or a save).
  read() {
    this.rows.forEach((r, i) => {
      for (const k of ['match', 'gateways']) {
        const f = this.form.fields.get(`rules[${i}].${k}`);
        if (f) r[k] = f.control.value;
      }
    });
  }

  render(focus) {
    for (const k of [...this.form.fields.keys()]) if (k.startsWith('rules[')) this.form.fields.delete(k);
    fill(this.list, this.rows.map((r, i) => {
      const match = h('input', { type: 'text', value: r.match, disabled: this.disabled, spellcheck: 'false', autocomplete: 'off', placeholder: '^\\+49' });
      const gws = h('input', { type: 'text', value: r.gateways, disabled: this.disabled, spellcheck: 'false', autocomplete: 'off' });
      const remove = this.disabled ? null : h('button', { type: 'button', class: 'small secondary', 'aria-label': `Remove rule ${i + 1}`,
        onclick: () => { this.read(); this.rows.splice(i, 1); this.render(); if (this.add) this.add.focus(); } }, 'Remove');
      return h('div', { class: 'rule', 'data-rule': String(i) },
        this.form.field(`rules[${i}].match`, `Rule ${i + 1}: numbers matching`, match, { id: `rule-${i}-match`, hint: 'A regular expression on the phone number; the first rule that matches wins.' }),
        this.form.field(`rules[${i}].gateways`, `Rule ${i + 1}: gateways, in order`, gws, { id: `rule-${i}-gateways`, hint: 'Gateway ids separated by commas.' }),
        remove);
    }));
    if (focus !== undefined) {
      const f = this.form.fields.get(`rules[${focus}].match`);
      if (f) f.control.focus();
    }
  }

  value() {
    this.read();
    return this.rows.map((r) => ({ match: r.match, gateways: r.gateways.split(',').map((g) => g.trim()).filter(Boolean) }));
  }
}

const num = (v) => (v === '' ? undefined : (Number.isFinite(Number(v)) ? Number(v) : v));

export async function routeForm(main, name) {
  const isNew = name === null;
  const [gws, existing] = await Promise.all([
    api('GET', '/v1/gateways').then((r) => entries(r.data, 'gateways').map(([id]) => id)),
    isNew ? null : api('GET', `/v1/routes/${seg(name)}`).then((r) => r.data),
  ]);
  const r = existing || {};
  const readOnly = !isNew && origin(r) === 'file';
  const form = new Form('rt');
  const nameInput = h('input', { type: 'text', value: isNew ? '' : name, disabled: !isNew, autocomplete: 'off', spellcheck: 'false' });
  const order = new Order('route-gateways', 'Gateways, tried in this order', r.gateways || [], gws, readOnly);
  const numField = (key, label, hint) => {
    const input = h('input', { type: 'text', inputmode: 'decimal', value: r[key] ?? '', disabled: readOnly, autocomplete: 'off' });
    return { key, input, el: form.field(key, label, input, { hint, id: `rt-${key}` }) };
  };
  const deadline = numField('deadline', 'Deadline (seconds)', 'For the whole delivery, all attempts together. Empty: the default.');
  const retries = numField('retries', 'Retries', 'Extra attempts on the same gateway after a failure that is safe to retry. Empty: the default.');
  const backoff = numField('backoff', 'Backoff (seconds)', 'Before the first retry; doubles with jitter. Empty: the default.');
  const onUnknown = h('select', { disabled: readOnly },
    h('option', { value: '' }, 'default (stop)'),
    ['stop', 'failover'].map((v) => h('option', { value: v, selected: r.on_unknown === v }, v)));
  const rules = new Rules(form, Array.isArray(r.rules) ? r.rules : [], readOnly);
  const save = h('button', { type: 'submit', id: 'save' }, 'Save');
  const el = h('form', { id: 'route-form', novalidate: true },
    form.summary,
    form.field('name', 'Name', nameInput, { required: true, id: 'rt-name' }),
    h('fieldset', {}, h('legend', {}, 'Gateways, tried in this order'),
      h('p', { class: 'hint' }, 'Use ↑ and ↓ to change the order.'), order.list,
      readOnly ? null : form.field('gateways', 'Add a gateway', order.control, { el: order.adder, id: 'route-gateways-pick' })),
    deadline.el, retries.el, backoff.el,
    form.field('on_unknown', 'When the outcome is unknown', onUnknown, { id: 'rt-on_unknown', hint: 'stop: report it (the message may have been sent); failover: try the next gateway, the message may arrive twice.' }),
    h('fieldset', {}, h('legend', {}, 'Rules'),
      h('p', { class: 'hint' }, 'Optional: numbers that match a rule go through its gateways instead of the list above.'),
      rules.list, rules.add),
    readOnly ? null : h('div', { class: 'actions' }, save, h('a', { href: '#/routes', class: 'button secondary' }, 'Cancel')));

  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    const rname = nameInput.value.trim();
    if (!rname) return form.showProblems([{ key: 'name', message: 'Give the route a name.' }]);
    const body = { gateways: order.items };
    for (const f of [deadline, retries, backoff]) {
      const v = num(f.input.value.trim());
      if (v !== undefined) body[f.key] = v;
    }
    if (onUnknown.value) body.on_unknown = onUnknown.value;
    const ruleList = rules.value();
    if (ruleList.length) body.rules = ruleList;
    save.disabled = true;
    try {
      if (isNew) {
        const { status } = await api('GET', `/v1/routes/${seg(rname)}`, undefined, { accept: [404] });
        if (status !== 404) return form.showProblems([{ key: 'name', message: `A route named ${rname} exists already.` }]);
      }
      await api('PUT', `/v1/routes/${seg(rname)}`, body);
      location.hash = '#/routes';
    } catch (err) {
      showSaveError(form, err);
    } finally {
      save.disabled = false;
    }
  });

  fill(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/routes' }, 'Routes'), ' / ', isNew ? 'new' : name),
    h('h1', { tabindex: '-1' }, isNew ? 'New route' : `Route ${name}`),
    readOnly ? h('p', { class: 'notice info', id: 'read-only' }, 'This route is defined in the configuration file: it is read-only here.') : null,
    el,
    isNew ? null : h('section', { class: 'more', 'aria-label': 'More actions' },
      h('a', { class: 'button secondary', href: `#/test/route/${seg(name)}` }, 'Send a test SMS'),
      readOnly ? null : deleteControl('route', name)));
}
