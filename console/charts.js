// Hand-written SVG charts: a stacked bar chart (messages per day, stacked by state or channel)
// and an interval plot (each experiment arm's uplift with its 95% interval). The geometry is
// pure and tested (console/tests/helpers.test.mjs); `stackedBars` and `intervalPlot` turn it
// into SVG elements.

import { s } from './dom.js';

/** The smallest "nice" number (1, 2, 2.5, 5 × 10ⁿ) at or above `max`, for an axis's top. */
export function niceMax(max) {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= max) return m * p;
  return 10 * p;
}

/** Ticks at a nice step (1, 2, 2.5, 5 × 10ⁿ) inside [lo, hi], about `n` intervals apart. */
export function niceTicks(lo, hi, n = 4) {
  const step = niceMax((hi - lo) / n);
  const out = [];
  // Rounded to the step's own precision, so 0.1 + 0.2 shows as 0.3.
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 2);
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(digits)) + 0);
  return out;
}

/** Evenly spaced ticks from 0 to `top` (inclusive), `n` intervals. */
export function ticks(top, n = 4) {
  return Array.from({ length: n + 1 }, (_, i) => (top * i) / n);
}

/** A linear scale from [d0, d1] to [r0, r1]. */
export function scale(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  return (v) => r0 + ((v - d0) / span) * (r1 - r0);
}

/** Every day from `first` to `last` (YYYY-MM-DD, inclusive). */
export function dayRange(first, last) {
  const out = [];
  const d = new Date(`${first}T00:00:00Z`);
  const end = new Date(`${last}T00:00:00Z`);
  while (d <= end && out.length < 400) {
    out.push(d.toISOString().slice(0, 10));
    d.setUTCDate(d.getUTCDate() + 1);
  }
  return out;
}

/**
 * Rows (`{day, count}` plus the series field) stacked per day: for each day of `days` (every
 * day between the first and last row when not given), its total and one segment per series
 * value in `series` order with its `y0`..`y1`. Days without rows are kept, empty.
 */
export function stackByDay(rows, seriesOf, days, series) {
  const names = series || [...new Set(rows.map(seriesOf))].sort();
  const allDays = days || (rows.length ? dayRange(rows.reduce((a, r) => (r.day < a ? r.day : a), rows[0].day),
    rows.reduce((a, r) => (r.day > a ? r.day : a), rows[0].day)) : []);
  const counts = new Map();
  for (const r of rows) {
    const key = `${r.day}\u0000${seriesOf(r)}`;
    counts.set(key, (counts.get(key) || 0) + (Number(r.count ?? r.messages) || 0));
  }
  return allDays.map((day) => {
    let y = 0;
    const segments = [];
    for (const name of names) {
      const n = counts.get(`${day}\u0000${name}`) || 0;
      if (n > 0) segments.push({ series: name, count: n, y0: y, y1: y + n });
      y += n;
    }
    return { day, total: y, segments };
  });
}

/**
 * The rectangles of a stacked bar chart `width`×`height` (plot area inside `margin`): one per
 * non-empty segment, with the axis top and its ticks.
 */
export function stackLayout(stacks, { width, height, margin = { top: 10, right: 10, bottom: 28, left: 40 } }) {
  // Counts: a whole, nice step (about four of them) and the top on a step.
  const max = Math.max(0, ...stacks.map((d) => d.total));
  const step = Math.max(1, niceMax(max / 4));
  const top = Math.max(step, Math.ceil(max / step) * step);
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;
  const band = stacks.length ? plotW / stacks.length : plotW;
  const barW = Math.max(1, band * 0.7);
  const y = scale(0, top, margin.top + plotH, margin.top);
  const rects = [];
  stacks.forEach((d, i) => {
    const x = margin.left + i * band + (band - barW) / 2;
    for (const seg of d.segments) {
      rects.push({ day: d.day, series: seg.series, count: seg.count, x, width: barW, y: y(seg.y1), height: y(seg.y0) - y(seg.y1) });
    }
  });
  return { top, ticks: ticks(top, Math.round(top / step)).map((v) => ({ value: v, y: y(v) })), rects, band, margin, plotH, plotW };
}

/**
 * An interval plot's geometry: one row per arm with an uplift (`{arm, uplift: {absolute, low,
 * high}}`); the x scale spans every interval and zero.
 */
