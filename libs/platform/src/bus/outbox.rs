//! The transactional outbox: an event is written in the same transaction as the state change it
//! describes, so either both happen or neither does. The relay publishes it later, in `seq` order.
//!
//! Order per key across concurrent writers: a row's `seq` is drawn when it is inserted, but rows
//! become visible when their transactions commit, so without care two transactions on one key
//! could commit in the opposite order of their `seq`s, and the relay would publish them against
//! the order of the changes they describe. [`enqueue_envelope`] first takes a transaction lock on
//! (topic, key) (`pg_advisory_xact_lock`, namespace [`KEY_LOCK_SPACE`]): the second writer waits
//! until the first commits or rolls back, so per key, `seq` order is commit order. Writing several
//! keys in one transaction: enqueue them in a stable order (or one key per transaction), or two
//! such transactions may deadlock (PostgreSQL then aborts one, SQLSTATE 40P01).
//!
//! Size: an envelope larger than [`MAX_ENVELOPE_BYTES`] of JSON is refused here
//! ([`BusError::Refused`], `too_large`), so its producer learns at once, in the transaction of
//! its change, instead of the relay failing to publish it later: a broker takes 1 MB per message
//! by default, and a large event is split by its producer (as the catalog splits a performance's seats).

use super::envelope::{Envelope, Event};
use sqlx::PgConnection;

use super::BusError;

/// The channel the relay listens on to publish without waiting for its next scan.
pub const NOTIFY_CHANNEL: &str = "bus_outbox";

/// First key of the two-key advisory locks taken per (topic, key); the second is
/// `hashtext(topic || ' ' || key)`. Distinct from the single-key locks of the relay and schema.
pub const KEY_LOCK_SPACE: i32 = 7_305_003;

/// Most bytes of JSON one envelope may have: a quarter of a Kafka broker's default message
/// limit (1 MB), leaving room for the record's framing and any broker's overhead.
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;

/// Writes `event` to the outbox on `conn` (pass the transaction of the state change).
pub async fn enqueue<E: Event>(conn: &mut PgConnection, event: &E) -> Result<Envelope, BusError> {
    let envelope = Envelope::new(event)?;
    enqueue_envelope(conn, E::TOPIC, &envelope).await?;
    Ok(envelope)
}

/// Writes a ready-made envelope to the outbox for `topic`, after waiting for any other open
/// transaction that wrote the same (topic, key) (see the module docs). `conn` must be in a
/// transaction: outside one the lock is released at once and order is not kept. Refuses an
/// envelope over [`MAX_ENVELOPE_BYTES`] and writes nothing then.
pub async fn enqueue_envelope(
    conn: &mut PgConnection,
    topic: &str,
    envelope: &Envelope,
) -> Result<(), BusError> {
    let json = serde_json::to_string(envelope)?;
    if json.len() > MAX_ENVELOPE_BYTES {
        tracing::error!(
            %topic, event_type = %envelope.event_type, key = %envelope.key, bytes = json.len(),
            limit = MAX_ENVELOPE_BYTES, "event too large for the bus; not written"
        );
        metrics::counter!("boxoffice_bus_enqueue_refused_total", "topic" => topic.to_owned())
            .increment(1);
        return Err(BusError::Refused {
            code: "too_large",
            reason: format!(
                "`{}` on {topic} (key {}) is {} bytes of JSON, over the bus's {MAX_ENVELOPE_BYTES}",
                envelope.event_type,
                envelope.key,
                json.len()
            ),
        });
    }
    // One round trip: the key's lock is taken before the row (and its `seq`) is made, and the
    // NOTIFY is delivered at commit, and only if the transaction commits.
    sqlx::query(
        "WITH locked AS (SELECT pg_advisory_xact_lock($1, hashtext($2 || ' ' || $3))), \
              written AS (INSERT INTO bus_outbox (id, topic, key, envelope) \
                          SELECT $4, $2, $3, $5::text::jsonb FROM locked RETURNING seq) \
         SELECT pg_notify($6, '') FROM written",
    )
    .bind(KEY_LOCK_SPACE)
    .bind(topic)
    .bind(&envelope.key)
    .bind(envelope.id)
    .bind(json)
    .bind(NOTIFY_CHANNEL)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
