//! PayDB's queries: orders as the order service announced them, payments and their ledger, due
//! reconciliations, refunds and the buyers' confirm keys. Only [`crate::payments`] changes a
//! payment, through [`transition`], so the live row and the ledger move together.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool, Row, postgres::PgRow, types::Json};
use uuid::Uuid;

use crate::domain::{Entry, Payment, PaymentStatus, Refused};

/// An order as the payment service knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// Its id.
    pub order_id: Uuid,
    /// Its buyer.
    pub buyer_id: Uuid,
    /// What it costs.
    pub amount_krw: i64,
    /// When it lapses unpaid.
    pub expires_at: DateTime<Utc>,
    /// When it was cancelled, if it was.
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// Records an order from `order.created` and wakes a confirm waiting for it; a repeat changes
/// nothing. Returns whether it was new.
pub async fn save_order(conn: &mut PgConnection, order: &Order) -> Result<bool, sqlx::Error> {
    // One statement: the row, and the wake-up of a confirm that came before its order (sent at
    // commit, whether the row is new or a redelivery's).
    let saved: i64 = sqlx::query_scalar(
        "WITH saved AS (INSERT INTO orders (order_id, buyer_id, amount_krw, expires_at) \
                        VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO NOTHING RETURNING 1) \
         SELECT (SELECT count(*) FROM saved) FROM pg_notify($5, $6)",
    )
    .bind(order.order_id)
    .bind(order.buyer_id)
    .bind(order.amount_krw)
    .bind(order.expires_at)
    .bind(crate::payments::WAKEUPS)
    .bind(crate::payments::arrival_key(order.order_id))
    .fetch_one(conn)
    .await?;
    Ok(saved == 1)
}

/// Marks an order cancelled (once). Returns whether it was known.
pub async fn cancel_order(
    conn: &mut PgConnection,
    order_id: Uuid,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE orders SET cancelled_at = COALESCE(cancelled_at, now()), \
         cancel_reason = COALESCE(cancel_reason, $2) WHERE order_id = $1",
    )
    .bind(order_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The order `order_id`.
pub async fn order(pool: &PgPool, order_id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT order_id, buyer_id, amount_krw, expires_at, cancelled_at FROM orders \
         WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(Order {
            order_id: r.try_get("order_id")?,
            buyer_id: r.try_get("buyer_id")?,
            amount_krw: r.try_get("amount_krw")?,
            expires_at: r.try_get("expires_at")?,
            cancelled_at: r.try_get("cancelled_at")?,
        })
    })
    .transpose()
}

/// What a buyer's `Idempotency-Key` was used for before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUse {
    /// First use (now recorded), or again with the same request.
    Same,
    /// Used before with another request.
    Other,
}

/// Records `key` of `buyer` for the request `fingerprint` (of `order_id`), or says how it was
/// used before.
pub async fn use_key(
    pool: &PgPool,
    buyer_id: Uuid,
    key: &str,
    order_id: Uuid,
    fingerprint: &str,
) -> Result<KeyUse, sqlx::Error> {
    // One round trip: the row inserted, or the one already there (the no-op update returns it).
    let stored: String = sqlx::query_scalar(
        "INSERT INTO confirm_requests (buyer_id, idempotency_key, order_id, fingerprint) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (buyer_id, idempotency_key) \
         DO UPDATE SET fingerprint = confirm_requests.fingerprint RETURNING fingerprint",
    )
    .bind(buyer_id)
    .bind(key)
    .bind(order_id)
    .bind(fingerprint)
    .fetch_one(pool)
    .await?;
    Ok(if stored == fingerprint {
        KeyUse::Same
    } else {
        KeyUse::Other
    })
}

/// How long after its creation a payment failed as undecided is still looked at (the PG may
/// complete a payment late; a charge found then is refunded).
pub const UNDECIDED_RECHECK_DAYS: i32 = 15;

const PAYMENT_COLUMNS: &str = "order_id, buyer_id, payment_key, amount_krw, status, \
     refunded_krw, approved_at, late, failure_code, failure_message, attempt";

