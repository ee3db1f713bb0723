// Members, for support staff: search, then one member's profile, consent (current and every
// change), and every message with its state, what was rendered, and its delivery history.

import { get, itemsOf, query } from './api.js';
import { h, mount } from './dom.js';
import { fmtDate, fmtDateTime, fmtNumber, t } from './i18n.js';

export async function membersPage(el, ctx) {
  const q = h('input', { id: 'm-q', type: 'search', name: 'q', 'data-testid': 'member-search', autocomplete: 'off' });
  const results = h('div', { 'data-testid': 'member-results', 'aria-live': 'polite' });
  const form = h('form', { class: 'inline', role: 'search' },
    h('label', { for: 'm-q' }, t('members.search')), q,
    h('button', { type: 'submit', 'data-testid': 'member-search-submit' }, t('members.find')));
  let rows = [];
  async function search(cursor) {
    const text = q.value.trim();
    let page;
    try {
      page = itemsOf(await get(`/api/members${query({ q: text, limit: 50, cursor })}`));
    } catch (e) {
      // A daemon without member search still finds one member by their exact id.
      if (!text || (e.status !== 405 && e.status !== 404)) throw e;
      try {
        page = { items: [await get(`/api/members/${encodeURIComponent(text)}`)], next: null };
      } catch {
        page = { items: [], next: null };
      }
    }
    rows = cursor ? rows.concat(page.items) : page.items;
    mount(results, rows.length
      ? h('div', { class: 'scroll' }, h('table', {},
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, t('members.id')),
          h('th', { scope: 'col' }, t('members.name')),
          h('th', { scope: 'col' }, t('members.phone')),
          h('th', { scope: 'col' }, t('members.email')),
          h('th', { scope: 'col' }, t('members.tier')))),
        h('tbody', {}, rows.map((m) => h('tr', {},
          h('th', { scope: 'row' }, h('a', { href: `#/members/${encodeURIComponent(m.external_id)}` }, m.external_id)),
          h('td', {}, m.name || ''),
          h('td', {}, m.phone || ''),
          h('td', {}, m.email || ''),
          h('td', {}, m.tier || ''))))))
      : h('p', { class: 'empty' }, t('members.none')),
    page.next ? h('button', { type: 'button', 'data-testid': 'more', onclick: () => search(page.next).catch((e) => ctx.toast(e.message, 'error')) }, t('app.more')) : null);
  }
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    search().catch((err) => mount(results, h('p', { class: 'error', role: 'alert' }, err.message)));
  });
  el.append(h('h1', {}, t('members.title')), form, results);
  search().catch(() => mount(results, h('p', { class: 'hint' }, t('members.type_to_search'))));
}

export async function memberPage(el, ctx, id) {
  const enc = encodeURIComponent(id);
  const [m, consent, messages] = await Promise.all([
    get(`/api/members/${enc}`),
    get(`/api/members/${enc}/consent`).catch(() => null),
    get(`/api/messages${query({ member: id, limit: 200 })}`).then(itemsOf).catch(() => ({ items: [], next: null })),
  ]);
  el.append(
    h('p', {}, h('a', { href: '#/members' }, t('members.back'))),
    h('h1', {}, t('members.member_title', { name: m.name || m.external_id, id: m.external_id })),
    profile(m),
    consentSection(consent),
    messagesSection(messages.items));
}

function profile(m) {
  const rows = [
    ['members.id', m.external_id], ['members.name', m.name], ['members.phone', m.phone], ['members.email', m.email],
    ['members.locale', m.locale], ['members.time_zone', m.time_zone], ['members.birth_date', m.birth_date && fmtDate(m.birth_date)],
    ['members.lunar_birthday', m.lunar_birthday && JSON.stringify(m.lunar_birthday)], ['members.member_since', m.member_since && fmtDate(m.member_since)],
    ['members.tier', m.tier], ['members.points', fmtNumber(m.points ?? 0)],
    ['members.last_activity', m.last_activity_at && fmtDateTime(m.last_activity_at)],
  ];
  const attrs = Object.entries(m.attributes || {});
  return h('section', { class: 'card', 'aria-labelledby': 'profile-h', 'data-testid': 'member-profile' },
    h('h2', { id: 'profile-h' }, t('members.profile')),
    h('dl', { class: 'pairs' }, rows.filter(([, v]) => v !== null && v !== undefined && v !== '').map(([k, v]) =>
      h('div', {}, h('dt', {}, t(k)), h('dd', {}, String(v)))),
    attrs.map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, typeof v === 'string' ? v : JSON.stringify(v))))));
}

