//! NotificationDB: recipients, performances, orders and the delivery log. Every query of the
//! service is here.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row, postgres::PgRow};
use uuid::Uuid;

use crate::domain::{Kind, Locale, Status};

/// Someone messages go to.
#[derive(Debug, Clone)]
pub struct Recipient {
    /// User id.
    pub user_id: Uuid,
    /// Email address.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Mobile number (digits), if known.
    pub phone: Option<String>,
    /// Chosen language, if any.
    pub locale: Option<Locale>,
    /// Whether marketing may be sent.
    pub marketing_opt_in: bool,
}

/// Creates or updates a recipient from `user.registered`. Preferences the user set here later
/// are kept when the event comes again (`COALESCE`).
pub async fn upsert_recipient(tx: &mut PgConnection, r: &Recipient) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO recipients (user_id, email, name, phone, locale, marketing_opt_in)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (user_id) DO UPDATE SET email = EXCLUDED.email, name = EXCLUDED.name,
             phone = COALESCE(EXCLUDED.phone, recipients.phone),
             locale = COALESCE(recipients.locale, EXCLUDED.locale), updated_at = now()",
    )
    .bind(r.user_id)
    .bind(&r.email)
    .bind(&r.name)
    .bind(&r.phone)
    .bind(r.locale.map(Locale::as_str))
    .bind(r.marketing_opt_in)
    .execute(tx)
    .await?;
    Ok(())
}

fn recipient_row(row: &PgRow) -> sqlx::Result<Recipient> {
    Ok(Recipient {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        name: row.try_get("name")?,
        phone: row.try_get("phone")?,
        locale: row
            .try_get::<Option<String>, _>("locale")?
            .and_then(|l| Locale::from_tag(&l)),
        marketing_opt_in: row.try_get("marketing_opt_in")?,
    })
}

/// A recipient by user id.
pub async fn recipient(pool: &PgPool, user_id: Uuid) -> sqlx::Result<Option<Recipient>> {
    sqlx::query("SELECT * FROM recipients WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(recipient_row)
        .transpose()
}

/// Sets a known recipient's preferences; `false` when the user is unknown here.
pub async fn set_preferences(
    pool: &PgPool,
    user_id: Uuid,
    locale: Option<Locale>,
    marketing_opt_in: Option<bool>,
) -> sqlx::Result<Option<Recipient>> {
    sqlx::query(
        "UPDATE recipients SET locale = COALESCE($2, locale),
             marketing_opt_in = COALESCE($3, marketing_opt_in), updated_at = now()
         WHERE user_id = $1 RETURNING *",
    )
    .bind(user_id)
    .bind(locale.map(Locale::as_str))
    .bind(marketing_opt_in)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(recipient_row)
    .transpose()
}

/// Records a performance's start (a re-publication may move it: then it is to be reminded
/// again, for the new start).
pub async fn save_performance(
    tx: &mut PgConnection,
    id: Uuid,
    starts_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO performances (performance_id, starts_at) VALUES ($1, $2)
         ON CONFLICT (performance_id) DO UPDATE SET starts_at = EXCLUDED.starts_at,
             reminded_at = CASE WHEN performances.starts_at = EXCLUDED.starts_at
                                THEN performances.reminded_at END",
    )
    .bind(id)
    .bind(starts_at)
    .execute(tx)
    .await?;
    Ok(())
}

/// Marks a performance cancelled: no reminder.
pub async fn cancel_performance(tx: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO performances (performance_id, starts_at, cancelled) VALUES ($1, now(), true)
         ON CONFLICT (performance_id) DO UPDATE SET cancelled = true",
    )
    .bind(id)
    .execute(tx)
    .await?;
    Ok(())
}

/// A performance's start, if known.
pub async fn performance_start(
    tx: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<DateTime<Utc>>> {
    sqlx::query_scalar("SELECT starts_at FROM performances WHERE performance_id = $1")
        .bind(id)
        .fetch_optional(tx)
        .await
}

/// The transaction lock on one order (`$1`, its id) that [`lock_order`] and [`save_order`] take.
const ORDER_LOCK: &str =
    "pg_advisory_xact_lock(hashtextextended('notification-order:' || $1::text, 0))";

/// Serializes, until the transaction ends, the writes about one order: a payment event parked
/// for want of its order and the order's arrival, consumed at the same time from two topics,
/// must not miss each other.
pub async fn lock_order(tx: &mut PgConnection, order_id: Uuid) -> sqlx::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ORDER_LOCK}")))
        .bind(order_id)
        .execute(tx)
        .await?;
    Ok(())
}

