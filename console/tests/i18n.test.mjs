// Every interface string exists in both languages: the two dictionaries have the same keys and
// placeholders, every key a page names (`t('…')`, or a namespaced literal such as
// 'members.phone') is defined, and each dynamic family has an entry for every value the API
// can answer with. Run: node --test console/tests/*.test.mjs

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { LANGUAGES, MESSAGES, pickLanguage, setLanguage, t, fmtPoints, fmtAge } from '../i18n.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..');
const sources = readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => [f, readFileSync(join(dir, f), 'utf8')]);
const en = MESSAGES.en;
const zh = MESSAGES['zh-CN'];
const namespaces = new Set(Object.keys(en).map((k) => k.split('.')[0]));

const placeholders = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

test('both languages have the same keys', () => {
  assert.deepEqual(LANGUAGES, Object.keys(MESSAGES));
  assert.deepEqual(Object.keys(zh).filter((k) => !(k in en)), [], 'keys only in zh-CN');
  assert.deepEqual(Object.keys(en).filter((k) => !(k in zh)), [], 'keys only in en');
});

test('translations keep their placeholders', () => {
  for (const key of Object.keys(en)) {
    assert.deepEqual(placeholders(zh[key]), placeholders(en[key]), key);
  }
});

test('every key the pages use is defined', () => {
  const used = new Set();
  for (const [file, text] of sources) {
    if (file === 'i18n.js') continue;
    for (const m of text.matchAll(/\bt\('([^']+)'/g)) used.add(m[1]);
    // Keys kept in tables ('members.phone') and passed to t() later.
    for (const m of text.matchAll(/'([a-z]+(?:\.[a-z_0-9-]+)+)'/g)) {
      if (namespaces.has(m[1].split('.')[0])) used.add(m[1]);
    }
  }
  assert.ok(used.size > 100, `found ${used.size} keys`);
  const missing = [...used].filter((k) => !(k in en));
  assert.deepEqual(missing, [], 'keys used but not defined');
});

test('dynamic key families cover what the API answers', () => {
  const families = {
    channel: ['sms', 'email', 'push', 'webhook'],
    state: ['scheduled', 'queued', 'sending', 'sent', 'delivered', 'failed', 'dead', 'skipped', 'deferred', 'cancelled'],
    role: ['admin', 'marketer', 'viewer', 'integration'],
    outcome: ['sent', 'transient', 'permanent', 'unknown', 'gone'],
    vstate: ['draft', 'published', 'superseded'],
    warn: ['unknown_variable', 'sms_signature', 'sms_opt_out', 'email_unsubscribe', 'sms_segments'],
    source: ['config', 'api'],
    segment: ['new', 'active', 'high_value', 'at_risk', 'lapsed'],
    purpose: ['marketing', 'service'],
    lang: LANGUAGES,
    nav: ['dashboard', 'templates', 'rules', 'members'],
    'rules.f': ['send_at', 'offset_days', 'days', 'segments'],
    rules: ['rules', 'journeys', 'edit_rules', 'edit_journeys'],
    'part.sms': ['sms'],
    'part.email': ['subject', 'html', 'text'],
    'part.push': ['title', 'body'],
    age: ['s', 'm', 'h', 'd'],
  };
  for (const [family, values] of Object.entries(families)) {
    for (const v of values) {
      for (const lang of LANGUAGES) assert.ok(`${family}.${v}` in MESSAGES[lang], `${lang}: ${family}.${v}`);
    }
  }
});

test('no visible text is hard-coded in the pages', () => {
  // Text nodes are built with h(tag, attrs, 'text'): a quoted word after the attributes would
  // be visible text that skipped the dictionary. Allowed: separators and punctuation.
  for (const [file, text] of sources) {
    if (!file.startsWith('page-') && file !== 'app.js') continue;
    for (const m of text.matchAll(/h\('[a-z0-9]+', \{[^}]*\}, '([^']*)'/g)) {
      assert.match(m[1], /^[\s·,:()+\-/]*$/, `${file}: literal text ${JSON.stringify(m[1])}`);
    }
  }
});

test('the language follows the browser until chosen', () => {
  assert.equal(pickLanguage(null, ['zh-TW', 'en']), 'zh-CN');
  assert.equal(pickLanguage(null, ['fr-FR', 'en-GB']), 'en');
  assert.equal(pickLanguage(null, ['fr-FR']), 'en');
  assert.equal(pickLanguage('en', ['zh-CN']), 'en');
  assert.equal(pickLanguage('zh-CN', ['en-US']), 'zh-CN');
  assert.equal(pickLanguage('klingon', ['zh-Hans-CN']), 'zh-CN');
});

test('placeholders are filled and numbers formatted per language', () => {
  setLanguage('en');
  assert.equal(t('tpl.saved', { version: 3 }), 'Draft v3 saved.');
  assert.equal(fmtPoints(0.0123), '+1.2 pp');
  assert.equal(fmtPoints(-0.05), '−5.0 pp');
  assert.equal(fmtAge(7200), '2 h');
  assert.equal(fmtAge(null), null);
  setLanguage('zh-CN');
  assert.equal(t('tpl.saved', { version: 3 }), '草稿第 3 版已保存。');
  assert.equal(fmtAge(90), '1 分钟');
  setLanguage('xx');
  assert.equal(t('nav.members'), 'Members');
  assert.equal(t('no.such.key'), 'no.such.key');
});
