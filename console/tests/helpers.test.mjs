// The console's pure helpers: the SMS counter (the daemon's figures first, the same count as
// src/render/sms.rs otherwise), chart scaling and stacking, the uplift interval layout, diff
// lines, field problems and the schedule form. Run: node --test console/tests/*.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { applyScheduleForm, diffLines, fieldProblems, parseList, smsCounter, smsCounterLabel, smsSegments, ageParts } from '../text.js';
import { dayRange, intervalLayout, niceMax, niceTicks, scale, stackByDay, stackLayout, ticks } from '../charts.js';
import { setLanguage, t } from '../i18n.js';

test('sms segments match the daemon', () => {
  const check = (text, encoding, units, count) => assert.deepEqual(smsSegments(text), { encoding, units, count }, JSON.stringify(text));
  check('', 'GSM-7', 0, 1);
  check("Happy birthday, Emma O'Neill!", 'GSM-7', 29, 1);
  check('a'.repeat(160), 'GSM-7', 160, 1);
  check('a'.repeat(161), 'GSM-7', 161, 2);
  check('€'.repeat(80), 'GSM-7', 160, 1);
  // An escape pair never splits: 76 pairs fill a part (152), the 77th starts another.
  check('€'.repeat(81), 'GSM-7', 162, 2);
  check('生'.repeat(70), 'UCS-2', 70, 1);
  check('生'.repeat(71), 'UCS-2', 71, 2);
  check('生'.repeat(134), 'UCS-2', 134, 2);
  check('生'.repeat(135), 'UCS-2', 135, 3);
  check('🎂'.repeat(35), 'UCS-2', 70, 1);
  // A surrogate pair never splits: 33 emoji fill 66 units of a 67-unit part.
  check('🎂'.repeat(36), 'UCS-2', 72, 2);
});

test('the counter prefers the daemon figures and reads in both languages', () => {
  const daemon = { channel: 'sms', rendered: { channel: 'sms', text: 'hi' }, segments: { encoding: 'UCS-2', units: 98, count: 2 } };
  assert.deepEqual(smsCounter(daemon), { characters: 98, encoding: 'UCS-2', segments: 2, fromDaemon: true });
  assert.deepEqual(smsCounter({ rendered: { text: 'hello' } }), { characters: 5, encoding: 'GSM-7', segments: 1, fromDaemon: false });
  assert.deepEqual(smsCounter(null, '生日快乐'), { characters: 4, encoding: 'UCS-2', segments: 1, fromDaemon: false });
  setLanguage('en');
  assert.equal(smsCounterLabel(smsCounter(daemon), t), '98 characters · UCS-2 · 2 segments');
  assert.equal(smsCounterLabel({ characters: 5, encoding: 'GSM-7', segments: 1 }, t), '5 characters · GSM-7 · 1 segment');
  setLanguage('zh-CN');
  assert.equal(smsCounterLabel(smsCounter(daemon), t), '98 个字符 · UCS-2 · 2 条');
  setLanguage('en');
});

test('axes end on a nice number', () => {
  const check = (max, top) => assert.equal(niceMax(max), top, String(max));
  check(0, 1);
  check(-3, 1);
  check(1, 1);
  check(7, 10);
  check(12, 20);
  check(21, 25);
  check(26, 50);
  check(100, 100);
  check(101, 200);
  check(0.3, 0.5);
  assert.deepEqual(ticks(20, 4), [0, 5, 10, 15, 20]);
  assert.deepEqual(niceTicks(-0.021, 0.072), [0, 0.025, 0.05]);
  assert.deepEqual(niceTicks(-0.04, 0.04), [-0.04, -0.02, 0, 0.02, 0.04]);
  assert.deepEqual(niceTicks(0, 100), [0, 25, 50, 75, 100]);
  assert.deepEqual(niceTicks(0.1, 0.35, 5), [0.1, 0.15, 0.2, 0.25, 0.3, 0.35]);
  const y = scale(0, 20, 200, 0);
  assert.equal(y(0), 200);
  assert.equal(y(10), 100);
  assert.equal(y(20), 0);
});