/// Records an order's buyer, performance, tickets and status. A cancelled order stays
/// cancelled.
pub async fn save_order(
    tx: &mut PgConnection,
    order_id: Uuid,
    buyer_id: Uuid,
    performance_id: Uuid,
    tickets: i32,
    status: &str,
) -> sqlx::Result<()> {
    // The order's lock (as [`lock_order`]) is taken before the row is written, in one statement.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "WITH locked AS (SELECT {ORDER_LOCK})
         INSERT INTO orders (order_id, buyer_id, performance_id, tickets, status)
         SELECT $1, $2, $3, $4, $5 FROM locked
         ON CONFLICT (order_id) DO UPDATE SET
             tickets = GREATEST(orders.tickets, EXCLUDED.tickets),
             status = CASE WHEN orders.status = 'cancelled' THEN 'cancelled'
                           WHEN EXCLUDED.status = 'pending' THEN orders.status
                           ELSE EXCLUDED.status END"
    )))
    .bind(order_id)
    .bind(buyer_id)
    .bind(performance_id)
    .bind(tickets)
    .bind(status)
    .execute(&mut *tx)
    .await?;
    unpark(tx, order_id, buyer_id).await?;
    Ok(())
}

/// Keeps a message about an order whose buyer is not known yet ([`unpark`] queues it).
pub async fn park(
    tx: &mut PgConnection,
    event_id: &str,
    order_id: Uuid,
    kind: Kind,
    data: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO parked (event_id, order_id, kind, data) VALUES ($1, $2, $3, $4)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(order_id)
    .bind(kind.as_str())
    .bind(data)
    .execute(tx)
    .await?;
    Ok(())
}

/// Queues the parked messages about `order_id` to `buyer_id`; answers how many.
pub async fn unpark(tx: &mut PgConnection, order_id: Uuid, buyer_id: Uuid) -> sqlx::Result<u64> {
    let parked: Vec<(String, String, serde_json::Value)> =
        sqlx::query_as("DELETE FROM parked WHERE order_id = $1 RETURNING event_id, kind, data")
            .bind(order_id)
            .fetch_all(&mut *tx)
            .await?;
    let mut n = 0;
    for (event_id, kind, data) in parked {
        if let Some(kind) = Kind::parse(&kind) {
            n += enqueue(tx, &event_id, kind, buyer_id, &data).await?;
        }
    }
    Ok(n)
}

/// An order's buyer, if the order is known.
pub async fn order_buyer(tx: &mut PgConnection, order_id: Uuid) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT buyer_id FROM orders WHERE order_id = $1")
        .bind(order_id)
        .fetch_optional(tx)
        .await
}

/// Queues one delivery per channel of `kind`; a (event, channel, recipient) queued before is
/// left as it is. Answers how many were new.
pub async fn enqueue(
    tx: &mut PgConnection,
    event_id: &str,
    kind: Kind,
    recipient_id: Uuid,
    data: &serde_json::Value,
) -> sqlx::Result<u64> {
    // One statement for every channel.
    let channels = kind.channels();
    let ids: Vec<Uuid> = channels.iter().map(|_| Uuid::now_v7()).collect();
    let names: Vec<&str> = channels.iter().map(|c| c.as_str()).collect();
    let new = sqlx::query(
        "INSERT INTO deliveries (id, event_id, kind, channel, recipient_id, data)
         SELECT c.id, $2, $3, c.channel, $5, $6
         FROM unnest($1::uuid[], $4::text[]) WITH ORDINALITY AS c(id, channel, n)
         ORDER BY c.n
         ON CONFLICT (event_id, channel, recipient_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(event_id)
    .bind(kind.as_str())
    .bind(&names)
    .bind(recipient_id)
    .bind(data)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    Ok(new)
}

/// Whether a queued reminder (its `data`) is still about a confirmed order of a performance
/// that is not cancelled and has not started.
pub async fn reminder_still_due(pool: &PgPool, data: &serde_json::Value) -> sqlx::Result<bool> {
    let order = data["order_id"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .unwrap_or_default();
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM orders o JOIN performances p USING (performance_id)
                        WHERE o.order_id = $1 AND o.status = 'confirmed'
                          AND NOT p.cancelled AND p.starts_at > now())",
    )
    .bind(order)
    .fetch_one(pool)
    .await
}

/// Queues announcement `id` (marketing, by email) to every recipient who opted in; answers how
/// many. Whoever opts out before it is sent is skipped then.
pub async fn enqueue_announcement(
    pool: &PgPool,
    id: Uuid,
    data: &serde_json::Value,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "INSERT INTO deliveries (id, event_id, kind, channel, recipient_id, data)
         SELECT gen_random_uuid(), $1, 'announcement', 'email', user_id, $2
         FROM recipients WHERE marketing_opt_in
         ON CONFLICT (event_id, channel, recipient_id) DO NOTHING",
    )
    .bind(format!("announcement:{id}"))
    .bind(data)
    .execute(pool)
    .await?
    .rows_affected())
}

