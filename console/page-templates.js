// Templates: the list, and the editor of one key per locale and channel with a live preview
// rendered by the daemon, the SMS counter, warnings, drafts, publish, test send, history, diff
// and rollback. Everything goes through /api/templates.

import { api, get, post, query } from './api.js';
import { debounce, h, mount } from './dom.js';
import { diffLines, smsCounter, smsCounterLabel } from './text.js';
import { fmtDateTime, fmtNumber, language, t } from './i18n.js';

const CHANNELS = ['sms', 'email', 'push'];
const PARTS = { sms: [['sms', 'textarea']], email: [['subject', 'input'], ['html', 'textarea'], ['text', 'textarea']], push: [['title', 'input'], ['body', 'textarea']] };

export async function templatesPage(el) {
  const { templates = [] } = await get('/api/templates');
  el.append(h('h1', {}, t('tpl.title')));
  if (!templates.length) {
    el.append(h('p', { class: 'empty' }, t('tpl.none')));
    return;
  }
  el.append(h('div', { class: 'scroll' }, h('table', { 'data-testid': 'templates-table' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, t('tpl.key')),
      h('th', { scope: 'col' }, t('tpl.published')),
      h('th', { scope: 'col' }, t('tpl.channels')),
      h('th', { scope: 'col' }, t('tpl.locales')),
      h('th', { scope: 'col' }, t('tpl.draft')))),
    h('tbody', {}, templates.map((k) => h('tr', {},
      h('th', { scope: 'row' }, h('a', { href: `#/templates/${encodeURIComponent(k.key)}`, 'data-testid': `template-${k.key}` }, k.key)),
      h('td', {}, k.published_version ? t('tpl.version_at', { version: k.published_version, at: fmtDateTime(k.published_at) }) : t('tpl.never')),
      h('td', {}, (k.channels || []).map((c) => t(`channel.${c}`)).join(', ')),
      h('td', {}, (k.locales || []).join(', ')),
      h('td', {}, k.draft_pending ? t('tpl.draft_pending', { version: k.draft_version }) : '–')))))));
}

function clone(v) {
  return JSON.parse(JSON.stringify(v ?? {}));
}

/** The value of one part of a variant (`sms`, `email.subject`…). */
function partValue(variant, channel, part) {
  if (channel === 'sms') return variant?.sms ?? '';
  return variant?.[channel]?.[part] ?? '';
}

function setPart(variant, channel, part, value) {
  if (channel === 'sms') variant.sms = value;
  else {
    variant[channel] ||= Object.fromEntries(PARTS[channel].map(([p]) => [p, '']));
    variant[channel][part] = value;
  }
}

function hasChannel(variant, channel) {
  return channel === 'sms' ? typeof variant?.sms === 'string' : !!variant?.[channel];
}

