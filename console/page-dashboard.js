// Dashboard (`GET /api/stats?days=14`): messages per day by channel and state, delivery and
// failure rates per channel, the queue's backlog, and each running experiment's arms.

import { get } from './api.js';
import { h } from './dom.js';
import { colour, intervalPlot, legend, stackByDay, stackedBars } from './charts.js';
import { fmtAge, fmtDay, fmtNumber, fmtPercent, fmtPoints, t } from './i18n.js';

const STATES = ['delivered', 'sent', 'sending', 'queued', 'scheduled', 'deferred', 'failed', 'dead', 'skipped', 'cancelled'];

export async function dashboardPage(el) {
  const stats = await get('/api/stats?days=14');
  el.append(h('h1', {}, t('dash.title')));
  const rows = stats.days || [];
  const channels = [...new Set([...rows.map((r) => r.channel), ...Object.keys(stats.channels || {})])].sort();
  el.append(h('section', { class: 'grid two', 'aria-labelledby': 'backlog-h' },
    backlog(stats.backlog || {}),
    rates(stats.channels || {})));
  const charts = h('section', { 'aria-labelledby': 'perday-h' }, h('h2', { id: 'perday-h' }, t('dash.per_day')));
  if (!rows.length) charts.append(h('p', { class: 'empty' }, t('dash.no_messages')));
  const stateNames = [...new Set(rows.map((r) => r.state))].sort((a, b) => rank(a) - rank(b));
  const allDays = rows.length ? daysOf(rows) : [];
  if (rows.length) {
    charts.append(h('ul', { class: 'legend' }, legend(stateNames, (n) => t(`state.${n}`)).map((l) =>
      h('li', {}, h('span', { class: 'swatch', 'data-colour': l.colour, 'aria-hidden': 'true' }), l.label))));
  }
  const grid = h('div', { class: 'grid two' });
  for (const channel of channels) {
    const mine = rows.filter((r) => r.channel === channel);
    if (!mine.length) continue;
    const stacks = stackByDay(mine, (r) => r.state, allDays, stateNames);
    const title = t('dash.chart_title', { channel: t(`channel.${channel}`) });
    grid.append(h('figure', { class: 'card', 'data-testid': `chart-${channel}` },
      h('figcaption', {}, title),
      stackedBars(stacks, { label: fmtDay, fmt: fmtNumber, title })));
  }
  charts.append(grid);
  el.append(charts);
  el.append(experiments(stats.experiments || []));
  paintSwatches(el);
}

function rank(state) {
  const i = STATES.indexOf(state);
  return i < 0 ? STATES.length : i;
}

function daysOf(rows) {
  const days = rows.map((r) => r.day).sort();
  const out = [];
  const d = new Date(`${days[0]}T00:00:00Z`);
  const end = new Date(`${days[days.length - 1]}T00:00:00Z`);
  while (d <= end) {
    out.push(d.toISOString().slice(0, 10));
    d.setUTCDate(d.getUTCDate() + 1);
  }
  return out;
}

/** Legend swatches take their colour from a data attribute (no inline style in markup). */
export function paintSwatches(root) {
  for (const sw of root.querySelectorAll('.swatch[data-colour]')) sw.style.backgroundColor = sw.dataset.colour;
}

function backlog(b) {
  const age = fmtAge(b.oldest_due_seconds);
  return h('div', { class: 'card', 'data-testid': 'backlog' },
    h('h2', { id: 'backlog-h' }, t('dash.backlog')),
    h('dl', { class: 'figures' },
      h('div', {}, h('dt', {}, t('dash.due')), h('dd', {}, fmtNumber(b.due ?? 0))),
      h('div', {}, h('dt', {}, t('dash.scheduled')), h('dd', {}, fmtNumber(b.scheduled ?? 0))),
      h('div', {}, h('dt', {}, t('dash.oldest_due')), h('dd', {}, age ?? t('dash.none')))));
}

