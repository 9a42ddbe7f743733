// The waiting room: join (POST), then poll the status at the pace the server says
// (poll_after_ms) until admitted; the admission pass is kept for this tab and sent as
// X-Admission-Pass on the seat map, its stream and the hold.

import { api } from '../api.js';
import { t } from '../i18n.js';
import { h, onLeave, showProblem, span, title } from '../ui.js';

/** The admission pass this tab holds for `perf` (unexpired), or null. */
export function passFor(perf) {
  try {
    const saved = JSON.parse(sessionStorage.getItem(`pass:${perf}`) || 'null');
    if (saved && (!saved.expires || new Date(saved.expires) > new Date())) return saved.pass;
  } catch {
    // a damaged entry is as good as none
  }
  return null;
}

export function passHeaders(perf) {
  const pass = passFor(perf);
  return pass ? { 'X-Admission-Pass': pass } : {};
}

function keepPass(perf, s) {
  sessionStorage.setItem(`pass:${perf}`, JSON.stringify({ pass: s.admission_pass, expires: s.pass_expires_at }));
}

export async function render(main, [perf], query) {
  if (!window.boxoffice.requireLogin()) return;
  const event = query.get('event') || '';
  const seatsUrl = `/seats/${perf}?event=${encodeURIComponent(event)}`;
  if (passFor(perf)) {
    window.boxoffice.navigate(seatsUrl, { replace: true });
    return;
  }
  const position = h('p', { class: 'queue-position', id: 'queue-position' });
  const ahead = h('p', { id: 'queue-ahead' });
  const eta = h('p', { id: 'queue-eta' });
  const bar = h('progress', { id: 'queue-progress', max: '100', value: '0', 'aria-label': t('queue_position') });
  const state = h('p', { id: 'queue-state', role: 'status' });
  const leaveBtn = h('button', { type: 'button', id: 'queue-leave' }, t('queue_leave'));
  main.append(title(t('queue_title')),
    h('section', { class: 'queue', 'aria-labelledby': 'page-title' },
      h('h2', {}, t('queue_position')), position, ahead, eta, bar, state, leaveBtn));

  let stopped = false;
  let timer = null;
  let token = null;
  let first = null;
  onLeave(() => {
    stopped = true;
    clearTimeout(timer);
  });

  const show = (s) => {
    if (s.prequeue) {
      position.textContent = '–';
      ahead.textContent = '';
      eta.textContent = '';
      state.textContent = t('queue_prequeue');
    } else if (s.status === 'waiting') {
      position.textContent = String(s.position ?? '–');
      ahead.textContent = t('queue_ahead', { n: (s.ahead ?? 0).toLocaleString() });
      eta.textContent = t('queue_eta', { t: span((s.eta_seconds || 0) * 1000) });
      if (first === null && s.ahead) first = s.ahead;
      bar.value = first ? Math.round(100 * (1 - (s.ahead || 0) / first)) : 0;
    }
  };

  const handle = (s) => {
    if (stopped) return;
    show(s);
    if (s.status === 'admitted' && s.admission_pass) {
      keepPass(perf, s);
      bar.value = 100;
      state.textContent = t('queue_admitted');
      window.boxoffice.navigate(seatsUrl, { replace: true });
      return;
    }
    if (s.status === 'expired') {
      state.textContent = t('queue_expired');
      main.append(h('a', { class: 'button', href: location.pathname + location.search }, t('queue_again')));
      return;
    }
    timer = setTimeout(poll, Math.max(250, s.poll_after_ms || 1000));
  };

  const poll = async () => {
    if (stopped) return;
    try {
      handle(await api(`/api/v1/performances/${perf}/queue/${encodeURIComponent(token)}`));
    } catch (e) {
      showProblem(e);
      if (e.code === 'rate_limited' || e.status >= 500 || e.status === 0) {
        const wait = ((e.body && e.body.retry_after_secs) || 2) * 1000;
        timer = setTimeout(poll, wait);
      }
    }
  };

  leaveBtn.addEventListener('click', async () => {
    stopped = true;
    clearTimeout(timer);
    if (token) await api(`/api/v1/performances/${perf}/queue/${encodeURIComponent(token)}`, { method: 'DELETE' }).catch(() => {});
    window.boxoffice.navigate(event ? `/events/${event}` : '/');
  });

  try {
    const joined = await api(`/api/v1/performances/${perf}/queue`, { method: 'POST' });
    token = joined.queue_token;
    handle(joined);
  } catch (e) {
    if (e.code === 'no_waiting_room') {
      window.boxoffice.navigate(seatsUrl, { replace: true });
      return;
    }
    showProblem(e);
  }
}
