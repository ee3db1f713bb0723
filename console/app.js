// The console's shell: language, session, the header and hash routing. Pages live in
// page-*.js; each is `async (main, ctx, ...params)` and draws into `main`.

import { LANGUAGES, language, pickLanguage, setLanguage, t } from './i18n.js';
import { api, setCsrfToken, setUnauthorizedHandler } from './api.js';
import { h, mount } from './dom.js';
import { loginPage } from './page-login.js';
import { dashboardPage } from './page-dashboard.js';
import { templatesPage, templateEditorPage } from './page-templates.js';
import { rulesPage, ruleEditPage, forecastPage } from './page-rules.js';
import { membersPage, memberPage } from './page-members.js';

const LANG_KEY = 'tidings.lang';

const ROUTES = [
  [/^#\/login$/, loginPage, null],
  [/^#\/dashboard$/, dashboardPage, 'dashboard'],
  [/^#\/templates$/, templatesPage, 'templates'],
  [/^#\/templates\/([^/]+)$/, templateEditorPage, 'templates'],
  [/^#\/rules$/, rulesPage, 'rules'],
  [/^#\/(rules|journeys)\/([^/]+)$/, ruleEditPage, 'rules'],
  [/^#\/(rules|journeys)\/([^/]+)\/forecast$/, forecastPage, 'rules'],
  [/^#\/members$/, membersPage, 'members'],
  [/^#\/members\/([^/]+)$/, memberPage, 'members'],
];

const NAV = [
  ['dashboard', '#/dashboard'],
  ['templates', '#/templates'],
  ['rules', '#/rules'],
  ['members', '#/members'],
];

const ctx = {
  session: null,
  /** Where to go back to after logging in. */
  after: null,
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
  toast(message, kind = 'ok') {
    const el = document.getElementById('toast');
    mount(el, h('p', { class: `toast ${kind}` }, message));
    clearTimeout(ctx.toastTimer);
    ctx.toastTimer = setTimeout(() => el.replaceChildren(), 5000);
  },
  loggedIn(session) {
    ctx.session = session;
    setCsrfToken(session?.csrf_token);
    header();
  },
};

function stored() {
  try {
    return localStorage.getItem(LANG_KEY);
  } catch {
    return null;
  }
}

function header() {
  document.documentElement.lang = language();
  document.title = t('app.title');
  document.getElementById('brand').textContent = t('app.title');
  document.getElementById('skip-link').textContent = t('app.skip');
  document.getElementById('lang-label').textContent = t('app.language');
  const select = document.getElementById('lang');
  for (const opt of select.options) opt.textContent = t(`lang.${opt.value}`);
  select.value = language();
  const current = ROUTES.find(([re]) => re.test(location.hash))?.[2];
  const nav = document.getElementById('nav');
  mount(nav, ctx.session
    ? h('ul', {}, NAV.map(([key, href]) => h('li', {},
      h('a', { href, 'aria-current': key === current ? 'page' : null, 'data-testid': `nav-${key}` }, t(`nav.${key}`)))))
    : null);
  const logout = document.getElementById('logout');
  logout.textContent = t('app.logout');
  logout.hidden = !ctx.session;
  document.getElementById('who').textContent = ctx.session
    ? t('app.who', { key: ctx.session.key || '', role: t(`role.${ctx.session.role}`) })
    : '';
}

let generation = 0;

async function route() {
  const hash = location.hash || '#/dashboard';
  if (!ctx.session && hash !== '#/login') {
    ctx.after = hash;
    location.hash = '#/login';
    return;
  }
  header();
  const main = document.getElementById('main');
  const found = ROUTES.find(([re]) => re.test(hash));
  if (!found) {
    location.hash = '#/dashboard';
    return;
  }
  const [re, page] = found;
  ctx.unsaved = null;
  const params = re.exec(hash).slice(1).map(decodeURIComponent);
  const mine = ++generation;
  mount(main, h('p', { class: 'loading' }, t('app.loading')));
  try {
    // A page whose route was left while it loaded draws into a detached element.
    const target = h('div', { class: 'page' });
    await page(target, ctx, ...params);
    if (mine === generation) mount(main, target);
  } catch (e) {
    if (mine === generation && e.status !== 401) mount(main, h('p', { class: 'error', role: 'alert' }, t('app.failed', { message: e.message })));
  }
  if (mine === generation) main.focus({ preventScroll: true });
}

async function boot() {
  setLanguage(pickLanguage(stored(), navigator.languages || [navigator.language]));
  document.getElementById('lang').addEventListener('change', (e) => {
    const lang = e.target.value;
    if (!LANGUAGES.includes(lang)) return;
    // Redrawing in the other language would drop an unsaved edit: ask first.
    if (ctx.unsaved?.() && !window.confirm(t('app.unsaved'))) {
      e.target.value = language();
      return;
    }
    setLanguage(lang);
    try {
      localStorage.setItem(LANG_KEY, lang);
    } catch {
      /* private browsing: the choice lasts this page only */
    }
    route();
  });
  document.getElementById('logout').addEventListener('click', async () => {
    try {
      await api('POST', '/console/logout', {});
    } catch {
      /* the session is gone either way */
    }
    ctx.loggedIn(null);
    ctx.go('#/login');
  });
  setUnauthorizedHandler(() => {
    if (location.hash !== '#/login') ctx.after = location.hash;
    ctx.loggedIn(null);
    location.hash = '#/login';
  });
  window.addEventListener('hashchange', route);
  window.addEventListener('beforeunload', (e) => {
    if (ctx.unsaved?.()) e.preventDefault();
  });
  try {
    const { data } = await api('GET', '/console/session');
    if (data?.csrf_token) ctx.loggedIn(data);
  } catch {
    /* not logged in */
  }
  route();
}

boot();
