// The page's shell: header, sandbox banner, language switch, and the client-side router over
// real paths (the gateway answers each UI path with this page).

import { session } from './api.js';
import { getLang, setLang, t } from './i18n.js';
import { clearNotice, h, leave, showProblem } from './ui.js';
import * as home from './pages/home.js';
import * as event from './pages/event.js';
import * as queue from './pages/queue.js';
import * as seats from './pages/seats.js';
import * as checkout from './pages/checkout.js';
import * as bookings from './pages/bookings.js';
import * as auth from './pages/auth.js';

const routes = [
  [/^\/$/, home.render],
  [/^\/search$/, home.search],
  [/^\/events\/([\w-]+)$/, event.render],
  [/^\/queue\/([\w-]+)$/, queue.render],
  [/^\/seats\/([\w-]+)$/, seats.render],
  [/^\/checkout\/([\w-]+)$/, checkout.render],
  [/^\/pay\/success$/, checkout.success],
  [/^\/pay\/fail$/, checkout.fail],
  [/^\/bookings$/, bookings.render],
  [/^\/login$/, auth.login],
  [/^\/signup$/, auth.signup],
  [/^\/account$/, auth.account],
];

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path);
  else history.pushState(null, '', path);
  route();
}

/** Sends the visitor to log in first, coming back here afterwards. */
export function requireLogin() {
  if (session.signedIn) return true;
  const next = location.pathname + location.search;
  navigate(`/login?next=${encodeURIComponent(next)}`, { replace: true });
  return false;
}

async function route() {
  leave();
  clearNotice();
  const main = document.getElementById('main');
  main.textContent = '';
  const query = new URLSearchParams(location.search);
  for (const [re, render] of routes) {
    const m = location.pathname.match(re);
    if (m) {
      try {
        await render(main, m.slice(1), query);
      } catch (e) {
        showProblem(e);
      }
      const heading = document.getElementById('page-title');
      if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
      return;
    }
  }
  main.append(h('h1', {}, t('not_found_page')));
}

function header() {
  const nav = document.getElementById('nav');
  nav.textContent = '';
  const link = (href, key) => h('a', { href, 'data-nav': key }, t(key));
  const items = [link('/', 'nav_home'), link('/search', 'nav_search')];
  if (session.signedIn) {
    items.push(link('/bookings', 'nav_bookings'), link('/account', 'nav_account'));
    items.push(
      h('button', {
        type: 'button',
        class: 'linklike',
        id: 'logout',
        onclick: async () => {
          try {
            await session.logout();
            navigate('/');
          } catch (e) {
            showProblem(e);
          }
        },
      }, t('nav_logout')),
    );
  } else {
    items.push(link('/login', 'nav_login'), link('/signup', 'nav_signup'));
  }
  items.push(
    h('button', {
      type: 'button',
      class: 'lang',
      id: 'lang',
      lang: getLang() === 'ko' ? 'en' : 'ko',
      onclick: () => {
        setLang(getLang() === 'ko' ? 'en' : 'ko');
        chrome();
        route();
      },
    }, t('lang_switch')),
  );
  nav.append(h('ul', {}, items.map((i) => h('li', {}, i))));
}

function chrome() {
  document.documentElement.lang = getLang();
  document.getElementById('skip').textContent = t('skip');
  document.getElementById('brand').textContent = t('brand');
  const banner = document.getElementById('sandbox');
  banner.hidden = !session.sandbox;
  banner.textContent = t('sandbox');
  header();
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || a.target || a.hasAttribute('download')) return;
  if (url.pathname.startsWith('/api/') || url.pathname.startsWith('/web/') || url.pathname.startsWith('/sandbox/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener('popstate', route);
window.boxoffice = { navigate, requireLogin };

async function boot() {
  setLang(getLang());
  try {
    await session.load();
  } catch (e) {
    showProblem(e);
  }
  session.listeners.push(chrome);
  chrome();
  await route();
  document.body.dataset.ready = 'true';
}

boot();
