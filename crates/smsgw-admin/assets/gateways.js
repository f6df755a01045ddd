// Gateways: the list, and a form generated from the provider's parameter schema (GET /v1/providers).

import { api, ApiError, entries, origin, providers, seg } from './api.js';
import { errorBox, fill, flash, h, table } from './dom.js';
import { Form, Rows, idPart, secretInput } from './forms.js';

/** The health column: the circuit breaker and the share of recent attempts that failed. */
function health(g) {
  const b = g.breaker;
  if (!b || typeof b !== 'object') return '—';
  const parts = [`breaker ${String(b.state).replace('_', '-')}`];
  if (b.state === 'open' && b.open_until) parts.push(`until ${new Date(b.open_until).toLocaleTimeString()}`);
  if (b.recent_attempts > 0) {
    parts.push(`${Math.round((1000 * b.recent_failures) / b.recent_attempts) / 10}% of the last ${b.recent_attempts} attempts failed`);
  }
  return parts.join(', ');
}

export async function listGateways(main) {
  const { data } = await api('GET', '/v1/gateways');
  const list = entries(data, 'gateways');
  fill(main,
    h('div', { class: 'title-row' }, h('h1', { tabindex: '-1' }, 'Gateways'),
      h('a', { class: 'button', href: '#/gateways/new', id: 'new-gateway' }, 'New gateway')),
    list.length === 0 ? h('p', { class: 'muted' }, 'No gateway yet.') :
      table('Gateways', ['Identifier', 'Provider', 'Description', 'Defined in', 'Health', 'Actions'],
        list.map(([id, g]) => [
          h('a', { href: `#/gateways/${seg(id)}`, class: 'gw-link', 'data-id': id }, id),
          g.provider ?? '', g.description ?? '',
          origin(g) === 'file' ? 'file (read-only)' : 'database', health(g),
          h('a', { href: `#/test/gateway/${seg(id)}`, 'aria-label': `Send a test SMS through ${id}` }, 'Test'),
        ]), { id: 'gateways' }));
}

// The value of an option as text for an input, whatever type the answer gave it.
function asText(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (typeof v === 'object') return JSON.stringify(v, null, 2);
  return String(v);
}

// A parameter's value under its name or one of its aliases; the matched key is consumed.
function takeOption(options, p) {
  for (const name of [p.name, ...(p.aliases || [])]) {
    if (Object.prototype.hasOwnProperty.call(options, name)) {
      const v = options[name];
      delete options[name];
      return v;
    }
  }
  return undefined;
}

const kindName = (p) => (typeof p.kind === 'string' ? p.kind : (p.kind?.type ?? p.kind?.name ?? '')).toLowerCase();

// One control for one parameter: a choice for allowed values, a password field for a secret,
// a text area for a JSON object, a text field otherwise; the default as placeholder.
function paramControl(p, value, disabled) {
  const id = `opt-${idPart(p.name)}`;
  const kind = kindName(p);
  const allowed = Array.isArray(p.allowed) && p.allowed.length ? p.allowed : (kind === 'yes/no' ? ['yes', 'no'] : []);
  const dflt = p.default ?? null;
  if (p.secret) {
    const s = secretInput(id, value === undefined ? undefined : asText(value), disabled);
    return { control: s.input, el: s.wrap, read: s.read };
  }
  if (allowed.length) {
    const current = asText(value);
    const opts = [h('option', { value: '' }, dflt !== null ? `default (${dflt})` : 'not set')];
    let matched = current === '';
    for (const a of allowed) {
      const sel = current !== '' && a.toLowerCase() === current.toLowerCase();
      matched ||= sel;
      opts.push(h('option', { value: sel ? current : a, selected: sel }, a));
    }
    if (!matched) opts.push(h('option', { value: current, selected: true }, current));
    const sel = h('select', { id, disabled }, opts);
    return { control: sel, el: sel, read: () => (sel.value === '' ? undefined : sel.value) };
  }
  const attrs = { id, disabled, spellcheck: 'false', autocomplete: 'off', placeholder: dflt ?? '' };
  if (kind.includes('json')) {
    const ta = h('textarea', { ...attrs, rows: 3 }, asText(value));
    return { control: ta, el: ta, read: () => (ta.value.trim() === '' ? undefined : ta.value) };
  }
  if (kind.startsWith('integer') || kind === 'seconds') attrs.inputmode = 'decimal';
  if (kind === 'url') attrs.inputmode = 'url';
  const input = h('input', { ...attrs, type: 'text', value: asText(value) });
  return { control: input, el: input, read: () => (input.value === '' ? undefined : input.value) };
}