fn payment_row(r: &PgRow) -> Result<Payment, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let status = PaymentStatus::parse(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: "status".into(),
        source: format!("unknown payment status `{status}`").into(),
    })?;
    let code: Option<String> = r.try_get("failure_code")?;
    let message: Option<String> = r.try_get("failure_message")?;
    Ok(Payment {
        order_id: r.try_get("order_id")?,
        buyer_id: r.try_get("buyer_id")?,
        payment_key: r.try_get("payment_key")?,
        amount_krw: r.try_get("amount_krw")?,
        status,
        refunded_krw: r.try_get("refunded_krw")?,
        approved_at: r.try_get("approved_at")?,
        late: r.try_get("late")?,
        failure: code.map(|c| (c, message.unwrap_or_default())),
        attempt: r.try_get("attempt")?,
    })
}

/// The payment of `order_id`.
pub async fn payment(
    conn: &mut PgConnection,
    order_id: Uuid,
) -> Result<Option<Payment>, sqlx::Error> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(payment_row)
        .transpose()
}

/// Every payment's live state.
pub async fn payments(pool: &PgPool) -> Result<Vec<Payment>, sqlx::Error> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments ORDER BY order_id");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await?
        .iter()
        .map(payment_row)
        .collect()
}

/// Every ledger entry in order: `(seq, order_id, entry)`.
pub async fn ledger(pool: &PgPool) -> Result<Vec<(i64, Uuid, Entry)>, sqlx::Error> {
    let rows = sqlx::query("SELECT seq, order_id, entry FROM payment_ledger ORDER BY seq")
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|r| {
            let Json(entry): Json<Entry> = r.try_get("entry")?;
            Ok((r.try_get("seq")?, r.try_get("order_id")?, entry))
        })
        .collect()
}

/// Starts the payment of `order_id` with `entry` (a [`Entry::ConfirmStarted`]) unless the order
/// has one already; the reconciler looks at it from `check_at` on, should its confirm never
/// record an outcome. `None`: the order has a payment.
pub async fn start(
    conn: &mut PgConnection,
    order_id: Uuid,
    entry: &Entry,
    check_at: DateTime<Utc>,
) -> Result<Option<Payment>, StoreError> {
    let payment = Payment::start(order_id, entry)?;
    // The row and its first ledger entry in one statement: the entry's number is drawn first so
    // the row can name it.
    let inserted = sqlx::query(
        "WITH s AS (SELECT nextval(pg_get_serial_sequence('payment_ledger', 'seq')) AS seq), \
         p AS (INSERT INTO payments (order_id, buyer_id, payment_key, amount_krw, status, \
               ledger_seq, next_check_at) SELECT $1, $2, $3, $4, $5, s.seq, $6 FROM s \
               ON CONFLICT (order_id) DO NOTHING RETURNING order_id, ledger_seq) \
         INSERT INTO payment_ledger (seq, order_id, entry, status) \
         SELECT ledger_seq, order_id, $7, $5 FROM p",
    )
    .bind(order_id)
    .bind(payment.buyer_id)
    .bind(&payment.payment_key)
    .bind(payment.amount_krw)
    .bind(payment.status.as_str())
    .bind(check_at)
    .bind(Json(entry))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok((inserted == 1).then_some(payment))
}

