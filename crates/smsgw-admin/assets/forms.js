// Form pieces shared by the gateway and route forms: labelled fields with a hint and an error
// slot, secret fields that never show the stored value, key/value rows, and showing every
// validation problem of a 422 beside its field.

import { CENSORED } from './api.js';
import { fill, h } from './dom.js';

let serial = 0;
const uid = (base) => `${base}-${++serial}`;

/** A safe id fragment for an option name (names come from the server: keep ids predictable). */
export const idPart = (name) => String(name).replace(/[^A-Za-z0-9_-]/g, '_');

/**
 * A form whose fields are registered by key, so that problems can be put beside them.
 * `fields` maps a key (e.g. `URL`, `description`) to {control, error}.
 */
export class Form {
  constructor(id) {
    this.fields = new Map();
    this.summary = h('div', { class: 'summary', id: `${id}-summary`, tabindex: '-1' });
    this.rowSets = [];
  }

  /**
   * A labelled field: label, control, hint (linked by aria-describedby) and error slot. `el` is
   * what is placed (the control itself, or a wrapper around it such as a secret's).
   */
  field(key, label, control, { hint, required = false, id, el } = {}) {
    const cid = id || control.id || uid('f');
    control.id = cid;
    const hintEl = hint ? h('p', { class: 'hint', id: `${cid}-hint` }, hint) : null;
    const error = h('p', { class: 'field-error', id: `${cid}-error`, hidden: true });
    control.setAttribute('aria-describedby', [hintEl ? hintEl.id : null, error.id].filter(Boolean).join(' '));
    if (required) control.setAttribute('aria-required', 'true');
    const wrap = h('div', { class: 'field', 'data-key': key },
      h('label', { for: cid }, label, required ? h('span', { class: 'req', title: 'required' }, ' *', h('span', { class: 'sr-only' }, ' (required)')) : null),
      el || control, hintEl, error);
    this.fields.set(key, { control, error, wrap });
    return wrap;
  }

  /** Removes every shown problem. */
  clearProblems() {
    this.summary.replaceChildren();
    for (const f of this.allFields()) {
      f.error.hidden = true;
      f.error.replaceChildren();
      f.control.removeAttribute('aria-invalid');
    }
  }

  allFields() {
    return [...this.fields.values(), ...this.rowSets.flatMap((r) => r.fieldList())];
  }

  /** The field a problem's key names: exact, then ignoring case and `options.`-style prefixes. */
  find(key) {
    if (key === null || key === undefined) return null;
    const k = String(key);
    if (this.fields.has(k)) return this.fields.get(k);
    const bare = k.replace(/^\/?(options|headers|routes?|gateways?)[./]/i, '').replace(/^\//, '');
    for (const rows of this.rowSets) {
      const f = rows.byKey(k) || rows.byKey(bare);
      if (f) return f;
    }
    // `gateways[2]` is about the list as a whole here.
    const stem = bare.replace(/\[\d+\]$/, '');
    for (const [name, f] of this.fields) {
      if (name.toLowerCase() === bare.toLowerCase() || name === stem) return f;
    }
    return null;
  }

  /**
   * Shows every problem: beside its field when the key names one, in the summary otherwise;
   * the summary always lists all of them, each linked to its field. Focuses the summary.
   */
  showProblems(problems, title) {
    this.clearProblems();
    const items = [];
    for (const p of problems) {
      const f = this.find(p.key);
      if (f) {
        if (!f.error.hidden) f.error.append(h('br'));
        f.error.append(p.message);
        f.error.hidden = false;
        f.control.setAttribute('aria-invalid', 'true');
        items.push(h('li', {}, h('a', { href: `#${f.control.id}`, onclick: (e) => { e.preventDefault(); f.control.focus(); } },
          p.key ? `${p.key}: ` : '', p.message)));
      } else {
        items.push(h('li', {}, p.key ? `${p.key}: ` : '', p.message));
      }
    }
    fill(this.summary, h('div', { class: 'notice error', role: 'alert' },
      h('p', {}, title || `${problems.length} problem${problems.length === 1 ? '' : 's'} to fix:`),
      items.length ? h('ul', {}, items) : null));
    this.summary.focus();
  }

  /** Shows one error that belongs to the whole form. */
  showError(text) {
    this.clearProblems();
    fill(this.summary, h('p', { class: 'notice error', role: 'alert' }, text));
    this.summary.focus();
  }
}

/**
 * A password input for a secret. A stored secret comes back as __CENSORED__: the field stays
 * empty with the placeholder "unchanged" and reads back as __CENSORED__ (the server keeps the
 * stored value) until something is typed or "remove" is ticked.
 */
export function secretInput(id, stored, disabled) {
  const kept = stored === CENSORED;
  const input = h('input', {
    id, type: 'password', autocomplete: 'new-password', spellcheck: 'false', disabled,
    placeholder: kept ? 'unchanged' : '', 'data-secret': kept ? 'stored' : 'new',
    value: kept ? '' : (stored ?? ''),
  });
  let remove = null;
  const wrap = h('div', { class: 'secret' }, input);
  if (kept && !disabled) {
    remove = h('input', { type: 'checkbox', id: `${id}-remove` });
    wrap.append(h('label', { class: 'inline', for: remove.id }, remove, ' remove the stored value'));
  }
  const read = () => {
    if (remove && remove.checked) return undefined;
    if (input.value !== '') return input.value;
    return kept ? CENSORED : undefined;
  };
  return { input, wrap, read };
}

/**
 * Editable name/value rows (free options, headers). `entries` are [name, value] pairs; a value
 * the service answered censored gets a password input that keeps it unless replaced.
 */
export class Rows {
  constructor(form, { id, legend, noun, hint, entries = [], disabled = false }) {
    this.form = form;
    this.id = id;
    this.noun = noun;
    this.disabled = disabled;
    this.rows = [];
    this.list = h('div', { class: 'rows', id: `${id}-rows` });
    this.addButton = disabled ? null : h('button', { type: 'button', class: 'secondary', id: `${id}-add`, onclick: () => this.add('', '', true) }, `Add ${noun}`);
    this.el = h('fieldset', { class: 'kv', id },
      h('legend', {}, legend), hint ? h('p', { class: 'hint' }, hint) : null, this.list, this.addButton);
    for (const [k, v] of entries) this.add(k, v, false);
    form.rowSets.push(this);
  }

