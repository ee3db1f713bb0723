// Rules and journeys: the list with where each comes from and an enabled switch; a form that
// edits the schedule (`send_at`, `offset_days`, `days`) and audience (`segments`) and PUTs the
// whole definition back with If-Match, showing the API's 422 field problems beside the fields;
// and the forecast of the next seven days.

import { api, get, post } from './api.js';
import { h, mount } from './dom.js';
import { stackByDay, stackedBars, legend } from './charts.js';
import { applyScheduleForm, fieldProblems } from './text.js';
import { fmtDateTime, fmtDay, fmtNumber, t } from './i18n.js';
import { paintSwatches } from './page-dashboard.js';

const KINDS = ['rules', 'journeys'];
const SEGMENTS = ['new', 'active', 'high_value', 'at_risk', 'lapsed'];

function path(kind, id, rest = '') {
  return `/api/${kind}/${encodeURIComponent(id)}${rest}`;
}

export async function rulesPage(el, ctx) {
  const [rules, journeys] = await Promise.all(KINDS.map((k) => get(`/api/${k}`)));
  el.append(h('h1', {}, t('rules.title')));
  for (const [kind, list] of [['rules', rules.rules || []], ['journeys', journeys.journeys || []]]) {
    el.append(h('section', { 'aria-labelledby': `${kind}-h` },
      h('h2', { id: `${kind}-h` }, t(`rules.${kind}`)),
      list.length ? h('div', { class: 'scroll' }, h('table', { 'data-testid': `${kind}-table` },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, t('rules.id')),
          h('th', { scope: 'col' }, t('rules.trigger')),
          h('th', { scope: 'col' }, t('rules.source')),
          h('th', { scope: 'col' }, t('rules.version')),
          h('th', { scope: 'col' }, t('rules.updated')),
          h('th', { scope: 'col' }, t('rules.enabled')),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, t('tpl.actions'))))),
        h('tbody', {}, list.map((d) => row(kind, d, ctx))))) : h('p', { class: 'empty' }, t('rules.none'))));
  }
}

function row(kind, d, ctx) {
  const toggle = h('input', {
    type: 'checkbox', role: 'switch', checked: d.enabled, id: `en-${kind}-${d.id}`,
    'data-testid': `enabled-${d.id}`, 'aria-label': t('rules.enabled_of', { id: d.id }),
  });
  toggle.addEventListener('change', async () => {
    const on = toggle.checked;
    toggle.disabled = true;
    try {
      const r = await post(path(kind, d.id, on ? '/enable' : '/disable'));
      ctx.toast(on ? t('rules.enabled_ok', { id: d.id }) : t('rules.disabled_ok', { id: d.id, cancelled: fmtNumber(r?.cancelled ?? 0) }));
    } catch (e) {
      toggle.checked = !on;
      ctx.toast(e.message, 'error');
    } finally {
      toggle.disabled = false;
    }
  });
  const def = d.definition || {};
  return h('tr', {},
    h('th', { scope: 'row' }, d.id),
    h('td', {}, def.trigger || ''),
    h('td', {}, t(`source.${d.source}`), d.overrides_config ? ` ${t('rules.overrides')}` : ''),
    h('td', {}, d.version ?? '–'),
    h('td', {}, d.updated_at ? `${fmtDateTime(d.updated_at)} · ${d.updated_by || ''}` : '–'),
    h('td', {}, toggle),
    h('td', { class: 'links' },
      h('a', { href: `#/${kind}/${encodeURIComponent(d.id)}`, 'data-testid': `edit-${d.id}` }, t('rules.edit')), ' ',
      h('a', { href: `#/${kind}/${encodeURIComponent(d.id)}/forecast`, 'data-testid': `forecast-${d.id}` }, t('rules.forecast'))));
}

