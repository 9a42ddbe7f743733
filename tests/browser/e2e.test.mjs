// End-to-end tests of the web UI: a standalone instance on free ports with a temporary data
// folder, driven in Debian's headless Chromium through playwright-core. Every wait is for a
// selector, a URL or a condition with a deadline — never a fixed sleep.
//
//   E2E_BOXOFFICE   the binary (default $CARGO_TARGET_DIR/debug/boxoffice)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   SCREENSHOTS     where screenshots go (default docs/screenshots at the repository root)

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const target = process.env.CARGO_TARGET_DIR || path.join(os.homedir(), '.cache/boxoffice/target');
const BIN = process.env.E2E_BOXOFFICE || path.join(target, 'debug/boxoffice');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = process.env.SCREENSHOTS || path.join(root, 'docs/screenshots');
const AXE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const ADMIN = { email: 'admin@e2e.test', password: 'e2e-admin-password-1' };
const PHONE = { width: 390, height: 844 };
const WAIT = 30_000;

let server;
let base;
let dataDir;
let browser;
let log = '';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it returns a truthy value or `ms` pass. */
async function until(what, check, ms = 120_000) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (server && server.exitCode !== null) throw new Error(`standalone exited while waiting for ${what}:\n${log.slice(-4000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
}

async function call(method, p, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${base}${p}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, body: json };
}

/** The environment without BOXOFFICE_* settings (the test run's own, e.g. BOXOFFICE_TEST_RUN,
 * would be read as configuration): the standalone runs on its defaults. */
function standaloneEnv() {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('BOXOFFICE_')));
  env.RUST_LOG = process.env.RUST_LOG || 'warn';
  // Re-publishing a 24,000-seat game (the waiting room below) can outlast the default 10 s on a
  // busy 2-core box.
  env.BOXOFFICE_GATEWAY__UPSTREAM_TIMEOUT_MS = '60000';
  return env;
}

before(async () => {
  const port = await freePort();
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'boxoffice-e2e-'));
  // The private PostgreSQL runs as `postgres` when we are root: let it into the folder.
  fs.chmodSync(dataDir, 0o777);
  base = `http://localhost:${port}`;
  server = spawn(BIN, ['standalone', '--port', String(port), '--data-dir', path.join(dataDir, 'data'),
    '--admin-email', ADMIN.email, '--admin-password', ADMIN.password], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: standaloneEnv(),
  });
  const keep = (d) => {
    log = (log + d.toString()).slice(-20_000);
  };
  server.stdout.on('data', keep);
  server.stderr.on('data', keep);
  await until('the standalone to be ready', async () => (await fetch(`${base}/readyz`)).ok, 240_000);
  await until('the seeded catalog', async () => {
    const r = await call('GET', '/api/v1/events?q=%EC%9E%A0%EC%8B%A4&on_sale=true&limit=50');
    return r.status === 200 && r.body.items.length > 0;
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  fs.mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server && server.exitCode === null) {
    const stopped = new Promise((r) => server.once('exit', r));
    process.kill(-server.pid, 'SIGTERM');
    await Promise.race([stopped, new Promise((r) => setTimeout(r, 30_000))]);
    if (server.exitCode === null) process.kill(-server.pid, 'SIGKILL');
  }
  if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
});

/**
 * When cancelling closes for a game under the default policy: 17:00 KST the day before it
 * (11:00 when that day is a Saturday). services/order/src/domain/policy.rs.
 */
function cancelCutoff(startsAt) {
  const seoul = new Date(new Date(startsAt).getTime() + 9 * 3600_000); // Seoul's wall clock
  const dayBefore = Date.UTC(seoul.getUTCFullYear(), seoul.getUTCMonth(), seoul.getUTCDate() - 1);
  const hour = new Date(dayBefore).getUTCDay() === 6 ? 11 : 17;
  return dayBefore + (hour - 9) * 3600_000;
}