  add(name, value, focus) {
    const n = this.rows.length + 1;
    const base = `${this.id}-${uid('r')}`;
    const keyInput = h('input', { id: `${base}-name`, type: 'text', value: name, spellcheck: 'false', autocomplete: 'off', disabled: this.disabled, class: 'kv-name' });
    // Which names are secret is the service's rule (it answers them censored): no copy here.
    const secret = value === CENSORED;
    const val = secret ? secretInput(`${base}-value`, value, this.disabled)
      : { input: h('input', { id: `${base}-value`, type: 'text', value: typeof value === 'string' ? value : JSON.stringify(value), spellcheck: 'false', autocomplete: 'off', disabled: this.disabled, class: 'kv-value' }) };
    if (!val.wrap) val.wrap = val.input;
    val.input.classList.add('kv-value');
    const error = h('p', { class: 'field-error', id: `${base}-error`, hidden: true });
    keyInput.setAttribute('aria-describedby', error.id);
    val.input.setAttribute('aria-describedby', error.id);
    const row = { keyInput, val, error, el: null };
    const remove = this.disabled ? null : h('button', { type: 'button', class: 'secondary small', 'aria-label': `Remove ${this.noun} row ${n}`, onclick: () => this.remove(row) }, 'Remove');
    row.el = h('div', { class: 'kv-row' },
      h('div', { class: 'kv-cell' }, h('label', { for: keyInput.id }, `${this.noun} name`), keyInput),
      h('div', { class: 'kv-cell' }, h('label', { for: val.input.id }, 'value'), val.wrap),
      remove, error);
    this.rows.push(row);
    this.list.append(row.el);
    if (focus) keyInput.focus();
  }

  remove(row) {
    this.rows = this.rows.filter((r) => r !== row);
    row.el.remove();
    if (this.addButton) this.addButton.focus();
  }

  fieldList() {
    return this.rows.map((r) => ({ control: r.val.input, error: r.error }));
  }

  byKey(key) {
    const r = this.rows.find((x) => x.keyInput.value.trim() === key);
    return r ? { control: r.val.input, error: r.error } : null;
  }

  /** The rows as an object; rows with an empty name are skipped. */
  read() {
    const out = {};
    for (const r of this.rows) {
      const k = r.keyInput.value.trim();
      if (!k) continue;
      const v = r.val.read ? r.val.read() : r.val.input.value;
      if (v !== undefined) out[k] = v;
    }
    return out;
  }
}