/// A delivery as the log shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Delivery {
    /// Its id.
    pub id: Uuid,
    /// The event it answers (the envelope id, `reminder:<order id>:<start>` or
    /// `announcement:<id>`).
    pub event_id: String,
    /// What it is about.
    #[schema(value_type = String, example = "order_confirmed")]
    pub kind: String,
    /// `email` or `sms`.
    #[schema(value_type = String, example = "email")]
    pub channel: String,
    /// The user it goes to.
    pub recipient_id: Uuid,
    /// `pending`, `sending`, `sent`, `skipped` or `dead`.
    pub status: Status,
    /// Tries so far (since the last re-drive).
    pub attempts: i32,
    /// When it is (next) due.
    pub next_attempt_at: DateTime<Utc>,
    /// Why the last try failed, or why it was skipped.
    pub last_error: Option<String>,
    /// Where it went (the address or number used at the last try).
    pub address: Option<String>,
    /// Its language.
    pub locale: Option<String>,
    /// Its subject (email).
    pub subject: Option<String>,
    /// The SMTP server's or SMS provider's id for it.
    pub provider_id: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was sent.
    pub sent_at: Option<DateTime<Utc>>,
    /// How often an admin re-drove it.
    pub redriven: i32,
    /// The template's data.
    #[serde(skip)]
    pub data: serde_json::Value,
}

fn delivery_row(row: &PgRow) -> sqlx::Result<Delivery> {
    let status: String = row.try_get("status")?;
    Ok(Delivery {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        kind: row.try_get("kind")?,
        channel: row.try_get("channel")?,
        recipient_id: row.try_get("recipient_id")?,
        status: Status::parse(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "status".into(),
            source: format!("unknown status {status}").into(),
        })?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_error: row.try_get("last_error")?,
        address: row.try_get("address")?,
        locale: row.try_get("locale")?,
        subject: row.try_get("subject")?,
        provider_id: row.try_get("provider_id")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        sent_at: row.try_get("sent_at")?,
        redriven: row.try_get("redriven")?,
        data: row.try_get("data")?,
    })
}