function consentRow(c, withTime = true) {
  return h('tr', {},
    h('td', {}, t(`channel.${c.channel}`)),
    h('td', {}, t(`purpose.${c.purpose}`)),
    h('td', {}, h('span', { class: c.granted ? 'badge ok' : 'badge bad' }, c.granted ? t('consent.granted') : t('consent.revoked'))),
    h('td', {}, c.source || ''),
    h('td', {}, c.actor || ''),
    withTime ? h('td', {}, fmtDateTime(c.at)) : null);
}

function consentSection(consent) {
  const head = () => h('thead', {}, h('tr', {},
    h('th', { scope: 'col' }, t('dash.channel')), h('th', { scope: 'col' }, t('consent.purpose')),
    h('th', { scope: 'col' }, t('consent.status')), h('th', { scope: 'col' }, t('consent.source')),
    h('th', { scope: 'col' }, t('consent.actor')), h('th', { scope: 'col' }, t('consent.at'))));
  const current = consent?.consent || [];
  const history = consent?.history || [];
  return h('section', { class: 'card', 'aria-labelledby': 'consent-h', 'data-testid': 'member-consent' },
    h('h2', { id: 'consent-h' }, t('consent.title')),
    current.length ? h('div', { class: 'scroll' }, h('table', {}, head(), h('tbody', {}, current.map((c) => consentRow(c)))))
      : h('p', { class: 'empty' }, t('consent.none')),
    h('h3', {}, t('consent.history')),
    history.length ? h('div', { class: 'scroll' }, h('table', {}, head(), h('tbody', {}, history.map((c) => consentRow(c)))))
      : h('p', { class: 'empty' }, t('consent.no_history')));
}

function renderedText(r) {
  if (!r) return null;
  switch (r.channel) {
    case 'sms': return h('p', { class: 'bubble' }, r.text);
    case 'email': return h('div', {}, h('p', {}, h('strong', {}, r.subject)), h('pre', {}, r.text));
    case 'push': return h('div', { class: 'push' }, h('strong', {}, r.title), h('p', {}, r.body));
    default: return h('pre', {}, JSON.stringify(r, null, 2));
  }
}

function messagesSection(items) {
  return h('section', { class: 'card', 'aria-labelledby': 'msgs-h', 'data-testid': 'member-messages' },
    h('h2', { id: 'msgs-h' }, t('messages.title')),
    items.length ? h('ul', { class: 'messages' }, items.map((msg) => {
      const hist = h('div', { class: 'history' });
      const details = h('details', { 'data-testid': `message-${msg.id}` },
        h('summary', {},
          h('span', { class: `badge state-${msg.state}` }, t(`state.${msg.state}`)), ' ',
          t(`channel.${msg.channel}`), ' · ', msg.rule_id, ' · ', fmtDateTime(msg.sent_at || msg.run_at),
          msg.reason ? ` · ${msg.reason}` : ''),
        h('dl', { class: 'pairs' },
          h('div', {}, h('dt', {}, t('messages.occurrence')), h('dd', {}, msg.occurrence || '')),
          h('div', {}, h('dt', {}, t('messages.attempts')), h('dd', {}, fmtNumber(msg.attempts ?? 0))),
          msg.provider ? h('div', {}, h('dt', {}, t('messages.provider')), h('dd', {}, `${msg.provider}${msg.provider_id ? ` · ${msg.provider_id}` : ''}`)) : null,
          msg.experiment ? h('div', {}, h('dt', {}, t('messages.experiment')), h('dd', {}, `${msg.experiment} · ${msg.variant || ''}`)) : null),
        msg.rendered ? renderedText(msg.rendered) : h('p', { class: 'hint' }, t('messages.not_rendered')),
        hist);
      details.addEventListener('toggle', async () => {
        if (!details.open || hist.dataset.loaded) return;
        hist.dataset.loaded = '1';
        let entries;
        try {
          const one = await get(`/api/messages/${msg.id}`);
          entries = one.history || [];
          if (!msg.rendered && one.rendered) hist.before(renderedText(one.rendered));
        } catch {
          try {
            entries = await get(`/api/messages/${msg.id}/history`);
          } catch (e) {
            mount(hist, h('p', { class: 'error' }, e.message));
            return;
          }
        }
        mount(hist, h('h3', {}, t('messages.history')), h('ol', {}, (entries || []).map((e) =>
          h('li', {}, fmtDateTime(e.at), ' · ', t(`state.${e.state}`), e.detail ? ` · ${e.detail}` : ''))));
      });
      return h('li', {}, details);
    })) : h('p', { class: 'empty' }, t('messages.none')));
}