test('days are stacked by series, empty days kept', () => {
  const rows = [
    { day: '2026-03-10', channel: 'sms', state: 'delivered', count: 5 },
    { day: '2026-03-10', channel: 'sms', state: 'failed', count: 1 },
    { day: '2026-03-12', channel: 'sms', state: 'delivered', count: 3 },
    { day: '2026-03-12', channel: 'sms', state: 'delivered', count: 2 },
  ];
  const stacks = stackByDay(rows, (r) => r.state, null, ['delivered', 'failed']);
  assert.deepEqual(stacks.map((d) => d.day), ['2026-03-10', '2026-03-11', '2026-03-12']);
  assert.deepEqual(stacks.map((d) => d.total), [6, 0, 5]);
  assert.deepEqual(stacks[0].segments, [
    { series: 'delivered', count: 5, y0: 0, y1: 5 },
    { series: 'failed', count: 1, y0: 5, y1: 6 },
  ]);
  assert.deepEqual(stacks[1].segments, []);
  assert.deepEqual(dayRange('2026-02-27', '2026-03-01'), ['2026-02-27', '2026-02-28', '2026-03-01']);
  // Forecast rows count `messages`.
  const f = stackByDay([{ day: '2026-03-10', channel: 'email', messages: 4 }], (r) => r.channel);
  assert.equal(f[0].total, 4);
});

test('bars scale to the axis and stack without gaps', () => {
  const stacks = stackByDay([
    { day: '2026-03-10', state: 'sent', count: 10 },
    { day: '2026-03-10', state: 'failed', count: 10 },
    { day: '2026-03-11', state: 'sent', count: 5 },
  ], (r) => r.state, null, ['sent', 'failed']);
  const margin = { top: 0, right: 0, bottom: 0, left: 0 };
  const L = stackLayout(stacks, { width: 200, height: 100, margin });
  assert.equal(L.top, 20);
  assert.equal(L.band, 100);
  const [sent, failed, sent2] = L.rects;
  assert.equal(sent.height, 50);
  assert.equal(sent.y, 50);
  assert.equal(failed.y + failed.height, sent.y, 'the second segment sits on the first');
  assert.equal(failed.y, 0, 'the tallest bar reaches the top');
  assert.equal(sent2.height, 25);
  assert.equal(sent2.x, 100 + 15);
  assert.deepEqual(L.ticks.map((t) => t.value), [0, 5, 10, 15, 20]);
  // Counts tick at whole numbers: five messages a day is an axis of 0, 2, 4, 6.
  const small = stackLayout(stackByDay([{ day: '2026-03-10', state: 'sent', count: 5 }], (r) => r.state), { width: 100, height: 100, margin });
  assert.deepEqual(small.ticks.map((t) => t.value), [0, 2, 4, 6]);
  const one = stackLayout(stackByDay([{ day: '2026-03-10', state: 'sent', count: 1 }], (r) => r.state), { width: 100, height: 100, margin });
  assert.deepEqual(one.ticks.map((t) => t.value), [0, 1]);
  const none = stackLayout([], { width: 100, height: 100, margin });
  assert.deepEqual(none.ticks.map((t) => t.value), [0, 1]);
});