/** #/gateways/new and #/gateways/ID: the form, read-only for a file-defined gateway. */
export async function gatewayForm(main, id) {
  const isNew = id === null;
  const [provs, existing] = await Promise.all([
    providers(),
    isNew ? null : api('GET', `/v1/gateways/${seg(id)}`).then((r) => r.data),
  ]);
  const state = existing
    ? { id, provider: existing.provider ?? '', description: existing.description ?? '', options: { ...(existing.options || {}) }, headers: { ...(existing.headers || {}) } }
    : { id: '', provider: '', description: '', options: {}, headers: {} };
  const readOnly = !isNew && origin(existing || {}) === 'file';
  draw(main, provs, state, isNew, readOnly);
}

function draw(main, provs, state, isNew, readOnly) {
  const form = new Form('gw');
  const prov = provs.find((p) => p.name === state.provider || (p.aliases || []).includes(state.provider));
  const idInput = h('input', { type: 'text', value: state.id, autocomplete: 'off', spellcheck: 'false', disabled: !isNew });
  const provSelect = h('select', { disabled: readOnly },
    h('option', { value: '' }, 'choose a provider'),
    provs.map((p) => h('option', { value: p.name, selected: prov === p }, p.name)),
    !prov && state.provider ? h('option', { value: state.provider, selected: true }, state.provider) : null);
  const descInput = h('input', { type: 'text', value: state.description, autocomplete: 'off', disabled: readOnly });

  const options = { ...state.options };
  const params = [];
  let paramSet = null;
  let free = null;
  let headers = null;
  if (prov) {
    const fields = (prov.parameters || prov.params || []).map((p) => {
      const c = paramControl(p, takeOption(options, p), readOnly);
      params.push({ p, read: c.read });
      return form.field(p.name, p.name, c.control, { hint: p.description, required: p.required, id: c.control.id, el: c.el });
    });
    paramSet = h('fieldset', { id: 'params' }, h('legend', {}, `Parameters of ${prov.name}`),
      prov.description ? h('p', { class: 'hint' }, prov.description) : null, fields);
    const rest = Object.entries(options);
    if (prov.free_options) {
      free = new Rows(form, { id: 'free-options', legend: 'Other options', noun: 'option', entries: rest, disabled: readOnly,
        hint: 'Sent along to the gateway as request parameters; {phone} and {otp} are replaced.' });
    } else if (rest.length) {
      // Options this provider does not know: keep them visible so that saving reports them.
      free = new Rows(form, { id: 'free-options', legend: 'Options the provider does not know', noun: 'option', entries: rest, disabled: readOnly });
    }
    if (prov.headers || Object.keys(state.headers).length) {
      headers = new Rows(form, { id: 'headers', legend: 'HTTP headers', noun: 'header', entries: Object.entries(state.headers), disabled: readOnly });
    }
  }

  const read = () => {
    const opts = {};
    for (const { p, read: r } of params) {
      const v = r();
      if (v !== undefined) opts[p.name] = v;
    }
    Object.assign(opts, free ? free.read() : {});
    const body = { provider: provSelect.value, options: opts };
    if (descInput.value !== '') body.description = descInput.value;
    if (headers) body.headers = headers.read();
    return body;
  };

  provSelect.addEventListener('change', () => {
    const b = read();
    draw(main, provs, { id: idInput.value, provider: b.provider, description: descInput.value, options: b.options, headers: b.headers || {} }, isNew, readOnly);
    document.getElementById('gw-provider').focus();
  });

  const title = isNew ? 'New gateway' : `Gateway ${state.id}`;
  const save = h('button', { type: 'submit', id: 'save' }, 'Save');
  const el = h('form', { id: 'gateway-form', novalidate: true, 'aria-labelledby': 'form-title' },
    form.summary,
    form.field('id', 'Identifier', idInput, { required: true, id: 'gw-id', hint: isNew ? 'Letters, digits, - and _; used in routes and in the API.' : null }),
    form.field('provider', 'Provider', provSelect, { required: true, id: 'gw-provider' }),
    form.field('description', 'Description', descInput, { id: 'gw-description' }),
    paramSet, free ? free.el : null, headers ? headers.el : null,
    readOnly ? null : h('div', { class: 'actions' }, save, h('a', { href: '#/gateways', class: 'button secondary' }, 'Cancel')));

  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    const gid = idInput.value.trim();
    const body = read();
    const local = [];
    if (!gid) local.push({ key: 'id', message: 'Give the gateway an identifier.' });
    if (!body.provider) local.push({ key: 'provider', message: 'Choose a provider.' });
    if (local.length) return form.showProblems(local);
    save.disabled = true;
    try {
      if (isNew) {
        const { status } = await api('GET', `/v1/gateways/${seg(gid)}`, undefined, { accept: [404] });
        if (status !== 404) return form.showProblems([{ key: 'id', message: `A gateway named ${gid} exists already.` }]);
      }
      await api('PUT', `/v1/gateways/${seg(gid)}`, body);
      flash(`Gateway ${gid} saved.`);
      location.hash = `#/gateways/${seg(gid)}`;
      if (!isNew) await gatewayForm(main, gid);
    } catch (err) {
      showSaveError(form, err);
    } finally {
      save.disabled = false;
    }
  });

  fill(main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/gateways' }, 'Gateways'), ' / ', isNew ? 'new' : state.id),
    h('h1', { id: 'form-title', tabindex: '-1' }, title),
    readOnly ? h('p', { class: 'notice info', id: 'read-only' }, 'This gateway is defined in the configuration file: it is read-only here. Change it in the file and reload the service (SIGHUP).') : null,
    el,
    isNew ? null : h('section', { class: 'more', 'aria-label': 'More actions' },
      h('a', { class: 'button secondary', href: `#/test/gateway/${seg(state.id)}`, id: 'test-link' }, 'Send a test SMS'),
      readOnly ? null : deleteControl('gateway', state.id)));
}