/**
 * A Jamsil game on sale that starts at least six hours from now and can still be cancelled for
 * an hour (the journey cancels its paid order: a game of tomorrow made this test fail in the
 * Korean night, past its cut-off), put behind a waiting room.
 */
async function jamsilGame() {
  const r = await call('GET', '/api/v1/events?q=%EC%9E%A0%EC%8B%A4&on_sale=true&limit=50');
  const soon = Date.now() + 6 * 3600_000;
  const game = r.body.items.find((e) => e.venue.name_en.includes('Jamsil') && new Date(e.starts_at) > soon
    && cancelCutoff(e.starts_at) > Date.now() + 3600_000);
  assert.ok(game, `no Jamsil game on sale that can still be cancelled: ${JSON.stringify(r.body).slice(0, 500)}`);
  const login = await call('POST', '/api/v1/auth/login', { body: ADMIN });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  const token = login.body.access_token;
  if (!game.waiting_room) {
    // Repeating the change is harmless: until the event says it has a waiting room.
    await until('the event to take a waiting room', async () => {
      const patched = await call('PATCH', `/api/v1/admin/events/${game.id}`, { token, body: { waiting_room: true } });
      if (patched.status >= 400 && patched.status < 500) throw new Error(JSON.stringify(patched.body));
      return patched.status === 200 && patched.body.waiting_room;
    });
    // Both the waiting room and the seat service have the new revision.
    await until('the waiting room', async () => {
      const room = await call('GET', `/api/v1/admin/rooms/${game.performance_id}`, { token });
      const seats = await call('GET', `/api/v1/performances/${game.performance_id}/seats?format=compact`);
      return room.status === 200 && room.body.waiting_room && seats.status === 403 && seats.body.code === 'admission_required';
    });
  }
  return { ...game, adminToken: token };
}