export async function templateEditorPage(el, ctx, key) {
  const base = `/api/templates/${encodeURIComponent(key)}`;
  const st = {
    doc: await get(base),
    variants: {},
    fixture: {},
    draftVersion: null,
    dirty: false,
    locale: null,
    channel: 'sms',
    preview: null,
    previewError: null,
    warnings: [],
  };
  function load() {
    const from = st.doc.draft || st.doc.published;
    st.variants = clone(from?.variants);
    st.fixture = clone(from?.fixture);
    st.draftVersion = st.doc.draft?.version ?? null;
    st.dirty = false;
    const locales = Object.keys(st.variants);
    if (!locales.includes(st.locale)) st.locale = locales.find((l) => l.startsWith(language().slice(0, 2))) || locales[0] || null;
    if (!hasChannel(st.variants[st.locale], st.channel)) st.channel = CHANNELS.find((c) => hasChannel(st.variants[st.locale], c)) || 'sms';
  }
  load();
  ctx.unsaved = () => st.dirty;

  const status = h('p', { class: 'status', 'data-testid': 'template-status' });
  const localeSelect = h('select', { id: 'tpl-locale', 'data-testid': 'locale-select' });
  const tabs = h('div', { class: 'tabs', role: 'group', 'aria-label': t('tpl.channel') });
  const fields = h('div', { class: 'fields' });
  const counter = h('p', { class: 'counter', 'data-testid': 'sms-counter', 'aria-live': 'polite' });
  const member = h('input', { id: 'tpl-member', 'data-testid': 'preview-member', placeholder: t('tpl.fixture_member'), autocomplete: 'off' });
  const previewOut = h('div', { class: 'preview', 'data-testid': 'preview' });
  const problems = h('div', { class: 'problems', role: 'alert', 'data-testid': 'preview-errors' });
  const warningsBox = h('div', { class: 'warnings', 'data-testid': 'warnings' });
  const note = h('input', { id: 'tpl-note', 'data-testid': 'draft-note', autocomplete: 'off' });
  const saveBtn = h('button', { type: 'button', 'data-testid': 'save-draft' }, t('tpl.save_draft'));
  const publishBtn = h('button', { type: 'button', class: 'primary', 'data-testid': 'publish' }, t('tpl.publish'));
  const history = h('section', { class: 'card', 'aria-labelledby': 'hist-h' });
  const diffView = h('div', { class: 'diff', 'data-testid': 'diff-view' });

  function drawStatus() {
    const p = st.doc.published;
    mount(status,
      p ? t('tpl.status_published', { version: p.version, at: fmtDateTime(p.published_at) }) : t('tpl.never'),
      st.draftVersion ? ` · ${t('tpl.draft_pending', { version: st.draftVersion })}` : '',
      st.dirty ? ` · ${t('tpl.unsaved')}` : '');
    publishBtn.disabled = !st.dirty && !st.draftVersion;
  }

  function drawTabs() {
    mount(localeSelect, Object.keys(st.variants).map((l) => h('option', { value: l, selected: l === st.locale }, l)));
    mount(tabs, CHANNELS.map((c) => h('button', {
      type: 'button', 'aria-pressed': String(c === st.channel), 'data-testid': `channel-${c}`,
      class: hasChannel(st.variants[st.locale], c) ? '' : 'absent',
      onclick: () => { st.channel = c; drawTabs(); drawFields(); drawPreview(); },
    }, t(`channel.${c}`))));
  }

  function drawFields() {
    const variant = st.variants[st.locale];
    if (!variant) {
      mount(fields, h('p', { class: 'empty' }, t('tpl.no_locale')));
      return;
    }
    if (!hasChannel(variant, st.channel)) {
      mount(fields, h('p', {}, t('tpl.no_channel', { channel: t(`channel.${st.channel}`), locale: st.locale })),
        h('button', { type: 'button', 'data-testid': 'add-channel', onclick: () => {
          for (const [p] of PARTS[st.channel]) setPart(variant, st.channel, p, '');
          changed();
          drawTabs();
          drawFields();
        } }, t('tpl.add_channel')));
      return;
    }
    mount(fields, PARTS[st.channel].map(([part, kind]) => {
      const id = `tpl-${st.channel}-${part}`;
      const attrs = {
        id, value: partValue(variant, st.channel, part), spellcheck: 'false',
        'data-testid': st.channel === 'sms' ? 'sms-text' : `${st.channel}-${part}`,
        oninput: (e) => { setPart(variant, st.channel, part, e.target.value); changed(); },
      };
      const input = kind === 'textarea' ? h('textarea', { ...attrs, rows: part === 'html' ? 14 : st.channel === 'sms' ? 5 : 4 }) : h('input', attrs);
      if (kind === 'textarea') input.value = attrs.value;
      return h('div', { class: 'field' }, h('label', { for: id }, t(`part.${st.channel}.${part}`)), input,
        st.channel === 'sms' ? counter : null);
    }));
  }

  function changed() {
    st.dirty = true;
    drawStatus();
    schedulePreview();
  }

  const schedulePreview = debounce(() => runPreview(), 350);
  let previewSeq = 0;
  async function runPreview() {
    const mine = ++previewSeq;
    const body = { variants: st.variants, fixture: st.fixture };
    if (member.value.trim()) body.member = member.value.trim();
    try {
      const data = await post(`${base}/preview`, body);
      if (mine !== previewSeq) return;
      st.preview = data;
      st.previewError = null;
      st.warnings = data.warnings || [];
    } catch (e) {
      if (mine !== previewSeq) return;
      st.preview = null;
      st.previewError = e;
    }
    drawPreview();
  }

  function current() {
    const rendered = st.preview?.rendered || [];
    const ofChannel = rendered.filter((r) => r.channel === st.channel);
    return ofChannel.find((r) => r.locale === st.locale) || ofChannel[0] || null;
  }

  function drawPreview() {
    const r = current();
    const e = st.previewError;
    mount(problems, e ? [h('p', {}, e.message), e.problems.length ? h('ul', {}, e.problems.map((p) => h('li', {}, typeof p === 'string' ? p : `${p.field ? `${p.field}: ` : ''}${p.problem ?? p.message ?? ''}`))) : null] : null);
    problems.hidden = !e;
    if (st.channel === 'sms') {
      if (r && (r.segments || r.rendered)) {
        const c = smsCounter(r);
        mount(counter, smsCounterLabel(c, t, fmtNumber));
        counter.dataset.segments = String(c.segments);
        counter.dataset.characters = String(c.characters);
      } else mount(counter, t('sms.waiting'));
    }
    const out = [];
    if (r?.error) out.push(h('p', { class: 'error' }, r.error));
    const m = r?.rendered;
    if (m?.channel === 'sms' || (m && st.channel === 'sms')) out.push(h('p', { class: 'bubble' }, m.text));
    else if (m && st.channel === 'email') {
      out.push(h('p', {}, h('strong', {}, t('part.email.subject')), ' ', m.subject));
      const frame = h('iframe', { sandbox: '', title: t('tpl.email_preview'), class: 'email', referrerpolicy: 'no-referrer' });
      frame.srcdoc = m.html;
      out.push(frame, h('details', {}, h('summary', {}, t('part.email.text')), h('pre', {}, m.text)));
    } else if (m && st.channel === 'push') {
      out.push(h('div', { class: 'push' }, h('strong', {}, m.title), h('p', {}, m.body)));
    }
    if (!out.length && !e) out.push(h('p', { class: 'hint' }, t('tpl.preview_waiting')));
    mount(previewOut, out);
    mount(warningsBox, st.warnings.length
      ? [h('h3', {}, t('tpl.warnings')), h('ul', {}, st.warnings.map(warningItem))]
      : h('p', { class: 'ok' }, t('tpl.no_warnings')));
  }

  async function saveDraft() {
    const body = { variants: st.variants, fixture: st.fixture };
    if (note.value.trim()) body.note = note.value.trim();
    const v = (await api('POST', `${base}/drafts`, body)).data;
    st.doc.draft = v;
    st.draftVersion = v.version;
    st.dirty = false;
    st.warnings = v.warnings || st.warnings;
    note.value = '';
    drawStatus();
    drawPreview();
    ctx.toast(t('tpl.saved', { version: v.version }));
    refreshHistory();
    return v;
  }

  async function publish() {
    publishBtn.disabled = true;
    try {
      if (st.dirty || !st.draftVersion) await saveDraft();
      let ack = false;
      if (st.warnings.length) {
        ack = await confirmWarnings(st.warnings);
        if (!ack) return;
      }
      try {
        await post(`${base}/versions/${st.draftVersion}/publish`, { acknowledge_warnings: ack });
      } catch (e) {
        if (e.status !== 409 || !e.warnings.length) throw e;
        if (!(await confirmWarnings(e.warnings))) return;
        await post(`${base}/versions/${st.draftVersion}/publish`, { acknowledge_warnings: true });
      }
      ctx.toast(t('tpl.published_ok', { version: st.draftVersion }));
      await reload();
    } catch (e) {
      showError(e);
    } finally {
      drawStatus();
    }
  }

  function showError(e) {
    st.previewError = e;
    drawPreview();
    ctx.toast(e.message, 'error');
  }

  async function reload() {
    st.doc = await get(base);
    load();
    drawStatus();
    drawTabs();
    drawFields();
    runPreview();
    refreshHistory();
  }

  saveBtn.addEventListener('click', async () => {
    saveBtn.disabled = true;
    try {
      await saveDraft();
    } catch (e) {
      showError(e);
    } finally {
      saveBtn.disabled = false;
    }
  });
  publishBtn.addEventListener('click', publish);
  localeSelect.addEventListener('change', () => {
    st.locale = localeSelect.value;
    drawTabs();
    drawFields();
    drawPreview();
  });
  member.addEventListener('input', schedulePreview);

  // Test send.
  const tsChannel = h('select', { id: 'ts-channel', 'data-testid': 'test-channel' },
    ['sms', 'email'].map((c) => h('option', { value: c }, t(`channel.${c}`))));
  const tsTo = h('input', { id: 'ts-to', 'data-testid': 'test-to', autocomplete: 'off', placeholder: '+8613800138000' });
  const tsOut = h('p', { class: 'hint', 'aria-live': 'polite', 'data-testid': 'test-result' });
  tsChannel.addEventListener('change', () => { tsTo.placeholder = tsChannel.value === 'sms' ? '+8613800138000' : 'name@example.com'; });
  const tsForm = h('form', { class: 'inline', 'data-testid': 'test-send-form' },
    h('label', { for: 'ts-channel' }, t('tpl.test_channel')), tsChannel,
    h('label', { for: 'ts-to' }, t('tpl.test_to')), tsTo,
    h('button', { type: 'submit', 'data-testid': 'test-send' }, t('tpl.test_send')));
  tsForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    mount(tsOut, t('app.loading'));
    try {
      const body = { channel: tsChannel.value, to: tsTo.value.trim() };
      if (st.draftVersion) body.version = st.draftVersion;
      if (member.value.trim()) body.member = member.value.trim();
      const r = await post(`${base}/test-send`, body);
      mount(tsOut, t('tpl.test_result', { outcome: t(`outcome.${r.outcome}`), provider: r.provider || '', version: r.version ?? '' }),
        r.error ? ` ${r.error}` : '');
    } catch (err) {
      mount(tsOut, h('span', { class: 'error' }, err.field ? `${err.field}: ${err.message}` : err.message));
    }
  });

  // History, diff, rollback.
  async function refreshHistory() {
    let versions = [];
    try {
      versions = (await get(`${base}/versions${query({ limit: 50 })}`)).versions || [];
    } catch (e) {
      mount(history, h('p', { class: 'error' }, e.message));
      return;
    }
    const publishedNow = versions.find((v) => v.state === 'published')?.version;
    const from = h('select', { id: 'diff-from', 'data-testid': 'diff-from' }, versions.map((v) => h('option', { value: v.version }, `v${v.version}`)));
    const to = h('select', { id: 'diff-to', 'data-testid': 'diff-to' }, versions.map((v) => h('option', { value: v.version }, `v${v.version}`)));
    if (versions.length > 1) from.value = String(versions[1].version);
    const diffBtn = h('button', { type: 'button', 'data-testid': 'diff', onclick: () => showDiff(from.value, to.value) }, t('tpl.show_diff'));
    mount(history,
      h('h2', { id: 'hist-h' }, t('tpl.history')),
      h('div', { class: 'scroll' }, h('table', { 'data-testid': 'history-table' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, t('tpl.version')),
          h('th', { scope: 'col' }, t('tpl.state')),
          h('th', { scope: 'col' }, t('tpl.created')),
          h('th', { scope: 'col' }, t('tpl.by')),
          h('th', { scope: 'col' }, t('tpl.note_col')),
          h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, t('tpl.actions'))))),
        h('tbody', {}, versions.map((v) => h('tr', { 'data-version': v.version },
          h('th', { scope: 'row' }, `v${v.version}`),
          h('td', {}, t(`vstate.${v.state}`), v.rollback_of ? ` ${t('tpl.rollback_of', { version: v.rollback_of })}` : ''),
          h('td', {}, fmtDateTime(v.created_at)),
          h('td', {}, v.created_by || ''),
          h('td', {}, v.note || ''),
          h('td', {}, v.version !== publishedNow && v.state !== 'draft'
            ? h('button', { type: 'button', 'data-testid': 'rollback', 'data-version': v.version, onclick: () => rollback(v.version) },
              t('tpl.rollback', { version: v.version }))
            : null)))))),
      versions.length > 1
        ? h('div', { class: 'inline' }, h('label', { for: 'diff-from' }, t('tpl.diff_from')), from,
          h('label', { for: 'diff-to' }, t('tpl.diff_to')), to, diffBtn)
        : null,
      diffView);
  }

  async function showDiff(from, to) {
    try {
      const d = await get(`${base}/diff${query({ from, to })}`);
      const parts = d.parts || [];
      mount(diffView, parts.length
        ? parts.map((p) => h('figure', {},
          h('figcaption', {}, [p.locale, p.part].filter(Boolean).join(' / ')),
          h('pre', {}, diffLines(p.diff).map((l) => h('span', { class: `dl ${l.kind}` },
            l.kind === 'add' ? '+ ' : l.kind === 'del' ? '- ' : l.kind === 'context' ? '  ' : '', l.text, '\n')))))
        : h('p', { class: 'hint' }, t('tpl.no_difference')));
    } catch (e) {
      mount(diffView, h('p', { class: 'error' }, e.message));
    }
  }

  async function rollback(version) {
    try {
      const v = await post(`${base}/rollback`, { version });
      ctx.toast(t('tpl.rolled_back', { version, new: v.version }));
      await reload();
    } catch (e) {
      showError(e);
    }
  }

  el.append(
    h('p', {}, h('a', { href: '#/templates' }, t('tpl.back'))),
    h('h1', {}, t('tpl.editor_title', { key })),
    status,
    h('div', { class: 'toolbar' }, h('label', { for: 'tpl-locale' }, t('tpl.locale')), localeSelect, tabs),
    h('div', { class: 'grid editor' },
      h('section', { class: 'card', 'aria-label': t('tpl.edit') }, fields,
        h('div', { class: 'field' }, h('label', { for: 'tpl-note' }, t('tpl.note')), note),
        h('div', { class: 'actions' }, saveBtn, publishBtn)),
      h('section', { class: 'card', 'aria-labelledby': 'pv-h' },
        h('h2', { id: 'pv-h' }, t('tpl.preview')),
        h('div', { class: 'field' }, h('label', { for: 'tpl-member' }, t('tpl.preview_member')), member),
        problems, previewOut, warningsBox)),
    h('section', { class: 'card', 'aria-labelledby': 'ts-h' }, h('h2', { id: 'ts-h' }, t('tpl.test_title')), tsForm, tsOut),
    history);
  drawStatus();
  drawTabs();
  drawFields();
  drawPreview();
  runPreview();
  refreshHistory();
}