export async function ruleEditPage(el, ctx, kind, id) {
  const r = await api('GET', path(kind, id));
  let etag = r.headers.get('ETag');
  let d = r.data;
  const def = d.definition || {};
  const general = h('div', { class: 'problems', role: 'alert', 'data-testid': 'form-errors', hidden: true });
  const errs = {};
  const field = (name, input, hint) => {
    errs[name] = h('p', { class: 'field-error', id: `err-${name}`, 'data-testid': `error-${name}`, hidden: true });
    input.setAttribute('aria-describedby', `err-${name}${hint ? ` hint-${name}` : ''}`);
    return h('div', { class: 'field' }, h('label', { for: input.id }, t(`rules.f.${name}`)), input,
      hint ? h('p', { class: 'hint', id: `hint-${name}` }, hint) : null, errs[name]);
  };
  const sendAt = h('input', { id: 'f-send_at', name: 'send_at', value: def.send_at ?? '', placeholder: '09:30', 'data-testid': 'f-send_at', autocomplete: 'off' });
  const offset = h('input', { id: 'f-offset_days', name: 'offset_days', type: 'number', min: -366, max: 366, step: 1, value: def.offset_days ?? '', 'data-testid': 'f-offset_days' });
  const days = h('input', { id: 'f-days', name: 'days', type: 'number', min: 1, step: 1, value: def.days ?? '', 'data-testid': 'f-days' });
  const chosen = new Set(def.segments || []);
  const segs = [...new Set([...SEGMENTS, ...chosen])].map((s) => h('input', { type: 'checkbox', id: `seg-${s}`, value: s, checked: chosen.has(s), 'data-testid': `seg-${s}` }));
  errs.segments = h('p', { class: 'field-error', id: 'err-segments', 'data-testid': 'error-segments', hidden: true });
  const save = h('button', { type: 'submit', class: 'primary', 'data-testid': 'save-rule' }, t('rules.save'));
  const form = h('form', { class: 'card', 'data-testid': 'rule-form', novalidate: true },
    h('h2', {}, t('rules.schedule')),
    field('send_at', sendAt, t('rules.hint.send_at')),
    field('offset_days', offset, t('rules.hint.offset_days')),
    field('days', days, t('rules.hint.days')),
    h('fieldset', { 'aria-describedby': 'err-segments hint-segments' },
      h('legend', {}, t('rules.f.segments')),
      h('p', { class: 'hint', id: 'hint-segments' }, t('rules.hint.segments')),
      segs.map((cb) => h('label', { class: 'check' }, cb, ' ', t(`segment.${cb.value}`))),
      errs.segments),
    general,
    h('div', { class: 'actions' }, save));
  const json = h('pre', { class: 'json', 'data-testid': 'definition-json' });
  const meta = h('p', { class: 'status' });
  const drawMeta = () => {
    mount(meta, t(`source.${d.source}`), ' · ', t('rules.version_is', { version: d.version ?? '–' }), ' · ',
      d.enabled ? t('rules.on') : t('rules.off'));
    mount(json, JSON.stringify(d.definition, null, 2));
  };
  drawMeta();
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    for (const p of Object.values(errs)) p.hidden = true;
    for (const i of form.querySelectorAll('[aria-invalid]')) i.removeAttribute('aria-invalid');
    general.hidden = true;
    const body = applyScheduleForm(d.definition || {}, {
      send_at: sendAt.value, offset_days: offset.value, days: days.value,
      segments: segs.filter((c) => c.checked).map((c) => c.value),
    });
    save.disabled = true;
    try {
      const res = await api('PUT', path(kind, id), body, etag ? { 'If-Match': etag } : {});
      etag = res.headers.get('ETag') || etag;
      if (res.data?.definition) d = res.data.definition;
      drawMeta();
      ctx.toast(t('rules.saved', { id }));
    } catch (err) {
      if (err.status === 409) {
        mount(general, h('p', {}, t('rules.conflict')), h('button', { type: 'button', onclick: () => ctx.go(location.hash) }, t('rules.reload')));
        general.hidden = false;
      } else {
        const by = fieldProblems(err);
        const rest = [];
        for (const [f, problems] of Object.entries(by)) {
          if (errs[f]) {
            mount(errs[f], problems.join('; '));
            errs[f].hidden = false;
            form.querySelector(`#f-${f}`)?.setAttribute('aria-invalid', 'true');
          } else if (!f.includes('.') && !f.includes('[')) rest.push(...problems.map((p) => (f ? `${f}: ${p}` : p)));
          else if (!errs[f.split(/[.[]/)[0]]) rest.push(...problems.map((p) => `${f}: ${p}`));
        }
        if (rest.length) {
          mount(general, h('ul', {}, rest.map((p) => h('li', {}, p))));
          general.hidden = false;
        }
      }
    } finally {
      save.disabled = false;
    }
  });
  el.append(
    h('p', {}, h('a', { href: '#/rules' }, t('rules.back'))),
    h('h1', {}, t(`rules.edit_${kind}`, { id })),
    meta,
    h('p', {}, h('a', { href: `#/${kind}/${encodeURIComponent(id)}/forecast` }, t('rules.forecast'))),
    form,
    h('details', { class: 'card' }, h('summary', {}, t('rules.definition')), json));
}

export async function forecastPage(el, ctx, kind, id) {
  const rows = await get(path(kind, id, '/forecast?days=7'));
  const list = Array.isArray(rows) ? rows : rows?.items || rows?.rows || [];
  el.append(
    h('p', {}, h('a', { href: '#/rules' }, t('rules.back'))),
    h('h1', {}, t('forecast.title', { id })),
    h('p', { class: 'hint' }, t('forecast.hint')));
  const channels = [...new Set(list.map((r) => r.channel))].sort();
  if (list.length) {
    const stacks = stackByDay(list.map((r) => ({ ...r, count: r.messages })), (r) => r.channel, null, channels);
    el.append(h('figure', { class: 'card', 'data-testid': 'forecast-chart' },
      h('figcaption', {}, t('forecast.chart')),
      h('ul', { class: 'legend' }, legend(channels, (c) => t(`channel.${c}`)).map((l) =>
        h('li', {}, h('span', { class: 'swatch', 'data-colour': l.colour, 'aria-hidden': 'true' }), l.label))),
      stackedBars(stacks, { width: 960, height: 240, label: fmtDay, fmt: fmtNumber, title: t('forecast.chart') })));
  }
  el.append(h('div', { class: 'scroll' }, h('table', { 'data-testid': 'forecast-table' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('forecast.day')),
      h('th', { scope: 'col' }, t('dash.channel')),
      h('th', { scope: 'col' }, t('forecast.occasion')),
      h('th', { scope: 'col', class: 'num' }, t('forecast.messages')),
      h('th', { scope: 'col', class: 'num' }, t('forecast.skipped')),
      h('th', { scope: 'col' }, t('forecast.sample')))),
    h('tbody', {}, list.length
      ? list.map((r) => h('tr', {},
        h('td', {}, fmtDay(r.day, true)),
        h('td', {}, t(`channel.${r.channel}`)),
        h('td', {}, r.occasion || ''),
        h('td', { class: 'num' }, fmtNumber(r.messages ?? 0)),
        h('td', { class: 'num' }, fmtNumber(r.skipped ?? 0)),
        h('td', {}, (r.sample || []).flatMap((m, i) => [i ? ', ' : '', h('a', { href: `#/members/${encodeURIComponent(m)}` }, m)]))))
      : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, t('forecast.none')))))));
  paintSwatches(el);
}