/// Takes up to `limit` due deliveries for this sender: each becomes `sending`, one more try,
/// reserved until `lease_ms` from now (after that, if its sender died, it is due again: the
/// at-least-once edge).
pub async fn claim(pool: &PgPool, limit: i64, lease_ms: u64) -> sqlx::Result<Vec<Delivery>> {
    let rows = sqlx::query(
        "UPDATE deliveries SET status = 'sending', attempts = attempts + 1,
             next_attempt_at = now() + $2::bigint * interval '1 millisecond', updated_at = now()
         WHERE id IN (SELECT id FROM deliveries
                      WHERE status IN ('pending', 'sending') AND next_attempt_at <= now()
                      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING *",
    )
    .bind(limit)
    .bind(i64::try_from(lease_ms).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    rows.iter().map(delivery_row).collect()
}

/// What a try came to.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Sent: where, with what subject, and the provider's id.
    Sent {
        /// Address or number.
        address: String,
        /// Subject (email).
        subject: Option<String>,
        /// Locale used.
        locale: Locale,
        /// The provider's id.
        provider_id: String,
    },
    /// Not sent on purpose.
    Skipped(String),
    /// Failed; try again after `retry_in_ms`.
    Retry {
        /// Why.
        error: String,
        /// Pause.
        retry_in_ms: u64,
        /// Where it was to go, if known.
        address: Option<String>,
    },
    /// Failed for good.
    Dead {
        /// Why.
        error: String,
        /// Where it was to go, if known.
        address: Option<String>,
    },
}

/// Records the outcome of try `attempt` of delivery `id`; `false` when the delivery is no
/// longer this sender's (its lease ran out and another sender took it).
pub async fn record(
    pool: &PgPool,
    id: Uuid,
    attempt: i32,
    outcome: &Outcome,
) -> sqlx::Result<bool> {
    let q = match outcome {
        Outcome::Sent {
            address,
            subject,
            locale,
            provider_id,
        } => sqlx::query(
            "UPDATE deliveries SET status = 'sent', sent_at = now(), updated_at = now(),
                 address = $3, subject = $4, locale = $5, provider_id = $6, last_error = NULL
             WHERE id = $1 AND attempts = $2 AND status = 'sending'",
        )
        .bind(id)
        .bind(attempt)
        .bind(address)
        .bind(subject)
        .bind(locale.as_str())
        .bind(provider_id),
        Outcome::Skipped(why) => sqlx::query(
            "UPDATE deliveries SET status = 'skipped', updated_at = now(), last_error = $3
             WHERE id = $1 AND attempts = $2 AND status = 'sending'",
        )
        .bind(id)
        .bind(attempt)
        .bind(why),
        Outcome::Retry {
            error,
            retry_in_ms,
            address,
        } => sqlx::query(
            "UPDATE deliveries SET status = 'pending', updated_at = now(), last_error = $3,
                 address = COALESCE($5, address),
                 next_attempt_at = now() + $4::bigint * interval '1 millisecond'
             WHERE id = $1 AND attempts = $2 AND status = 'sending'",
        )
        .bind(id)
        .bind(attempt)
        .bind(error)
        .bind(i64::try_from(*retry_in_ms).unwrap_or(i64::MAX))
        .bind(address),
        Outcome::Dead { error, address } => sqlx::query(
            "UPDATE deliveries SET status = 'dead', updated_at = now(), last_error = $3,
                 address = COALESCE($4, address)
             WHERE id = $1 AND attempts = $2 AND status = 'sending'",
        )
        .bind(id)
        .bind(attempt)
        .bind(error)
        .bind(address),
    };
    Ok(q.execute(pool).await?.rows_affected() == 1)
}

/// One delivery.
pub async fn delivery(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<Delivery>> {
    sqlx::query("SELECT * FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(delivery_row)
        .transpose()
}

/// What the log is filtered by.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only this status.
    pub status: Option<Status>,
    /// Only to this user.
    pub recipient_id: Option<Uuid>,
    /// Only for this event.
    pub event_id: Option<String>,
    /// Only this kind.
    pub kind: Option<Kind>,
    /// Only older than this (the next page).
    pub before: Option<DateTime<Utc>>,
}

/// The log, newest first.
pub async fn deliveries(pool: &PgPool, f: &Filter, limit: i64) -> sqlx::Result<Vec<Delivery>> {
    let rows = sqlx::query(
        "SELECT * FROM deliveries
         WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR recipient_id = $2)
           AND ($3::text IS NULL OR event_id = $3) AND ($4::text IS NULL OR kind = $4)
           AND ($5::timestamptz IS NULL OR created_at < $5)
         ORDER BY created_at DESC, id DESC LIMIT $6",
    )
    .bind(f.status.map(Status::as_str))
    .bind(f.recipient_id)
    .bind(&f.event_id)
    .bind(f.kind.map(Kind::as_str))
    .bind(f.before)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(delivery_row).collect()
}

/// Why a re-drive did nothing.
#[derive(Debug, thiserror::Error)]
pub enum RedriveError {
    /// No such delivery.
    #[error("no such delivery")]
    Unknown,
    /// It is not dead-lettered (its status is given).
    #[error("the delivery is {0:?}, not dead")]
    NotDead(Status),
    /// The database.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Puts a dead delivery back in the queue, due now, with its tries counted afresh.
pub async fn redrive(pool: &PgPool, id: Uuid) -> Result<Delivery, RedriveError> {
    let row = sqlx::query(
        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = now(),
             redriven = redriven + 1, updated_at = now()
         WHERE id = $1 AND status = 'dead' RETURNING *",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => Ok(delivery_row(&row)?),
        None => match delivery(pool, id).await? {
            Some(d) => Err(RedriveError::NotDead(d.status)),
            None => Err(RedriveError::Unknown),
        },
    }
}