test('uplift intervals share one scale with zero in it', () => {
  const arms = [
    { arm: 'a', uplift: { absolute: 0.05, low: 0.01, high: 0.09 } },
    { arm: 'b', uplift: { absolute: -0.01, low: -0.04, high: 0.02 } },
    { arm: 'holdout', uplift: null },
  ];
  const margin = { top: 0, right: 0, bottom: 0, left: 0 };
  const L = intervalLayout(arms, { width: 113, rowHeight: 10, margin });
  assert.equal(L.rows.length, 2, 'the holdout has no interval');
  const [a, b] = L.rows;
  assert.ok(a.x0 < a.x && a.x < a.x1);
  assert.ok(b.x0 < L.zero && L.zero < b.x1);
  assert.equal(a.significant, true);
  assert.equal(b.significant, false);
  assert.ok(L.domain[0] < -0.04 && L.domain[1] > 0.09, 'padded around the widest interval');
  assert.deepEqual([a.cy, b.cy], [5, 15]);
  // Only positive intervals: zero stays on the scale.
  const only = intervalLayout([{ arm: 'a', uplift: { absolute: 0.2, low: 0.1, high: 0.3 } }], { width: 100, margin });
  assert.ok(only.domain[0] < 0);
});

test('a unified diff splits into coloured, numbered lines', () => {
  const text = [
    '--- birthday@1/zh-CN/sms',
    '+++ birthday@2/zh-CN/sms',
    '@@ -1,3 +1,3 @@',
    ' 【Jade Club】',
    '-生日快乐！',
    '+生日快乐，小明！',
    ' 回T退订',
    '\\ No newline at end of file',
    '',
  ].join('\n');
  const lines = diffLines(text);
  assert.deepEqual(lines.map((l) => l.kind), ['file', 'file', 'hunk', 'context', 'del', 'add', 'context', 'note']);
  assert.deepEqual(lines[4], { kind: 'del', text: '生日快乐！', old: 2 });
  assert.deepEqual(lines[5], { kind: 'add', text: '生日快乐，小明！', new: 2 });
  assert.deepEqual(lines[6], { kind: 'context', text: '回T退订', old: 3, new: 3 });
  assert.deepEqual(diffLines(''), []);
});

test('422 problems land next to their fields', () => {
  const err = { message: 'bad', field: 'send_at', problems: [
    { field: 'send_at', problem: 'not a time as HH:MM' },
    { field: 'segments', problem: 'segments need model.enabled = true' },
    { field: 'steps[0].template', problem: 'no template "x"' },
  ] };
  assert.deepEqual(fieldProblems(err), {
    send_at: ['not a time as HH:MM'],
    segments: ['segments need model.enabled = true'],
    'steps[0].template': ['no template "x"'],
    steps: ['no template "x"'],
  });
  assert.deepEqual(fieldProblems({ message: 'must be between 1 and 366', field: 'days', problems: [] }), { days: ['must be between 1 and 366'] });
  assert.deepEqual(fieldProblems({ message: 'internal error', field: null, problems: [] }), { '': ['internal error'] });
});

test('the schedule form rewrites only its own keys', () => {
  const def = { id: 'birthday', trigger: 'birthday', channels: ['sms'], template: 'birthday', send_at: '09:30', segments: ['active'] };
  assert.deepEqual(applyScheduleForm(def, { send_at: ' 10:00 ', offset_days: '-1', days: '', segments: ['active', 'high_value'] }),
    { id: 'birthday', trigger: 'birthday', channels: ['sms'], template: 'birthday', send_at: '10:00', offset_days: -1, segments: ['active', 'high_value'] });
  assert.deepEqual(applyScheduleForm(def, { send_at: '', offset_days: '', days: '30', segments: [] }),
    { id: 'birthday', trigger: 'birthday', channels: ['sms'], template: 'birthday', days: 30 });
  assert.deepEqual(parseList('a, b,,c，d\ne'), ['a', 'b', 'c', 'd', 'e']);
  assert.equal(def.send_at, '09:30', 'the original is untouched');
});

test('ages take their largest whole unit', () => {
  assert.deepEqual(ageParts(59), { value: 59, unit: 's' });
  assert.deepEqual(ageParts(60), { value: 1, unit: 'm' });
  assert.deepEqual(ageParts(3 * 3600 + 5), { value: 3, unit: 'h' });
  assert.deepEqual(ageParts(3 * 86400), { value: 3, unit: 'd' });
  assert.equal(ageParts(null), null);
});
