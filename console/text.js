// Pure helpers the pages share, with no DOM: the SMS counter's figures and label, a unified
// diff split into lines to colour, field problems from a 422, lists typed as text, durations.
// Tested by console/tests/helpers.test.mjs.

const GSM_BASIC =
  '@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !"#¤%&\'()*+,-./0123456789:;<=>?' +
  '¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà';
const GSM_EXTENSION = '\f^{}\\[~]|€';

/**
 * The daemon's SMS segment count (src/render/sms.rs) for text the preview has not answered for
 * yet: GSM-7 (160 alone, 153 a part, extension characters cost two) or UCS-2 (70 / 67 UTF-16
 * units); an escape or surrogate pair never splits across parts.
 */
export function smsSegments(text) {
  const chars = [...text];
  let gsm = chars.every((c) => GSM_BASIC.includes(c) || GSM_EXTENSION.includes(c));
  const costs = gsm
    ? chars.map((c) => (GSM_BASIC.includes(c) ? 1 : 2))
    : chars.map((c) => (c.codePointAt(0) > 0xffff ? 2 : 1));
  const [single, part] = gsm ? [160, 153] : [70, 67];
  const units = costs.reduce((a, b) => a + b, 0);
  if (units <= single) return { encoding: gsm ? 'GSM-7' : 'UCS-2', units, count: 1 };
  let count = 1;
  let used = 0;
  for (const cost of costs) {
    if (used + cost > part) {
      count += 1;
      used = 0;
    }
    used += cost;
  }
  return { encoding: gsm ? 'GSM-7' : 'UCS-2', units, count };
}

/**
 * The SMS counter of one preview rendering (`{rendered: {text}, segments: {encoding, units,
 * count}}`), or of plain text when the daemon has not answered: characters, encoding, segments,
 * and whether the figures are the daemon's own.
 */
export function smsCounter(rendering, fallbackText = '') {
  const seg = rendering?.segments;
  if (seg && Number.isFinite(seg.units) && Number.isFinite(seg.count)) {
    return { characters: seg.units, encoding: seg.encoding, segments: seg.count, fromDaemon: true };
  }
  const text = rendering?.rendered?.text ?? fallbackText;
  const s = smsSegments(text);
  return { characters: s.units, encoding: s.encoding, segments: s.count, fromDaemon: false };
}

/** The counter as shown: "68 characters · UCS-2 · 1 segment", through the interface's `t`. */
export function smsCounterLabel(counter, t, fmt = (n) => String(n)) {
  return t('sms.counter', {
    characters: fmt(counter.characters),
    encoding: counter.encoding,
    segments: fmt(counter.segments),
    unit: t(counter.segments === 1 ? 'sms.segment' : 'sms.segments'),
  });
}

/**
 * A unified diff's lines, each with its kind for colouring: `file` (---/+++ headers), `hunk`
 * (@@), `add`, `del`, `context`; line numbers of the old and new text where they apply.
 */
export function diffLines(text) {
  const out = [];
  let oldNo = 0;
  let newNo = 0;
  for (const line of (text || '').split('\n')) {
    // A context line is at least a space: an empty one is the text's trailing newline.
    if (line === '') continue;
    if (line.startsWith('---') || line.startsWith('+++')) {
      out.push({ kind: 'file', text: line });
    } else if (line.startsWith('@@')) {
      const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
      if (m) {
        oldNo = Number(m[1]);
        newNo = Number(m[2]);
      }
      out.push({ kind: 'hunk', text: line });
    } else if (line.startsWith('+')) {
      out.push({ kind: 'add', text: line.slice(1), new: newNo++ });
    } else if (line.startsWith('-')) {
      out.push({ kind: 'del', text: line.slice(1), old: oldNo++ });
    } else if (line.startsWith('\\')) {
      out.push({ kind: 'note', text: line });
    } else {
      out.push({ kind: 'context', text: line.slice(1), old: oldNo++, new: newNo++ });
    }
  }
  return out;
}

/**
 * Field problems of a refused write, by field: the API's `error.problems` (`{field, problem}`)
 * or its single `error.field`. Nested names (`steps[0].template`, `variants.en`) keep their
 * full name and are also listed under their first segment, where a form has one input.
 */
export function fieldProblems(err) {
  const byField = {};
  const add = (field, problem) => {
    const key = field || '';
    (byField[key] ||= []).push(problem);
    const head = key.split(/[.[]/)[0];
    if (head !== key) (byField[head] ||= []).push(problem);
  };
  if (err?.problems?.length) for (const p of err.problems) add(p.field, p.problem);
  else if (err) add(err.field, err.message);
  return byField;
}

/** "a, b,,c" → ["a", "b", "c"]. */
export function parseList(text) {
  return String(text || '')
    .split(/[,\n，]/)
    .map((s) => s.trim())
    .filter(Boolean);
}

/** A duration in seconds as its largest whole unit: `{value: 3, unit: 'h'}`. */
export function ageParts(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return null;
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return { value: s, unit: 's' };
  if (s < 3600) return { value: Math.floor(s / 60), unit: 'm' };
  if (s < 86400) return { value: Math.floor(s / 3600), unit: 'h' };
  return { value: Math.floor(s / 86400), unit: 'd' };
}

/** The definition with the form's schedule and audience fields put in; empty fields removed. */
export function applyScheduleForm(definition, form) {
  const out = { ...definition };
  const set = (key, value) => {
    if (value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0)) {
      delete out[key];
    } else {
      out[key] = value;
    }
  };
  set('send_at', form.send_at?.trim());
  set('offset_days', form.offset_days === '' || form.offset_days === undefined ? undefined : Number(form.offset_days));
  set('days', form.days === '' || form.days === undefined ? undefined : Number(form.days));
  set('segments', Array.isArray(form.segments) ? form.segments : parseList(form.segments));
  return out;
}