export function intervalLayout(arms, { width, rowHeight = 28, margin = { top: 8, right: 40, bottom: 24, left: 96 } }) {
  const withUplift = arms.filter((a) => a.uplift && Number.isFinite(a.uplift.low) && Number.isFinite(a.uplift.high));
  let lo = Math.min(0, ...withUplift.map((a) => a.uplift.low));
  let hi = Math.max(0, ...withUplift.map((a) => a.uplift.high));
  if (lo === hi) {
    lo -= 0.01;
    hi += 0.01;
  }
  const pad = (hi - lo) * 0.05;
  lo -= pad;
  hi += pad;
  const x = scale(lo, hi, margin.left, width - margin.right);
  const rows = withUplift.map((a, i) => {
    const cy = margin.top + i * rowHeight + rowHeight / 2;
    return {
      arm: a.arm, cy,
      x: x(a.uplift.absolute), x0: x(a.uplift.low), x1: x(a.uplift.high),
      // An interval that excludes zero: the arm did differ from the holdout.
      significant: a.uplift.low > 0 || a.uplift.high < 0,
    };
  });
  return { rows, zero: x(0), domain: [lo, hi], height: margin.top + rows.length * rowHeight + margin.bottom, margin };
}

/** A stable colour per series name: states and channels have their own, others by hash. */
export function colour(name) {
  const known = {
    sent: '#3b7dd8', delivered: '#2e9e5b', failed: '#d64541', dead: '#8e2a27', skipped: '#a0a0a0',
    queued: '#e0a030', scheduled: '#e8c468', sending: '#7b61c9', deferred: '#c98f3e', cancelled: '#6d6d6d',
    sms: '#3b7dd8', email: '#2e9e5b', push: '#b5462a', webhook: '#7b61c9',
  };
  if (known[name]) return known[name];
  let h = 0;
  for (const c of String(name)) h = (h * 31 + c.codePointAt(0)) % 360;
  return `hsl(${h} 55% 50%)`;
}

/** A stacked bar chart as an SVG element; `label(day)` formats the x axis, `fmt` the counts. */
export function stackedBars(stacks, { width = 640, height = 220, label = (d) => d, fmt = String, title = '' } = {}) {
  const L = stackLayout(stacks, { width, height });
  const every = Math.max(1, Math.ceil(stacks.length / 10));
  return s('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': title },
    s('title', {}, title),
    L.ticks.map((t) => [
      s('line', { x1: L.margin.left, x2: width - L.margin.right, y1: t.y, y2: t.y, class: 'grid' }),
      s('text', { x: L.margin.left - 6, y: t.y + 4, 'text-anchor': 'end', class: 'axis' }, fmt(t.value)),
    ]),
    L.rects.map((r) => s('rect', { x: r.x, y: r.y, width: r.width, height: Math.max(0, r.height), fill: colour(r.series) },
      s('title', {}, `${label(r.day)} · ${r.series}: ${fmt(r.count)}`))),
    stacks.map((d, i) => (i % every === 0
      ? s('text', { x: L.margin.left + i * L.band + L.band / 2, y: height - 8, 'text-anchor': 'middle', class: 'axis' }, label(d.day))
      : null)));
}

/** A legend's entries: each series with its label and colour. */
export function legend(names, labelOf = (n) => n) {
  return names.map((n) => ({ name: n, label: labelOf(n), colour: colour(n) }));
}

/** An interval plot as an SVG element; `fmt` formats uplift values (percentage points). */
export function intervalPlot(arms, { width = 640, fmt = String, title = '' } = {}) {
  const L = intervalLayout(arms, { width });
  const [lo, hi] = L.domain;
  const x = scale(lo, hi, L.margin.left, width - L.margin.right);
  const axisY = L.height - L.margin.bottom + 4;
  return s('svg', { viewBox: `0 0 ${width} ${L.height}`, class: 'chart interval', role: 'img', 'aria-label': title },
    s('title', {}, title),
    s('line', { x1: L.zero, x2: L.zero, y1: L.margin.top, y2: axisY, class: 'zero' }),
    niceTicks(lo, hi).map((v) => s('text', { x: x(v), y: L.height - 6, 'text-anchor': 'middle', class: 'axis' }, fmt(v))),
    L.rows.map((r) => [
      s('text', { x: L.margin.left - 8, y: r.cy + 4, 'text-anchor': 'end', class: 'label' }, r.arm),
      s('line', { x1: r.x0, x2: r.x1, y1: r.cy, y2: r.cy, class: r.significant ? 'ci sig' : 'ci' }),
      s('line', { x1: r.x0, x2: r.x0, y1: r.cy - 5, y2: r.cy + 5, class: 'ci' }),
      s('line', { x1: r.x1, x2: r.x1, y1: r.cy - 5, y2: r.cy + 5, class: 'ci' }),
      s('circle', { cx: r.x, cy: r.cy, r: 4, class: r.significant ? 'point sig' : 'point' }),
    ]));
}