/// Why a transition was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state machine refused it (the payment is already past it).
    #[error(transparent)]
    Refused(#[from] Refused),
    /// No such payment.
    #[error("no payment for the order")]
    Missing,
    /// PayDB failed.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Applies `entry` to the payment of `order_id` (locked for the rest of `conn`'s transaction):
/// the live row and a ledger entry, together. An open payment is looked at again from
/// `check_at`; a settled one no more.
pub async fn transition(
    conn: &mut PgConnection,
    order_id: Uuid,
    entry: &Entry,
    check_at: Option<DateTime<Utc>>,
) -> Result<(Payment, Payment), StoreError> {
    let sql = format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE order_id = $1 FOR UPDATE");
    let before = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(order_id)
        .fetch_optional(&mut *conn)
        .await?
        .as_ref()
        .map(payment_row)
        .transpose()?
        .ok_or(StoreError::Missing)?;
    let after = before.apply(entry)?;
    let (code, message) = after.failure.clone().unzip();
    // One statement: the ledger entry, the payment, and (when its status changes) the wake-up
    // of a webhook waiting for the confirm in flight, sent at commit.
    sqlx::query(
        "WITH l AS (INSERT INTO payment_ledger (order_id, entry, status) VALUES ($1, $11, $2) \
                    RETURNING seq), \
              u AS (UPDATE payments SET status = $2, refunded_krw = $3, approved_at = $4, \
                    late = $5, failure_code = $6, failure_message = $7, \
                    ledger_seq = (SELECT seq FROM l), \
                    next_check_at = CASE WHEN $2 IN ('confirming', 'unknown') \
                      OR created_at > now() - make_interval(days => $12) THEN $8 END, \
                    payment_key = $9, attempt = $10, \
                    checks = CASE WHEN attempt = $10 THEN checks ELSE 0 END, updated_at = now() \
                    WHERE order_id = $1 RETURNING order_id) \
         SELECT pg_notify($13, $14) FROM u WHERE $15",
    )
    .bind(order_id)
    .bind(after.status.as_str())
    .bind(after.refunded_krw)
    .bind(after.approved_at)
    .bind(after.late)
    .bind(code)
    .bind(message)
    .bind(check_at.filter(|_| after.status.is_open() || after.undecided_failure()))
    .bind(&after.payment_key)
    .bind(after.attempt)
    .bind(Json(entry))
    .bind(UNDECIDED_RECHECK_DAYS)
    .bind(crate::payments::WAKEUPS)
    .bind(crate::payments::change_key(order_id))
    .bind(after.status != before.status)
    .execute(&mut *conn)
    .await?;
    Ok((before, after))
}

/// Claims the webhook lookup of the payment of `order_id` (`payment_key`): `true` when no
/// webhook looked at it in the last `min_interval_ms` (the claim is recorded), `false` when one
/// did (the notice is dropped). Across replicas: concurrent claims of one payment serialize on its
/// row, and only the first finds the window open.
pub async fn claim_webhook_lookup(
    pool: &PgPool,
    order_id: Uuid,
    payment_key: &str,
    min_interval_ms: u64,
) -> Result<bool, sqlx::Error> {
    let ms = i64::try_from(min_interval_ms).unwrap_or(i64::MAX);
    let claimed = sqlx::query(
        "UPDATE payments SET webhook_looked_at = now() WHERE order_id = $1 AND payment_key = $2 \
         AND (webhook_looked_at IS NULL \
              OR webhook_looked_at <= now() - make_interval(secs => $3::double precision / 1000))",
    )
    .bind(order_id)
    .bind(payment_key)
    .bind(ms as f64)
    .execute(pool)
    .await?
    .rows_affected();
    Ok(claimed == 1)
}

/// Open payments due for a look at the PG, at most `limit`, leased until `lease_until` (another
/// replica skips them meanwhile); their check count goes up by one. `(order_id, checks)`.
pub async fn due_checks(
    pool: &PgPool,
    limit: i64,
    lease_until: DateTime<Utc>,
) -> Result<Vec<(Uuid, i32)>, sqlx::Error> {
    let rows = sqlx::query(
        "UPDATE payments SET next_check_at = $2, checks = checks + 1 WHERE order_id IN ( \
           SELECT order_id FROM payments WHERE next_check_at <= now() \
           ORDER BY next_check_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING order_id, checks",
    )
    .bind(limit)
    .bind(lease_until)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("order_id")?, r.try_get("checks")?)))
        .collect()
}

/// Looks at an open payment again at `at`; a payment failed as undecided too, until
/// [`UNDECIDED_RECHECK_DAYS`] after it was created (then it is looked at no more).
pub async fn recheck_at(
    pool: &PgPool,
    order_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE payments SET next_check_at = CASE WHEN status IN ('confirming', 'unknown') \
           OR created_at > now() - make_interval(days => $3) THEN $2 END \
         WHERE order_id = $1 AND (status IN ('confirming', 'unknown') \
           OR (status = 'failed' AND failure_code = $4))",
    )
    .bind(order_id)
    .bind(at)
    .bind(UNDECIDED_RECHECK_DAYS)
    .bind(crate::domain::UNDECIDED)
    .execute(pool)
    .await?;
    Ok(())
}

