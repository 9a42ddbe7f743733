// Every problem code the API documents (docs/api.md, docs/services/*.md: "409 `code`") has a
// Korean and an English message in the web UI's dictionary.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { problemCodes, problemMessage, setLang } = await import(path.join(root, 'web/js/i18n.js'));

// Backticked words after a status that are fields or values, not codes.
const NOT_CODES = new Set(['_', 'amount', 'checked_in_at', 'closed_at', 'order_id', 'paid', 'payment',
  'payment_key', 'pg_code', 'sale_closes_at', 'sale_opens_at', 'seat_attempts', 'status', 'webhook_max_in_flight',
  'cursor', 'general_sale_opens_at', 'index', 'ticket_type', 'wait_ms', 'payment_wakeups']);

function documentedCodes() {
  const docs = path.join(root, 'docs');
  const files = [path.join(docs, 'api.md'),
    ...fs.readdirSync(path.join(docs, 'services')).map((f) => path.join(docs, 'services', f))];
  const codes = new Set();
  const after = /\b[45]\d\d\s+((?:`[a-z_]+`(?:\s*\([^)]*\))?(?:,\s*|\s+or\s+|\s*\/\s*)?)+)/g;
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    for (const m of text.matchAll(after)) {
      for (const c of m[1].matchAll(/`([a-z_]+)`/g)) if (!NOT_CODES.has(c[1])) codes.add(c[1]);
    }
  }
  return codes;
}

test('every documented problem code has a message in both languages', () => {
  const codes = documentedCodes();
  assert.ok(codes.has('seat_unavailable') && codes.has('rate_limited'), [...codes].join(' '));
  const missing = [...codes].filter((c) => !problemCodes.includes(c)).sort();
  assert.deepEqual(missing, []);
  for (const lang of ['ko', 'en']) {
    setLang(lang);
    for (const c of codes) assert.notEqual(problemMessage({ code: c, body: {} }), c, `${lang} ${c}`);
  }
  setLang('ko');
  assert.match(problemMessage({ code: 'rate_limited', body: { retry_after_secs: 7 } }), /7초/);
});
