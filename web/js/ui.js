// Small DOM helpers: elements built with text nodes (never HTML from data), formatting in
// Seoul time, and one live region for messages.

import { getLang, problemMessage, t } from './i18n.js';

/** h('button', {class: 'x', onclick: f}, 'text', child) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const SVG = 'http://www.w3.org/2000/svg';

export function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

export function locale() {
  return getLang() === 'en' ? 'en-US' : 'ko-KR';
}

export function won(n) {
  return t('won', { n: Number(n || 0).toLocaleString(locale()) });
}

export function dateTime(iso) {
  return new Date(iso).toLocaleString(locale(), {
    timeZone: 'Asia/Seoul',
    month: 'short',
    day: 'numeric',
    weekday: 'short',
    hour: '2-digit',
    minute: '2-digit',
  });
}

export function dayKey(iso) {
  return new Date(iso).toLocaleDateString(locale(), {
    timeZone: 'Asia/Seoul',
    year: 'numeric',
    month: 'long',
    day: 'numeric',
    weekday: 'long',
  });
}

/** "3분 20초", "2일 4시간"… for a span in ms. */
export function span(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return t('days_hours', { d, h: hh });
  if (hh > 0) return t('hours_minutes', { h: hh, m });
  return t('minutes_seconds', { m, s: s % 60 });
}

/** A ticking countdown to `iso` in `el`; calls done() once at zero. Returns a stop function. */
export function countdown(el, iso, format, done) {
  const end = new Date(iso).getTime();
  let fired = false;
  const tick = () => {
    const left = end - Date.now();
    el.textContent = format(span(left));
    if (left <= 0 && !fired) {
      fired = true;
      clearInterval(timer);
      if (done) done();
    }
  };
  const timer = setInterval(tick, 1000);
  tick();
  cleanups.push(() => clearInterval(timer));
  return () => clearInterval(timer);
}

// What the current page started (timers, streams): stopped when the page changes.
let cleanups = [];
export function onLeave(f) {
  cleanups.push(f);
}
export function leave() {
  for (const f of cleanups) {
    try {
      f();
    } catch {
      // a failing cleanup must not keep the next page from rendering
    }
  }
  cleanups = [];
}

/** Shows a message in the page's alert region (role=alert for errors). */
export function notify(text, kind = 'info') {
  const region = document.getElementById(kind === 'error' ? 'alert' : 'status');
  if (!region) return;
  region.textContent = '';
  region.append(h('p', { class: `msg ${kind}`, 'data-kind': kind }, text));
}

export function clearNotice() {
  for (const id of ['alert', 'status']) {
    const r = document.getElementById(id);
    if (r) r.textContent = '';
  }
}

/** Shows a Problem's message; returns it. */
export function showProblem(p) {
  const text = problemMessage(p);
  notify(text, 'error');
  const region = document.getElementById('alert');
  if (region && region.firstChild) region.firstChild.dataset.code = p.code || '';
  return text;
}

export function loading() {
  return h('p', { class: 'loading', role: 'status' }, t('loading'));
}

export function title(text) {
  document.title = `${text} · ${t('brand')}`;
  return h('h1', { tabindex: '-1', id: 'page-title' }, text);
}

export function statusText(s) {
  return t(`status_${s}`) || s;
}
