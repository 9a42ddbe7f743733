// My bookings: orders with their tickets (entry code and QR code) and cancellation.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { dateTime, h, notify, onLeave, showProblem, title, won } from '../ui.js';

function ticketItem(ticket, n) {
  const code = h('code', { class: 'ticket-code' });
  const qr = h('div', { class: 'qr' });
  const show = h('button', { type: 'button', class: 'show-qr', 'aria-expanded': 'false' }, t('show_qr'));
  show.addEventListener('click', async () => {
    if (show.getAttribute('aria-expanded') === 'true') {
      show.setAttribute('aria-expanded', 'false');
      qr.textContent = '';
      return;
    }
    try {
      const full = await api(`/api/v1/tickets/${encodeURIComponent(ticket.ticket_id)}`);
      code.textContent = full.code || '';
      qr.textContent = '';
      qr.append(h('img', {
        src: `/api/v1/tickets/${encodeURIComponent(ticket.ticket_id)}/qr.svg?v=${Date.now()}`,
        alt: `${t('ticket', { n })} QR`, width: '180', height: '180',
      }));
      show.setAttribute('aria-expanded', 'true');
    } catch (e) {
      showProblem(e);
    }
  });
  return h('li', { class: `ticket ticket-${ticket.status}`, 'data-ticket': ticket.ticket_id },
    h('span', {}, `${t('ticket', { n })} · ${ticket.seat_id || ticket.area_id || ''}`),
    ticket.status === 'valid' ? show : h('span', { class: 'badge' }, ticket.status), code, qr);
}

function orderItem(o, reload) {
  const li = h('li', { class: `order order-${o.status}`, 'data-order': o.order_id, 'data-status': o.status });
  li.append(
    h('h2', {}, `${t(`order_status_${o.status}`)} · ${won(o.amount)}`),
    h('p', { class: 'meta' }, `${dateTime(o.created_at)} · ${(o.seat_ids || []).join(', ')}`));
  if (o.tickets && o.tickets.length) {
    li.append(h('h3', {}, t('tickets')), h('ul', { class: 'tickets' }, o.tickets.map((tk, i) => ticketItem(tk, i + 1))));
  }
  const cancel = o.actions && o.actions.cancel;
  if (cancel && cancel.allowed) {
    const first = h('button', { type: 'button', class: 'cancel' }, t('cancel_order'));
    first.addEventListener('click', () => {
      const sure = h('button', { type: 'button', class: 'danger confirm-cancel' },
        t('cancel_confirm', { amount: won(cancel.refund_krw) }));
      sure.addEventListener('click', async () => {
        sure.disabled = true;
        try {
          await api(`/api/v1/orders/${encodeURIComponent(o.order_id)}/cancel`, { method: 'POST' });
          notify(t('cancelled_ok'));
          await reload();
        } catch (e) {
          showProblem(e);
          sure.disabled = false;
        }
      });
      first.replaceWith(sure);
      sure.focus();
    });
    li.append(first);
  }
  return li;
}

export async function render(main) {
  if (!window.boxoffice.requireLogin()) return;
  const list = h('ul', { class: 'orders', id: 'orders' });
  main.append(title(t('bookings_title')), list);
  let timer = null;
  onLeave(() => clearTimeout(timer));
  const reload = async () => {
    clearTimeout(timer);
    const page = await api('/api/v1/me/orders?limit=50');
    list.textContent = '';
    if (!page.orders.length) list.append(h('li', {}, t('no_bookings')));
    for (const o of page.orders) list.append(orderItem(o, reload));
    // Tickets are issued and refunds made just after: look again while an order is on its way.
    if (page.orders.some((o) => ['paid', 'refunding'].includes(o.status))) {
      timer = setTimeout(() => reload().catch(showProblem), 1500);
    }
  };
  await reload();
}
