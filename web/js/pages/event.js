// Event detail: performances with their sale windows and a countdown to the opening, grades
// and prices, and the way in (the waiting room when the performance has one).

import { api } from '../api.js';
import { t } from '../i18n.js';
import { countdown, dateTime, h, statusText, title, won } from '../ui.js';
import { name } from './home.js';

export async function loadEvent(id) {
  return api(`/api/v1/events/${encodeURIComponent(id)}`);
}

function eventName(e) {
  if (e.home_team && e.away_team) return t('vs', { home: name(e.home_team), away: name(e.away_team) });
  return e.title;
}
export { eventName };

function performance(e, p) {
  const li = h('li', { class: 'perf', dataset: { performance: p.id } });
  li.append(
    h('span', { class: 'perf-time' }, dateTime(p.starts_at)),
    h('span', { class: `badge status-${p.status}` }, statusText(p.status)));
  // What the seat service last told the catalog (a few seconds behind at most).
  if (p.status === 'on_sale' && p.remaining) {
    li.append(h('span', { class: 'remaining' }, t('remaining_seats', { n: p.remaining.total.toLocaleString() })));
  }
  const windows = h('ul', { class: 'windows' },
    (p.sale_windows || []).map((w) =>
      h('li', {}, t('sale_window', { name: w.name || w.kind, from: dateTime(w.opens_at), to: dateTime(w.closes_at) }))));
  li.append(windows);
  const target = e.waiting_room ? `/queue/${p.id}?event=${e.id}` : `/seats/${p.id}?event=${e.id}`;
  const book = h('a', { class: 'button primary', href: target, 'data-book': p.id }, t('book'));
  if (p.status === 'on_sale') {
    li.append(book);
  } else if (p.status === 'scheduled') {
    const next = (p.sale_windows || []).map((w) => w.opens_at).filter((o) => new Date(o) > new Date()).sort()[0]
      || p.sale_opens_at;
    if (next) {
      const cd = h('p', { class: 'countdown', role: 'timer', 'aria-live': 'off' });
      li.append(cd);
      countdown(cd, next, (left) => t('sale_opens_in', { t: left }), () => {
        cd.textContent = statusText('on_sale');
        li.append(book);
      });
    }
  }
  return li;
}

export async function render(main, [id]) {
  const e = await loadEvent(id);
  const grades = new Map((e.grades || []).map((g) => [g.code, g]));
  main.append(
    title(eventName(e)),
    h('p', { class: 'venue' }, `${name(e.venue)} · ${e.venue.city || ''}`),
    e.description && h('p', { class: 'description' }, e.description),
    e.waiting_room && h('p', { class: 'note' }, t('waiting_room_note')),
    h('h2', {}, t('performances')),
    h('ul', { class: 'perfs' }, (e.performances || []).map((p) => performance(e, p))),
    h('h2', {}, t('prices')),
    h('table', { class: 'prices' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, t('grade')), h('th', { scope: 'col' }, t('price')))),
      h('tbody', {}, (e.price_tiers || []).map((p) => {
        const g = grades.get(p.grade);
        return h('tr', {},
          h('th', { scope: 'row' }, h('span', { class: 'swatch', dataset: { color: g ? g.color : '' } }), g ? name(g) : p.name),
          h('td', {}, won(p.price_krw)));
      }))));
  paintSwatches(main);
}

/** Colours swatches from data-color (no inline style attributes: the CSP forbids them). */
export function paintSwatches(root) {
  for (const s of root.querySelectorAll('.swatch[data-color]')) {
    if (/^#[0-9a-fA-F]{6}$/.test(s.dataset.color)) s.style.backgroundColor = s.dataset.color;
  }
}