function showSaveError(form, err) {
  if (!(err instanceof ApiError)) return form.showError(String(err));
  if (err.status === 422) {
    const probs = err.problems.length ? err.problems : [{ key: null, message: err.message }];
    return form.showProblems(probs);
  }
  if (err.status === 409) return form.showError(err.problem.detail || 'This entry is defined in the configuration file and cannot be changed here.');
  form.showError(`${err.status ? `${err.status}: ` : ''}${err.message}`);
}
export { showSaveError };

/** A Delete button that asks on the page itself (no dialog), then deletes and goes to the list. */
export function deleteControl(kind, name) {
  const plural = `${kind}s`;
  const box = h('div', { class: 'delete' });
  const ask = h('button', { type: 'button', class: 'danger', id: 'delete' }, `Delete ${kind}`);
  ask.addEventListener('click', () => {
    const yes = h('button', { type: 'button', class: 'danger', id: 'delete-confirm' }, `Yes, delete ${name}`);
    const no = h('button', { type: 'button', class: 'secondary', id: 'delete-cancel' }, 'Keep it');
    const q = h('div', { role: 'group', 'aria-label': 'Confirm deletion' }, h('p', {}, `Delete ${kind} ${name}? This cannot be undone.`), yes, ' ', no);
    no.addEventListener('click', () => { fill(box, ask); ask.focus(); });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      try {
        await api('DELETE', `/v1/${plural}/${seg(name)}`);
        flash(`${kind[0].toUpperCase()}${kind.slice(1)} ${name} deleted.`);
        location.hash = `#/${plural}`;
      } catch (err) {
        fill(box, ask, errorBox(err.status === 409 ? (err.problem.detail || 'Defined in the configuration file: it cannot be deleted here.') : err.message));
      }
    });
    fill(box, q);
    yes.focus();
  });
  box.append(ask);
  return box;
}

