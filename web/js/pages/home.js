// Home (upcoming events by date, team and kind filters) and search.

import { api } from '../api.js';
import { getLang, t } from '../i18n.js';
import { dateTime, dayKey, h, loading, statusText, title, won } from '../ui.js';

const TEAMS = ['lg', 'doosan', 'kiwoom', 'ssg', 'kt', 'hanwha', 'kia', 'samsung', 'nc', 'lotte'];
const TEAM_NAMES = {
  lg: ['LG 트윈스', 'LG Twins'], doosan: ['두산 베어스', 'Doosan Bears'], kiwoom: ['키움 히어로즈', 'Kiwoom Heroes'],
  ssg: ['SSG 랜더스', 'SSG Landers'], kt: ['KT 위즈', 'KT Wiz'], hanwha: ['한화 이글스', 'Hanwha Eagles'],
  kia: ['KIA 타이거즈', 'KIA Tigers'], samsung: ['삼성 라이온즈', 'Samsung Lions'], nc: ['NC 다이노스', 'NC Dinos'],
  lotte: ['롯데 자이언츠', 'Lotte Giants'],
};
const KINDS = ['baseball', 'concert', 'musical', 'exhibition'];
const KIND_NAMES = {
  baseball: ['야구', 'Baseball'], concert: ['콘서트', 'Concerts'], musical: ['뮤지컬', 'Musicals'],
  exhibition: ['전시', 'Exhibitions'], theatre: ['연극', 'Theatre'],
};

const pick = (pair) => (getLang() === 'en' ? pair[1] : pair[0]);

export function name(obj) {
  if (!obj) return '';
  return getLang() === 'en' && obj.name_en ? obj.name_en : obj.name;
}

function eventTitle(e) {
  if (e.home_team && e.away_team) return t('vs', { home: name(e.home_team), away: name(e.away_team) });
  return e.title;
}

function card(e) {
  const range = e.price_range ? `${won(e.price_range[0])} – ${won(e.price_range[1])}` : '';
  return h('li', { class: 'card' },
    h('a', { href: `/events/${e.id}`, class: 'card-link' },
      h('span', { class: 'card-title' }, eventTitle(e)),
      h('span', { class: 'card-meta' }, `${dateTime(e.starts_at)} · ${name(e.venue)}`),
      h('span', { class: `badge status-${e.status}` }, statusText(e.status)),
      range && h('span', { class: 'card-price' }, range)));
}

function byDay(list, items) {
  let current = null;
  let ul = null;
  for (const e of items) {
    const key = dayKey(e.starts_at);
    if (key !== current) {
      current = key;
      list.append(h('h2', { class: 'day' }, key));
      ul = h('ul', { class: 'cards' });
      list.append(ul);
    }
    ul.append(card(e));
  }
}

async function listing(list, params, more) {
  const q = new URLSearchParams(params);
  q.set('limit', '30');
  const page = await api(`/api/v1/events?${q}`);
  if (!page.items.length && !params.cursor) list.append(h('p', {}, t('no_events')));
  byDay(list, page.items);
  more.hidden = !page.next_cursor;
  more.onclick = async () => {
    more.disabled = true;
    await listing(list, { ...params, cursor: page.next_cursor }, more);
    more.disabled = false;
  };
}

export async function render(main, _params, query) {
  const team = query.get('team') || '';
  const kind = query.get('kind') || '';
  const select = (id, label, values, names, current) =>
    h('label', { for: id }, label,
      h('select', { id, name: id },
        h('option', { value: '' }, t('all')),
        values.map((v) => h('option', { value: v, selected: v === current }, pick(names[v])))));
  const form = h('form', { class: 'filters', method: 'get', action: '/' },
    select('team', t('filter_team'), TEAMS, TEAM_NAMES, team),
    select('kind', t('filter_kind'), KINDS, KIND_NAMES, kind),
    h('button', { type: 'submit' }, t('search')));
  form.addEventListener('change', () => form.requestSubmit());
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    if (form.team.value) q.set('team', form.team.value);
    if (form.kind.value) q.set('kind', form.kind.value);
    const { navigate } = window.boxoffice;
    navigate(q.toString() ? `/?${q}` : '/');
  });
  const list = h('section', { class: 'listing', 'aria-live': 'polite' }, loading());
  const more = h('button', { type: 'button', class: 'more', hidden: true }, t('more'));
  main.append(title(t('upcoming')), form, list, more);
  const params = {};
  if (team) params.team = team;
  if (kind) params.kind = kind;
  list.textContent = '';
  await listing(list, params, more);
}

export async function search(main, _params, query) {
  const q = query.get('q') || '';
  const input = h('input', {
    type: 'search', id: 'q', name: 'q', value: q, placeholder: t('search_placeholder'), autocomplete: 'off',
  });
  const form = h('form', { class: 'search', role: 'search', method: 'get', action: '/search' },
    h('label', { for: 'q' }, t('search_label')), input, h('button', { type: 'submit' }, t('search')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    window.boxoffice.navigate(`/search?q=${encodeURIComponent(input.value.trim())}`);
  });
  main.append(title(t('nav_search')), form);
  if (!q) return;
  const list = h('section', { class: 'listing', 'aria-label': t('search_results', { q }) });
  const more = h('button', { type: 'button', class: 'more', hidden: true }, t('more'));
  main.append(h('h2', {}, t('search_results', { q })), list, more);
  await listing(list, { q }, more);
}