function warningItem(w) {
  const where = [w.channel && t(`channel.${w.channel}`), w.locale, w.part].filter(Boolean).join(' · ');
  return h('li', { 'data-code': w.code || '' }, h('strong', {}, w.code ? t(`warn.${w.code}`) : ''), where ? ` (${where})` : '', ': ', w.message || '');
}

/** The publish dialog: the warnings, and a box to tick before publishing anyway. */
function confirmWarnings(warnings) {
  return new Promise((resolve) => {
    const ack = h('input', { type: 'checkbox', id: 'ack', 'data-testid': 'ack-warnings' });
    const confirm = h('button', { type: 'button', class: 'primary', 'data-testid': 'confirm-publish', disabled: true }, t('tpl.publish_anyway'));
    const cancel = h('button', { type: 'button', 'data-testid': 'cancel-publish' }, t('app.cancel'));
    const dialog = h('dialog', { 'data-testid': 'publish-dialog', 'aria-labelledby': 'dlg-h' },
      h('h2', { id: 'dlg-h' }, t('tpl.publish_warnings')),
      h('ul', {}, warnings.map(warningItem)),
      h('p', {}, ack, ' ', h('label', { for: 'ack' }, t('tpl.acknowledge'))),
      h('div', { class: 'actions' }, cancel, confirm));
    ack.addEventListener('change', () => { confirm.disabled = !ack.checked; });
    const done = (v) => {
      dialog.close();
      dialog.remove();
      resolve(v);
    };
    confirm.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dialog.addEventListener('cancel', () => done(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}
