// Login: an API key traded for a session cookie (`POST /console/login`); the answer's CSRF
// token goes with every later change.

import { api } from './api.js';
import { h, mount } from './dom.js';
import { t } from './i18n.js';

export async function loginPage(el, ctx) {
  const error = h('p', { class: 'error', role: 'alert', 'data-testid': 'login-error', hidden: true });
  const key = h('input', {
    id: 'login-key', name: 'key', type: 'password', autocomplete: 'current-password', required: true,
    spellcheck: 'false', 'data-testid': 'login-key', 'aria-describedby': 'login-hint',
  });
  const submit = h('button', { type: 'submit', 'data-testid': 'login-submit' }, t('login.submit'));
  const form = h('form', { class: 'login card', 'data-testid': 'login-form', novalidate: true },
    h('h1', {}, t('login.title')),
    h('label', { for: 'login-key' }, t('login.key')),
    key,
    h('p', { id: 'login-hint', class: 'hint' }, t('login.hint')),
    error,
    submit);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    if (!key.value.trim()) {
      mount(error, t('login.missing'));
      error.hidden = false;
      key.focus();
      return;
    }
    submit.disabled = true;
    try {
      const { data } = await api('POST', '/console/login', { key: key.value.trim() });
      ctx.loggedIn(data);
      const after = ctx.after && ctx.after !== '#/login' ? ctx.after : '#/dashboard';
      ctx.after = null;
      ctx.go(after);
    } catch (err) {
      mount(error, err.status === 401 || err.status === 422 ? t('login.bad') : t('app.failed', { message: err.message }));
      error.hidden = false;
      key.select();
    } finally {
      submit.disabled = false;
    }
  });
  mount(el, form);
  setTimeout(() => key.focus(), 0);
}
