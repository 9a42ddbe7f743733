// The seat map: the venue drawn from the catalog's geometry (sections first, coloured by
// grade, with a legend and what is left), then the seats of one section as buttons. The seat
// stream patches only the seats that changed; a seat someone else takes is unselected at once.

import { api, stream } from '../api.js';
import { t } from '../i18n.js';
import { h, onLeave, showProblem, svg, title, won } from '../ui.js';
import { eventName, loadEvent, paintSwatches } from './event.js';
import { name } from './home.js';
import { passHeaders } from './queue.js';

const LETTERS = { a: 'available', h: 'held', s: 'sold' };

export async function render(main, [perf], query) {
  if (!window.boxoffice.requireLogin()) return;
  const started = performance.now();
  const eventId = query.get('event');
  const event = await loadEvent(eventId);
  const venue = await api(`/api/v1/venues/${event.venue.id}?seats=false`);
  const headers = passHeaders(perf);
  let map;
  try {
    map = await api(`/api/v1/performances/${perf}/seats`, { headers });
  } catch (e) {
    if (e.code === 'admission_required' && event.waiting_room) {
      sessionStorage.removeItem(`pass:${perf}`);
      window.boxoffice.navigate(`/queue/${perf}?event=${eventId}`, { replace: true });
      return;
    }
    throw e;
  }

  const grades = new Map((event.grades || venue.grades || []).map((g) => [g.code, g]));
  const prices = new Map((event.price_tiers || []).map((p) => [p.grade, p.price_krw]));
  const limit = event.ticket_limit || 4;
  const seats = new Map();
  const order = [];
  const sections = new Map();
  // A table (테이블석) is held whole; a companion seat (동반석) only with its wheelchair seat.
  const tables = new Map();
  const companions = new Map();
  for (const s of map.seats) {
    if (s.table) tables.set(s.table, [...(tables.get(s.table) || []), s.id]);
    if (s.companion_of) companions.set(s.companion_of, s.id);
  }
  for (const s of map.seats) {
    seats.set(s.id, { ...s, el: null });
    order.push(s.id);
    let sec = sections.get(s.section);
    if (!sec) {
      sec = { code: s.section, grade: s.grade, ids: [], available: 0 };
      sections.set(s.section, sec);
    }
    sec.ids.push(s.id);
    if (s.status === 'available') sec.available += 1;
  }
  const remaining = { ...(map.remaining || {}) };
  const selected = new Set();
  let current = null;

  // --- the page's parts
  const live = h('p', { class: 'live', id: 'live', role: 'status' });
  const legend = h('ul', { class: 'legend', 'aria-label': t('legend') });
  const overview = h('div', { class: 'overview' });
  const sectionView = h('section', { class: 'section-view', hidden: true, 'aria-labelledby': 'section-title' });
  const summary = h('p', { id: 'selection', 'aria-live': 'polite' });
  const holdBtn = h('button', { type: 'button', class: 'primary', id: 'hold', disabled: true }, t('hold_seats'));
  const bar = h('div', { class: 'selection-bar' }, summary, holdBtn);
  main.append(title(`${t('seats_title')} · ${eventName(event)}`), live, legend, overview, sectionView, bar);

  const gradeName = (code) => (grades.get(code) ? name(grades.get(code)) : code);
  const stateName = (s) => t(`seat_${s}`);

  function drawLegend() {
    legend.textContent = '';
    for (const [code, g] of grades) {
      if (!(code in remaining) && !prices.has(code)) continue;
      legend.append(h('li', { dataset: { grade: code } },
        h('span', { class: 'swatch', dataset: { color: g.color || '' } }),
        h('span', {}, `${name(g)} ${prices.has(code) ? won(prices.get(code)) : ''}`),
        h('span', { class: 'left' }, ` · ${t('remaining')} ${(remaining[code] ?? 0).toLocaleString()}`)));
    }
    legend.append(
      h('li', {}, h('span', { class: 'swatch seat-available' }), t('legend_available')),
      h('li', {}, h('span', { class: 'swatch seat-taken' }), t('legend_taken')),
      h('li', {}, h('span', { class: 'swatch seat-selected' }), t('legend_selected')));
    paintSwatches(legend);
  }

  function sectionLabel(sec) {
    return t('section_label', { name: sec.code, grade: gradeName(sec.grade), n: sec.available });
  }

  const sectionButtons = new Map();
  const polygons = new Map();
  function drawOverview() {
    const plan = venue.plan || { width: 1000, height: 1000 };
    const drawing = svg('svg', {
      viewBox: `0 0 ${plan.width} ${plan.height}`, class: 'venue-map', role: 'img', 'aria-label': name(venue),
    });
    if (plan.field) {
      drawing.append(svg('polygon', { points: plan.field.map((p) => p.join(',')).join(' '), class: 'field' }));
    }
    for (const area of venue.areas || []) {
      const poly = area.geometry && area.geometry.polygon;
      const sec = sections.get(area.code);
      if (!poly) continue;
      const g = grades.get(area.grade);
      const shape = svg('polygon', {
        points: poly.map((p) => p.join(',')).join(' '),
        fill: g && g.color ? g.color : '#888',
        class: sec ? 'area' : 'area standing',
        'data-section': area.code,
        onclick: () => sec && openSection(area.code),
      });
      polygons.set(area.code, shape);
      drawing.append(shape);
    }
    const list = h('ul', { class: 'section-list', 'aria-label': t('sections') });
    const sorted = [...sections.values()].sort((a, b) => a.code.localeCompare(b.code, undefined, { numeric: true }));
    for (const sec of sorted) {
      const g = grades.get(sec.grade);
      const b = h('button', {
        type: 'button', class: 'section-button', 'data-section': sec.code,
        onclick: () => openSection(sec.code),
      }, h('span', { class: 'swatch', dataset: { color: g ? g.color : '' } }), sec.code,
      h('span', { class: 'sr-only label' }, ''),
      h('span', { class: 'count' }, String(sec.available)));
      sectionButtons.set(sec.code, b);
      list.append(h('li', {}, b));
    }
    overview.append(h('h2', {}, t('sections')), drawing, list, bestAvailable());
    paintSwatches(list);
    for (const sec of sections.values()) paintSection(sec);
  }

  /** "Best available": a grade and a quantity, the seat service picks (adjacent when it can). */
  function bestAvailable() {
    const grade = h('select', { id: 'best-grade', name: 'grade' },
      [...prices.keys()].filter((c) => grades.has(c) && [...sections.values()].some((x) => x.grade === c))
        .map((c) => h('option', { value: c }, `${gradeName(c)} ${won(prices.get(c))}`)));
    const quantity = h('select', { id: 'best-quantity', name: 'quantity' },
      Array.from({ length: limit }, (_, i) => h('option', { value: String(i + 1) }, String(i + 1))));
    const form = h('form', { class: 'best', id: 'best-form' },
      h('h2', {}, t('best_available')),
      h('label', { for: 'best-grade' }, t('grade'), grade),
      h('label', { for: 'best-quantity' }, t('quantity'), quantity),
      h('button', { type: 'submit' }, t('best_available')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      hold({ performance_id: perf, grade: grade.value, quantity: Number(quantity.value) });
    });
    return form;
  }

  function paintSection(sec) {
    const b = sectionButtons.get(sec.code);
    if (b) {
      // The accessible name is the button's text: "101" + the hidden words + the count.
      b.querySelector('.label').textContent = ` ${sectionLabel(sec)} `;
      b.querySelector('.count').textContent = String(sec.available);
      b.classList.toggle('soldout', sec.available === 0);
    }
    const p = polygons.get(sec.code);
    if (p) p.classList.toggle('soldout', sec.available === 0);
  }

  function seatPost(s) {
    const state = selected.has(s.id) ? 'selected' : s.status;
    return t('seat_post', { grade: gradeName(s.grade), state: stateName(state) });
  }

  function paintSeat(s) {
    if (!s.el) return;
    const sel = selected.has(s.id);
    s.el.className = `seat seat-${s.status}${sel ? ' seat-selected' : ''}`;
    s.el.dataset.status = s.status;
    s.el.disabled = s.status !== 'available' && !sel;
    s.el.setAttribute('aria-pressed', sel ? 'true' : 'false');
    s.el.lastChild.textContent = seatPost(s);
  }

  function openSection(code) {
    const sec = sections.get(code);
    if (!sec) return;
    if (current) for (const id of sections.get(current).ids) seats.get(id).el = null;
    current = code;
    sectionView.textContent = '';
    const rows = new Map();
    for (const id of sec.ids) {
      const s = seats.get(id);
      if (!rows.has(s.row)) rows.set(s.row, []);
      rows.get(s.row).push(s);
    }
    const grid = h('div', { class: 'seat-grid' });
    const rowLabels = [...rows.keys()].sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    for (const label of rowLabels) {
      const row = rows.get(label).sort((a, b) => a.number - b.number);
      const group = h('div', { class: 'seat-row', role: 'group', 'aria-label': `${label}` },
        h('span', { class: 'row-label', 'aria-hidden': 'true' }, label));
      for (const s of row) {
        // The accessible name is the text: hidden words around the visible seat number.
        s.el = h('button', { type: 'button', 'data-seat': s.id, onclick: () => toggle(s) },
          h('span', { class: 'sr-only' }, t('seat_pre', { section: s.section, row: s.row })),
          String(s.number), h('span', { class: 'sr-only' }, ''));
        paintSeat(s);
        group.append(s.el);
      }
      grid.append(group);
    }
    const back = h('button', { type: 'button', class: 'back', onclick: closeSection }, t('back_to_sections'));
    sectionView.append(
      h('h2', { id: 'section-title', tabindex: '-1' }, `${code} · ${gradeName(sec.grade)}`),
      back, grid);
    overview.hidden = true;
    sectionView.hidden = false;
    sectionView.querySelector('h2').focus();
  }

  function closeSection() {
    if (current) for (const id of sections.get(current).ids) seats.get(id).el = null;
    const was = current;
    current = null;
    sectionView.hidden = true;
    overview.hidden = false;
    const b = sectionButtons.get(was);
    if (b) b.focus();
  }

  function refreshSelection() {
    const amount = [...selected].reduce((sum, id) => sum + (prices.get(seats.get(id).grade) || 0), 0);
    summary.textContent = selected.size ? `${t('selected_seats', { n: selected.size })} · ${won(amount)}` : '';
    holdBtn.disabled = selected.size === 0;
  }

  /** The seats that go with `s`: its whole table, or a companion seat with its wheelchair seat. */
  function together(s) {
    if (s.table && tables.has(s.table)) return tables.get(s.table).map((id) => seats.get(id)).filter(Boolean);
    if (s.companion_of && seats.has(s.companion_of)) return [seats.get(s.companion_of), s];
    return [s];
  }

  function toggle(s) {
    const group = together(s);
    if (selected.has(s.id)) {
      // Letting a wheelchair seat go lets its companion go too.
      const companion = seats.get(companions.get(s.id));
      for (const m of companion ? [...group, companion] : group) {
        selected.delete(m.id);
        paintSeat(m);
      }
    } else if (s.status === 'available') {
      const adding = group.filter((m) => !selected.has(m.id));
      if (adding.some((m) => m.status !== 'available')) {
        showProblem({ code: s.table ? 'table_sold_whole' : 'companion_requires_wheelchair', body: {} });
        return;
      }
      if (selected.size + adding.length > limit) {
        showProblem({ code: 'limit_exceeded', body: {} });
        return;
      }
      for (const m of adding) {
        selected.add(m.id);
        paintSeat(m);
      }
    }
    paintSeat(s);
    refreshSelection();
  }

  function setStatus(id, status) {
    const s = seats.get(id);
    if (!s || s.status === status) return;
    const sec = sections.get(s.section);
    if (s.status === 'available') {
      sec.available -= 1;
      remaining[s.grade] = (remaining[s.grade] || 1) - 1;
    }
    if (status === 'available') {
      sec.available += 1;
      remaining[s.grade] = (remaining[s.grade] || 0) + 1;
    }
    s.status = status;
    if (status !== 'available' && selected.has(id) && !holding) {
      selected.delete(id);
      showProblem({ code: 'seat_unavailable', body: {} });
      refreshSelection();
    }
    paintSeat(s);
    paintSection(sec);
    dirtyLegend = true;
  }

  let dirtyLegend = false;
  const legendTimer = setInterval(() => {
    if (dirtyLegend) {
      dirtyLegend = false;
      drawLegend();
    }
  }, 1000);
  onLeave(() => clearInterval(legendTimer));

  const stop = stream(`/api/v1/performances/${perf}/seats/stream`, headers, (type, data) => {
    let body;
    try {
      body = JSON.parse(data);
    } catch {
      return;
    }
    if (type === 'snapshot' && typeof body.status === 'string') {
      if (body.status.length !== order.length) return;
      for (let i = 0; i < order.length; i += 1) {
        const status = LETTERS[body.status[i]];
        if (status && seats.get(order[i]).status !== status) setStatus(order[i], status);
      }
    } else if (type === 'delta') {
      for (const s of body.seats || []) setStatus(s.id, s.status);
    }
    live.dataset.version = String(body.version ?? '');
  }, (state, err) => {
    live.textContent = state === 'open' ? t('live_on') : t('live_off');
    live.dataset.state = state;
    if (err && err.code) showProblem(err);
  });
  onLeave(stop);

  let holding = false;
  holdBtn.addEventListener('click', () => hold({ performance_id: perf, seat_ids: [...selected] }));
  async function hold(body) {
    holding = true;
    holdBtn.disabled = true;
    try {
      const hold = await api('/api/v1/holds', { method: 'POST', headers, body });
      sessionStorage.setItem(`hold:${hold.hold_id}`, JSON.stringify({ perf, event: eventId }));
      window.boxoffice.navigate(`/checkout/${hold.hold_id}?event=${eventId}&perf=${perf}`);
    } catch (e) {
      holding = false;
      if (e.code === 'seat_unavailable') {
        for (const id of e.body.seat_ids || []) {
          selected.delete(id);
          setStatus(id, 'held');
        }
        refreshSelection();
      }
      showProblem(e);
      holdBtn.disabled = selected.size === 0;
    }
  }

  drawLegend();
  drawOverview();
  // How long the map took to open (the event, the venue, every seat's state, the drawing).
  main.dataset.seatMapMs = String(Math.round(performance.now() - started));
}