/// A refund to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    /// Its key (the request's id, or `late-<order id>`).
    pub refund_key: String,
    /// The order.
    pub order_id: Uuid,
    /// What was asked for (`None`: what is left).
    pub amount_krw: Option<i64>,
    /// Why.
    pub reason: String,
    /// The amount fixed at the first attempt.
    pub cancel_krw: Option<i64>,
    /// Attempts so far (this one included).
    pub attempts: i32,
}

/// Records a refund to make; a repeat of its key changes nothing. Returns whether it was new.
pub async fn request_refund(
    conn: &mut PgConnection,
    refund_key: &str,
    order_id: Uuid,
    amount_krw: Option<i64>,
    reason: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO refunds (refund_key, order_id, amount_krw, reason) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (refund_key) DO NOTHING",
    )
    .bind(refund_key)
    .bind(order_id)
    .bind(amount_krw)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The next due refund, leased until `lease_until`: per order, refunds go one at a time in the
/// order they were asked for.
pub async fn claim_refund(
    pool: &PgPool,
    lease_until: DateTime<Utc>,
) -> Result<Option<Refund>, sqlx::Error> {
    let row = sqlx::query(
        "UPDATE refunds SET next_attempt_at = $1, attempts = attempts + 1 WHERE refund_key = ( \
           SELECT r.refund_key FROM refunds r WHERE r.status = 'pending' \
           AND r.next_attempt_at <= now() \
           AND NOT EXISTS (SELECT 1 FROM refunds e WHERE e.order_id = r.order_id \
             AND e.status = 'pending' AND (e.created_at, e.refund_key) < (r.created_at, r.refund_key)) \
           ORDER BY r.next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED) \
         RETURNING refund_key, order_id, amount_krw, reason, cancel_krw, attempts",
    )
    .bind(lease_until)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(Refund {
            refund_key: r.try_get("refund_key")?,
            order_id: r.try_get("order_id")?,
            amount_krw: r.try_get("amount_krw")?,
            reason: r.try_get("reason")?,
            cancel_krw: r.try_get("cancel_krw")?,
            attempts: r.try_get("attempts")?,
        })
    })
    .transpose()
}

/// Fixes the amount a refund sends the PG (from its first attempt on).
pub async fn fix_refund_amount(
    pool: &PgPool,
    refund_key: &str,
    amount: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE refunds SET cancel_krw = $2 WHERE refund_key = $1")
        .bind(refund_key)
        .bind(amount)
        .execute(pool)
        .await?;
    Ok(())
}

/// Locks a pending refund for recording its end in `conn`'s transaction; `false` when it is
/// no longer pending (another replica, whose lease on it ran out, recorded it first). A second
/// recorder waits here for the first one's commit and then finds nothing.
pub async fn lock_pending_refund(
    conn: &mut PgConnection,
    refund_key: &str,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query(
        "SELECT 1 FROM refunds WHERE refund_key = $1 AND status = 'pending' FOR UPDATE",
    )
    .bind(refund_key)
    .fetch_optional(conn)
    .await?;
    Ok(row.is_some())
}

/// Ends a refund as `status` (`done`, `rejected`, `nothing_to_refund`) with `error`.
pub async fn end_refund(
    conn: &mut PgConnection,
    refund_key: &str,
    status: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refunds SET status = $2, error = $3, done_at = now() WHERE refund_key = $1 \
         AND status = 'pending'",
    )
    .bind(refund_key)
    .bind(status)
    .bind(error)
    .execute(conn)
    .await?;
    Ok(())
}

/// Tries a refund again at `at`, noting `error`.
pub async fn retry_refund(
    pool: &PgPool,
    refund_key: &str,
    at: DateTime<Utc>,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE refunds SET next_attempt_at = $2, error = $3 WHERE refund_key = $1 \
         AND status = 'pending'",
    )
    .bind(refund_key)
    .bind(at)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}