function rates(channels) {
  const names = Object.keys(channels).sort();
  return h('div', { class: 'card' },
    h('h2', {}, t('dash.rates')),
    names.length
      ? h('table', { 'data-testid': 'rates' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, t('dash.channel')),
          h('th', { scope: 'col', class: 'num' }, t('state.sent')),
          h('th', { scope: 'col', class: 'num' }, t('state.delivered')),
          h('th', { scope: 'col', class: 'num' }, t('state.failed')),
          h('th', { scope: 'col', class: 'num' }, t('dash.delivery_rate')),
          h('th', { scope: 'col', class: 'num' }, t('dash.failure_rate')))),
        h('tbody', {}, names.map((n) => {
          const c = channels[n];
          return h('tr', {},
            h('th', { scope: 'row' }, t(`channel.${n}`)),
            h('td', { class: 'num' }, fmtNumber(c.sent ?? 0)),
            h('td', { class: 'num' }, fmtNumber(c.delivered ?? 0)),
            h('td', { class: 'num' }, fmtNumber(c.failed ?? 0)),
            h('td', { class: 'num' }, c.delivery_rate == null ? '–' : fmtPercent(c.delivery_rate)),
            h('td', { class: 'num' }, c.failure_rate == null ? '–' : fmtPercent(c.failure_rate)));
        })))
      : h('p', { class: 'empty' }, t('dash.no_messages')));
}

function experiments(reports) {
  const section = h('section', { 'aria-labelledby': 'exp-h' }, h('h2', { id: 'exp-h' }, t('dash.experiments')));
  if (!reports.length) {
    section.append(h('p', { class: 'empty' }, t('dash.no_experiments')));
    return section;
  }
  for (const r of reports) {
    const arms = r.arms || [];
    section.append(h('article', { class: 'card', 'data-testid': `experiment-${r.rule}` },
      h('h3', {}, t('dash.experiment_title', { rule: r.rule, experiment: r.experiment || '' })),
      h('p', { class: 'hint' }, t('dash.experiment_hint', { events: (r.conversion_events || []).join(', '), window: r.window || '' })),
      h('div', { class: 'scroll' }, h('table', {},
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, t('dash.arm')),
          h('th', { scope: 'col', class: 'num' }, t('dash.eligible')),
          h('th', { scope: 'col', class: 'num' }, t('state.sent')),
          h('th', { scope: 'col', class: 'num' }, t('dash.converted')),
          h('th', { scope: 'col', class: 'num' }, t('dash.conversion_rate')),
          h('th', { scope: 'col', class: 'num' }, t('dash.uplift')),
          h('th', { scope: 'col' }, t('dash.interval')))),
        h('tbody', {}, arms.map((a) => h('tr', {},
          h('th', { scope: 'row' }, a.arm === 'holdout' ? t('dash.holdout') : a.arm),
          h('td', { class: 'num' }, fmtNumber(a.eligible ?? 0)),
          h('td', { class: 'num' }, fmtNumber(a.sent ?? 0)),
          h('td', { class: 'num' }, fmtNumber(a.converted ?? 0)),
          h('td', { class: 'num' }, rateOf(a) == null ? '–' : fmtPercent(rateOf(a))),
          h('td', { class: 'num' }, a.uplift ? fmtPoints(a.uplift.absolute) : '–'),
          h('td', {}, a.uplift ? t('dash.ci', { low: fmtPoints(a.uplift.low), high: fmtPoints(a.uplift.high) }) : '–')))))),
      arms.some((a) => a.uplift)
        ? h('figure', {}, intervalPlot(arms, { fmt: fmtPoints, title: t('dash.interval_title') }),
          h('figcaption', { class: 'hint' }, t('dash.interval_caption')))
        : h('p', { class: 'hint' }, t('dash.no_uplift'))));
  }
  return section;
}

/** An arm's conversion rate, under either name the report has used. */
function rateOf(a) {
  return a.conversion_rate ?? a.rate ?? null;
}

export { colour };