async function axeCheck(page, name) {
  // Phone-sized: nothing makes the page scroll sideways (the seat grid scrolls inside itself).
  const [width, viewport] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  assert.ok(width <= viewport, `${name} is ${width} px wide in a ${viewport} px viewport`);
  await page.evaluate(AXE);
  const result = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`),
    [],
    `axe on ${name}`,
  );
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: false });
}

async function newPage() {
  const context = await browser.newContext({ viewport: PHONE, locale: 'ko-KR', timezoneId: 'Asia/Seoul' });
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy/.test(m.text())) errors.push(m.text());
  });
  page.errors = errors;
  return page;
}

async function ready(page) {
  await page.waitForSelector('body[data-ready="true"]');
}

async function signUp(page, who) {
  await page.goto(`${base}/signup`);
  await ready(page);
  await page.fill('#name', who.name);
  await page.fill('#email', who.email);
  await page.fill('#password', who.password);
  await page.click('#signup-form button[type=submit]');
  await page.waitForSelector('#logout');
}

/** From the event page through the waiting room to the seat map of `section`. */
async function toSeats(page, game, section) {
  await page.goto(`${base}/events/${game.id}`);
  await page.click(`[data-book="${game.performance_id}"]`);
  await page.waitForURL(/\/seats\//);
  await page.waitForSelector('.section-button');
  await page.click(`.section-button[data-section="${section}"]`);
  await page.waitForSelector('.seat-grid button.seat-available');
  await page.waitForSelector('#live[data-state="open"]');
}

test('the buyer journey, live seats in a second browser, a declined payment, accessibility', { timeout: 600_000 }, async (t) => {
  const game = await jamsilGame();
  const stamp = Date.now();
  const alice = { name: '김민지', email: `alice-${stamp}@e2e.test`, password: 'alice-password-1' };
  const bob = { name: 'Bob', email: `bob-${stamp}@e2e.test`, password: 'bob-password-12' };
  const a = await newPage();
  const b = await newPage();

  // Home, with the sandbox banner.
  await a.goto(`${base}/`);
  await ready(a);
  await a.waitForSelector('.cards .card-link');
  assert.match(await a.textContent('#sandbox'), /결제는 모의입니다/);
  assert.equal(await a.isVisible('#sandbox'), true);
  await shot(a, 'home');
  await axeCheck(a, 'home');

  // Sign up (then signed in by cookie: no token is visible to scripts).
  await signUp(a, alice);
  const cookies = await a.context().cookies();
  const access = cookies.find((c) => c.name === 'boxoffice_access');
  assert.ok(access && access.httpOnly && access.sameSite === 'Strict', JSON.stringify(cookies));
  assert.doesNotMatch(await a.evaluate(() => document.cookie), /boxoffice_access|boxoffice_refresh/);

  // Find the Jamsil game by search.
  await a.goto(`${base}/search`);
  await ready(a);
  await a.fill('#q', '잠실');
  await a.press('#q', 'Enter');
  await a.waitForSelector(`a[href="/events/${game.id}"]`);
  await shot(a, 'search');
  await axeCheck(a, 'search');
  await a.click(`a[href="/events/${game.id}"]`);
  await a.waitForSelector(`[data-book="${game.performance_id}"]`);
  await shot(a, 'event');
  await axeCheck(a, 'event');

  // The waiting room, paused by the operator: Alice waits in line, first.
  const room = `/api/v1/admin/rooms/${game.performance_id}`;
  assert.equal((await call('POST', `${room}/pause`, { token: game.adminToken })).status, 200);
  await a.click(`[data-book="${game.performance_id}"]`);
  await a.waitForURL(/\/queue\//);
  await a.waitForFunction(() => document.querySelector('#queue-position')?.textContent === '1');
  assert.match(await a.textContent('#queue-ahead'), /앞에 0명/);
  await shot(a, 'queue');
  await axeCheck(a, 'waiting room');
  // Resumed, it admits her and the page moves on by itself to the seat map.
  assert.equal((await call('POST', `${room}/resume`, { token: game.adminToken })).status, 200);
  await a.waitForURL(/\/seats\//);
  await a.waitForSelector('.section-button');
  const openedMs = Number(await a.getAttribute('main', 'data-seat-map-ms'));
  t.diagnostic(`the seat map of ${game.venue.name_en} (${game.venue.capacity} seats) opened in ${openedMs} ms`);
  assert.ok(openedMs > 0 && openedMs < 10_000, `seat map opened in ${openedMs} ms`);
  await shot(a, 'seat-map');
  await axeCheck(a, 'seat map');
  const section = await a.getAttribute('.section-button', 'data-section');
  await a.click(`.section-button[data-section="${section}"]`);
  await a.waitForSelector('.seat-grid button.seat-available');
  await a.waitForSelector('#live[data-state="open"]');

  // Bob watches the same section in his own browser.
  await signUp(b, bob);
  await toSeats(b, game, section);

  // Alice picks two seats with the keyboard and the mouse.
  const seatIds = await a.$$eval('.seat-grid button.seat-available', (els) => els.slice(0, 2).map((e) => e.dataset.seat));
  await a.focus(`button[data-seat="${seatIds[0]}"]`);
  await a.keyboard.press('Enter');
  await a.click(`button[data-seat="${seatIds[1]}"]`);
  assert.equal(await a.getAttribute(`button[data-seat="${seatIds[0]}"]`, 'aria-pressed'), 'true');
  await shot(a, 'seats');
  await axeCheck(a, 'seats of a section');
  await a.click('#hold');
  await a.waitForURL(/\/checkout\//);
  await a.waitForSelector('#hold-timer');

  // Bob sees them taken, without reloading.
  for (const id of seatIds) {
    await b.waitForSelector(`button[data-seat="${id}"][data-status="held"]`);
    assert.equal(await b.isDisabled(`button[data-seat="${id}"]`), true);
  }
  await shot(b, 'seats-live-taken');

  // Bob lets the seat service choose: best available, one seat of the section's grade.
  await b.click('.section-view .back');
  await b.selectOption('#best-quantity', '1');
  await b.click('#best-form button[type=submit]');
  await b.waitForURL(/\/checkout\//);
  await b.waitForSelector('.held-seats li');
  assert.equal(await b.locator('.held-seats li').count(), 1);
  await b.click('#release');
  await b.waitForURL(/\/seats\//);

  // Checkout: the order, the fake PG's page, back to the success page.
  await shot(a, 'checkout');
  await axeCheck(a, 'checkout');
  await a.click('#pay');
  await a.waitForURL(/\/sandbox\/pg\/checkout/);
  await shot(a, 'pg');
  await a.click('button[value="approve"]');
  await a.waitForURL(/\/pay\/success/);
  await a.waitForSelector('#result[data-ok="true"]');
  await shot(a, 'result');

  // My bookings: the order and its two tickets, with a QR code.
  await a.click('a[href="/bookings"]');
  await a.waitForSelector('.order[data-status="confirmed"] .ticket');
  assert.equal(await a.locator('.order[data-status="confirmed"] .ticket').count(), 2);
  await a.click('.order[data-status="confirmed"] .show-qr');
  await a.waitForSelector('.qr img');
  await a.waitForFunction(() => {
    const img = document.querySelector('.qr img');
    return img && img.complete && img.naturalWidth > 0;
  });
  await shot(a, 'bookings');
  await axeCheck(a, 'bookings');
  const paidOrder = await a.getAttribute('.order[data-status="confirmed"]', 'data-order');

  // A declined payment shows the PG's refusal in our words.
  await toSeats(a, game, section);
  const third = await a.getAttribute('.seat-grid button.seat-available', 'data-seat');
  await a.click(`button[data-seat="${third}"]`);
  await a.click('#hold');
  await a.waitForURL(/\/checkout\//);
  await a.click('#pay');
  await a.waitForURL(/\/sandbox\/pg\/checkout/);
  await a.click('button[value="decline"]');
  await a.waitForURL(/\/pay\/fail/);
  await a.waitForSelector('#alert [data-code="REJECT_CARD_COMPANY"]');
  assert.match(await a.textContent('#alert'), /카드사에서 결제를 거절했습니다/);
  await shot(a, 'declined');
  await axeCheck(a, 'declined');

  // Cancel the paid order.
  await a.goto(`${base}/bookings`);
  await a.click(`.order[data-order="${paidOrder}"] button.cancel`);
  await a.click(`.order[data-order="${paidOrder}"] button.confirm-cancel`);
  await a.waitForSelector(`.order[data-order="${paidOrder}"]:is([data-status="refunding"], [data-status="refunded"], [data-status="cancelled"])`);

  // English, and the login page with the social providers.
  await a.click('#lang');
  await a.waitForSelector('html[lang="en"]');
  assert.match(await a.textContent('#sandbox'), /payments are simulated/);
  await a.click('#logout');
  await a.waitForSelector('a[href="/login"]');
  await a.click('a[href="/login"]');
  await a.waitForSelector('[data-provider="kakao"]');
  await shot(a, 'login-en');
  await axeCheck(a, 'login');

  for (const p of [a, b]) assert.deepEqual(p.errors, [], 'no script errors, no CSP violations');
});

test('social sign-in through the sandbox ends in the same cookie session', { timeout: 120_000 }, async () => {
  const page = await newPage();
  await page.goto(`${base}/login`);
  await ready(page);
  await page.click('[data-provider="kakao"]');
  // The sandbox provider's page: sign in as a new address.
  await page.waitForURL(/\/sandbox\/oauth\//);
  const email = `kakao-${Date.now()}@e2e.test`;
  const input = page.locator('input[type=email], input[name=email], input[name=login_hint]').first();
  await input.fill(email);
  await page.locator('button[type=submit], input[type=submit]').first().click();
  await page.waitForURL(/\/account/);
  await page.waitForSelector('#account-email');
  assert.equal(await page.textContent('#account-email'), email);
  const cookies = await page.context().cookies();
  assert.ok(cookies.find((c) => c.name === 'boxoffice_access' && c.httpOnly));
});
