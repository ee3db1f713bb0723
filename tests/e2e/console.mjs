// The console in headless Chromium, as a marketer uses it: log in, open the birthday template's
// SMS, type until the segment count changes, publish (acknowledging the warnings), roll back,
// open the birthday rule's forecast, switch to Chinese; a screenshot of every page. Run by
// tests/e2e/run.sh, which starts the daemon and passes TIDINGS_URL, TIDINGS_KEY, CHROMIUM and
// SCREENSHOTS.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const base = process.env.TIDINGS_URL;
const key = process.env.TIDINGS_KEY;
const shots = process.env.SCREENSHOTS || 'target/e2e';
assert.ok(base && key, 'TIDINGS_URL and TIDINGS_KEY are needed (tests/e2e/run.sh sets them)');
mkdirSync(shots, { recursive: true });

const problems = [];
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
const page = await context.newPage();
page.setDefaultTimeout(15_000);
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  // A CSP violation or a script error is a failure, not noise.
  if (m.type() === 'error' && !/status of 4[0-9][0-9]/.test(m.text())) problems.push(`console: ${m.text()}`);
});

const tid = (id) => page.getByTestId(id);
async function shot(name) {
  await page.screenshot({ path: join(shots, `console-${name}.png`), fullPage: true });
  console.log(`ok ${name}`);
}
/** The API as the logged-in page sees it (same origin, session cookie). */
const apiGet = (path) => page.evaluate(async (p) => (await fetch(p, { credentials: 'same-origin' })).json(), path);
async function publishedVersion() {
  return (await apiGet('/api/templates/birthday')).published.version;
}
async function until(what, fn) {
  for (let i = 0; i < 100; i++) {
    if (await fn()) return;
    await page.waitForTimeout(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

try {
  // Login: a wrong key is refused, the right one lands on the dashboard.
  await page.goto(`${base}/console`);
  await tid('login-form').waitFor();
  await tid('login-key').fill('tdk_wrong_key');
  await tid('login-submit').click();
  await tid('login-error').waitFor({ state: 'visible' });
  await shot('login');
  await tid('login-key').fill(key);
  await tid('login-submit').click();
  await tid('nav-dashboard').waitFor();
  await tid('backlog').waitFor();
  await shot('dashboard');

  // Templates: the list, then the birthday template's Chinese SMS.
  await tid('nav-templates').click();
  await tid('templates-table').waitFor();
  await shot('templates');
  await tid('template-birthday').click();
  await tid('locale-select').selectOption('zh-CN');
  await tid('channel-sms').click();
  const counter = tid('sms-counter');
  await until('the first SMS count', async () => (await counter.getAttribute('data-segments')) !== null);
  const before = Number(await counter.getAttribute('data-segments'));
  const textBefore = await counter.textContent();
  const sms = tid('sms-text');
  await sms.focus();
  await page.keyboard.press('Control+End');
  await page.keyboard.insertText('会员日当天到店消费还可额外获得一份精美礼品，数量有限，先到先得，期待您的光临！');
  await until('the segment count to change', async () => Number(await counter.getAttribute('data-segments')) > before);
  const after = Number(await counter.getAttribute('data-segments'));
  assert.ok(after > before, `segments ${before} -> ${after}`);
  assert.notEqual(await counter.textContent(), textBefore);
  await shot('template-editor');

  // Publish: a new version, the warnings acknowledged in the dialog when there are any.
  const v0 = await publishedVersion();
  await tid('publish').click();
  const dialog = tid('publish-dialog');
  const asked = await dialog.waitFor({ state: 'visible', timeout: 5_000 }).then(() => true, () => false);
  if (asked) {
    assert.equal(await tid('confirm-publish').isDisabled(), true, 'publishing waits for the acknowledgement');
    await tid('ack-warnings').check();
    await shot('publish-dialog');
    await tid('confirm-publish').click();
  }
  await until('the new version to be published', async () => (await publishedVersion()) > v0);
  const v1 = await publishedVersion();
  const published = await apiGet(`/api/templates/birthday/versions/${v1}`);
  assert.match(published.variants['zh-CN'].sms, /先到先得/);

  // Roll back to the version before: published again as a new version with its content.
  const rollback = page.locator(`[data-testid="rollback"][data-version="${v0}"]`);
  await rollback.waitFor();
  await tid('diff').click();
  await tid('diff-view').locator('pre').first().waitFor();
  await shot('history');
  await rollback.click();
  await until('the rollback to be published', async () => (await publishedVersion()) > v1);
  await tid('test-to').fill('+8613800138000');
  await tid('test-send').click();
  await until('the test send\'s outcome', async () => /v\d+/.test((await tid('test-result').textContent()) || ''));
  const v2 = await publishedVersion();
  const [old, now] = await Promise.all([v0, v2].map((v) => apiGet(`/api/templates/birthday/versions/${v}`)));
  assert.deepEqual(now.variants, old.variants, 'the rollback has the earlier content');

  // Rules: the list, then the birthday rule's forecast for the next seven days.
  await tid('nav-rules').click();
  await tid('rules-table').waitFor();
  await shot('rules');
  // The enabled switch: off, then on again.
  const enabled = async () => (await apiGet('/api/rules/anniversary')).enabled;
  await tid('enabled-anniversary').uncheck();
  await until('anniversary to be disabled', async () => !(await enabled()));
  await tid('enabled-anniversary').check();
  await until('anniversary to be enabled', async () => enabled());
  // Editing the schedule: the API's 422 shows beside the field, a good time is saved.
  await tid('edit-birthday').click();
  await tid('rule-form').waitFor();
  await tid('f-send_at').fill('25:99');
  await tid('save-rule').click();
  await tid('error-send_at').waitFor({ state: 'visible' });
  assert.equal(await tid('f-send_at').getAttribute('aria-invalid'), 'true');
  await shot('rule-edit');
  await tid('f-send_at').fill('09:45');
  await tid('save-rule').click();
  await until('the rule to be saved', async () => (await apiGet('/api/rules/birthday')).definition.send_at === '09:45');
  await tid('nav-rules').click();
  await tid('rules-table').waitFor();
  await tid('forecast-birthday').click();
  const table = tid('forecast-table');
  await table.waitFor();
  await tid('forecast-chart').waitFor();
  const rows = await table.locator('tbody tr').count();
  assert.ok(rows >= 2, `forecast rows: ${rows}`);
  await shot('forecast');

  // A member with their consent and messages.
  await tid('nav-members').click();
  await tid('member-search').fill('e2e-1');
  await tid('member-search-submit').click();
  await tid('member-results').getByRole('link', { name: 'e2e-1', exact: true }).click();
  await tid('member-profile').waitFor();
  await tid('member-consent').waitFor();
  // The birthdays due today may have gone out already: a message shows its delivery history.
  const sent = tid('member-messages').locator('details summary');
  if (await sent.count()) {
    await sent.first().click();
    await tid('member-messages').locator('.history li').first().waitFor();
  }
  await shot('member');

  // Language: Chinese from the header, remembered after a reload.
  await page.goto(`${base}/console#/rules/birthday/forecast`);
  await tid('forecast-table').waitFor();
  await tid('lang-switch').selectOption('zh-CN');
  await until('the interface in Chinese', async () => (await tid('nav-dashboard').textContent()) === '概览');
  assert.equal(await page.evaluate(() => document.documentElement.lang), 'zh-CN');
  await tid('forecast-table').waitFor();
  await shot('forecast-zh');
  await page.reload();
  await tid('nav-dashboard').waitFor();
  assert.equal(await tid('nav-dashboard').textContent(), '概览');

  // A phone's width.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${base}/console#/dashboard`);
  await tid('backlog').waitFor();
  await shot('dashboard-narrow');

  // Logging out ends the session: the API answers 401 and the console shows the login.
  await tid('logout').click();
  await tid('login-form').waitFor();
  const status = await page.evaluate(async () => (await fetch('/api/templates', { credentials: 'same-origin' })).status);
  assert.equal(status, 401);

  assert.deepEqual(problems, [], 'no script errors or CSP violations');
  console.log('console e2e: all steps passed');
} catch (e) {
  await page.screenshot({ path: join(shots, 'console-failure.png'), fullPage: true }).catch(() => {});
  console.error(e);
  if (problems.length) console.error(problems.join('\n'));
  process.exitCode = 1;
} finally {
  await browser.close();
}
