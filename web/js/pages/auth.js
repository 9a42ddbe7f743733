// Sign up, log in (password or a social provider) and the account page. The session itself
// lives in HttpOnly cookies the gateway sets (/web/session/*): this page never sees a token.

import { api, session } from '../api.js';
import { t } from '../i18n.js';
import { h, notify, showProblem, title } from '../ui.js';

function field(id, label, attrs) {
  return h('div', { class: 'field' }, h('label', { for: id }, label), h('input', { id, name: id, ...attrs }));
}

function nextPath(query) {
  const next = query.get('next') || '/';
  // Only our own paths: never an open redirect.
  return next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

async function socialButtons() {
  let providers = [];
  try {
    providers = (await api('/api/v1/auth/oauth/providers')).providers || [];
  } catch {
    return null;
  }
  if (!providers.length) return null;
  return h('section', { class: 'social', 'aria-labelledby': 'social-title' },
    h('h2', { id: 'social-title' }, t('or_social')),
    h('ul', {}, providers.map((p) => h('li', {},
      h('a', { class: `button social-${p.name}`, href: `/web/session/oauth/${p.name}`, 'data-provider': p.name },
        t('login_with', { p: t(p.name) }), p.mode === 'sandbox' ? ` ${t('sandbox_provider')}` : '')))));
}

export async function login(main, _p, query) {
  const form = h('form', { class: 'auth', id: 'login-form', novalidate: true },
    field('email', t('email'), { type: 'email', autocomplete: 'email', required: true }),
    field('password', t('password'), { type: 'password', autocomplete: 'current-password', required: true }),
    h('button', { type: 'submit', class: 'primary' }, t('login_submit')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      await session.login(form.email.value.trim(), form.password.value);
      window.boxoffice.navigate(nextPath(query), { replace: true });
    } catch (e) {
      showProblem(e);
    }
  });
  main.append(title(t('login_title')), form, h('p', {}, h('a', { href: `/signup${location.search}` }, t('need_account'))));
  const social = await socialButtons();
  if (social) main.append(social);
  if (query.get('error')) showProblem({ code: query.get('error'), body: {} });
}

export async function signup(main, _p, query) {
  const form = h('form', { class: 'auth', id: 'signup-form', novalidate: true },
    field('name', t('name'), { type: 'text', autocomplete: 'name', required: true }),
    field('email', t('email'), { type: 'email', autocomplete: 'email', required: true }),
    field('password', t('password'), { type: 'password', autocomplete: 'new-password', required: true, minlength: '10' }),
    field('phone', t('phone'), { type: 'tel', autocomplete: 'tel' }),
    h('button', { type: 'submit', class: 'primary' }, t('signup_submit')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { name: form.name.value.trim(), email: form.email.value.trim(), password: form.password.value };
    if (form.phone.value.trim()) body.phone = form.phone.value.trim();
    try {
      await api('/api/v1/users', { method: 'POST', body });
      await session.login(body.email, body.password);
      window.boxoffice.navigate(nextPath(query), { replace: true });
    } catch (e) {
      const text = showProblem(e);
      if (e.body && Array.isArray(e.body.errors)) {
        notify(`${text} ${e.body.errors.map((x) => `${x.field}: ${x.message}`).join('; ')}`, 'error');
      }
    }
  });
  main.append(title(t('signup_title')), form, h('p', {}, h('a', { href: `/login${location.search}` }, t('have_account'))));
  const social = await socialButtons();
  if (social) main.append(social);
}

export async function account(main, _p, query) {
  if (!window.boxoffice.requireLogin()) return;
  const me = await api('/api/v1/users/me');
  main.append(title(t('account_title')),
    h('dl', { class: 'account' },
      h('dt', {}, t('name')), h('dd', { id: 'account-name' }, me.name),
      h('dt', {}, t('email')), h('dd', { id: 'account-email' }, me.email)),
    h('p', {}, h('a', { class: 'button', href: '/bookings' }, t('nav_bookings'))));
  if (query.get('signed_in')) notify(t('signed_in_as'));
}
