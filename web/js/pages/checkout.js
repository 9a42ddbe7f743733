// Checkout: the hold with its countdown, the order (POST /api/v1/orders with an
// Idempotency-Key kept per hold, so a retry never makes a second order), the PG's hosted page
// (the fake PG in sandbox mode), and the success/fail pages the PG sends the browser back to.

import { api, newKey, session } from '../api.js';
import { t } from '../i18n.js';
import { countdown, h, notify, showProblem, title, won } from '../ui.js';

function keyFor(kind, id) {
  const name = `key:${kind}:${id}`;
  let key = sessionStorage.getItem(name);
  if (!key) {
    key = newKey();
    sessionStorage.setItem(name, key);
  }
  return key;
}

/** The PG's checkout page for `payment` (the sandbox's; the real Toss SDK is not wired). */
export function checkoutUrl(payment) {
  const q = new URLSearchParams({
    orderId: payment.order_id,
    amount: String(payment.amount),
    orderName: payment.order_name || 'Boxoffice',
    successUrl: `${location.origin}/pay/success`,
    failUrl: `${location.origin}/pay/fail`,
  });
  return `/sandbox/pg/checkout?${q}`;
}

export async function render(main, [holdId], query) {
  if (!window.boxoffice.requireLogin()) return;
  const hold = await api(`/api/v1/holds/${encodeURIComponent(holdId)}`);
  const perf = query.get('perf') || hold.performance_id;
  const event = query.get('event') || '';
  const timer = h('p', { class: 'countdown', id: 'hold-timer', role: 'timer', 'aria-live': 'off' });
  const pay = h('button', { type: 'button', class: 'primary', id: 'pay' }, t('pay'));
  const release = h('button', { type: 'button', id: 'release' }, t('release'));
  main.append(title(t('hold_title')),
    h('section', { class: 'checkout' },
      h('ul', { class: 'held-seats' }, (hold.seat_ids || []).map((id) => h('li', {}, id))),
      h('p', { class: 'amount' }, `${t('amount')}: `, h('strong', { id: 'amount' }, won(hold.amount_krw))),
      timer, h('div', { class: 'actions' }, pay, release)));
  const ended = ['expired', 'released', 'sold', 'returned'].includes(hold.status);
  if (ended) {
    showProblem({ code: `hold_${hold.status === 'sold' ? 'sold' : hold.status === 'released' ? 'released' : 'expired'}`, body: {} });
    pay.disabled = true;
    release.disabled = true;
    main.append(h('a', { class: 'button', href: `/seats/${perf}?event=${event}` }, t('seats_title')));
    return;
  }
  countdown(timer, hold.expires_at, (left) => t('hold_expires_in', { t: left }), () => {
    pay.disabled = true;
    showProblem({ code: 'hold_expired', body: {} });
  });
  pay.addEventListener('click', async () => {
    pay.disabled = true;
    try {
      const order = await api('/api/v1/orders', {
        method: 'POST',
        body: { hold_id: holdId },
        headers: { 'Idempotency-Key': keyFor('order', holdId) },
      });
      if (!order.payment) {
        window.boxoffice.navigate('/bookings');
        return;
      }
      sessionStorage.setItem(`order:${order.order_id}`, JSON.stringify({ hold: holdId, perf, event }));
      if (!session.sandbox) {
        notify('The PG checkout outside sandbox mode is not wired into this UI yet.', 'error');
        pay.disabled = false;
        return;
      }
      notify(t('pay_redirecting'));
      location.assign(checkoutUrl(order.payment));
    } catch (e) {
      showProblem(e);
      pay.disabled = false;
    }
  });
  release.addEventListener('click', async () => {
    try {
      await api(`/api/v1/holds/${encodeURIComponent(holdId)}`, { method: 'DELETE' });
      window.boxoffice.navigate(`/seats/${perf}?event=${event}`);
    } catch (e) {
      showProblem(e);
    }
  });
}

function resultPage(main, ok, text, order) {
  main.append(
    title(ok ? t('result_ok') : t('result_fail')),
    h('p', { class: ok ? 'result ok' : 'result fail', id: 'result', 'data-ok': String(ok) }, text || ''),
    h('div', { class: 'actions' },
      h('a', { class: 'button primary', href: '/bookings' }, t('to_bookings')),
      !ok && order && order.hold && h('a', {
        class: 'button', href: `/checkout/${order.hold}?perf=${order.perf}&event=${order.event}`,
      }, t('try_again'))));
}

/** `/pay/success?paymentKey&orderId&amount`: confirm, then the result. */
export async function success(main, _p, query) {
  if (!window.boxoffice.requireLogin()) return;
  const paymentKey = query.get('paymentKey');
  const orderId = query.get('orderId');
  const amount = Number(query.get('amount'));
  const saved = JSON.parse(sessionStorage.getItem(`order:${orderId}`) || 'null');
  const wait = h('p', { role: 'status' }, t('confirming'));
  main.append(wait);
  try {
    let payment = await api('/api/v1/payments/confirm', {
      method: 'POST',
      body: { payment_key: paymentKey, order_id: orderId, amount },
      headers: { 'Idempotency-Key': keyFor('confirm', paymentKey) },
    });
    // 202: the PG's answer is not known yet; ask again at the pace it allows.
    for (let i = 0; payment && payment.status === 'pending' && i < 30; i += 1) {
      await new Promise((r) => setTimeout(r, 1000));
      payment = await api(`/api/v1/payments/${encodeURIComponent(orderId)}`);
    }
    wait.remove();
    resultPage(main, true, `${won(payment.amount)} · ${t(`order_status_${payment.order_status}`)}`, saved);
  } catch (e) {
    wait.remove();
    resultPage(main, false, '', saved);
    showProblem(e);
  }
}

/** `/pay/fail?code&message&orderId`: the PG's refusal, in our words. */
export async function fail(main, _p, query) {
  const code = query.get('code') || 'payment_declined';
  const saved = JSON.parse(sessionStorage.getItem(`order:${query.get('orderId')}`) || 'null');
  resultPage(main, false, '', saved);
  showProblem({ code, body: {}, message: query.get('message') || code });
}
