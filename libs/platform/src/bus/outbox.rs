//! The transactional outbox: an event is written in the same transaction as the state change it
//! describes, so either both happen or neither does. The relay publishes it later.

use contracts::{Envelope, Event};
use sqlx::PgConnection;

use super::BusError;

/// The channel the relay listens on to publish without waiting for its next scan.
pub const NOTIFY_CHANNEL: &str = "bus_outbox";

/// Writes `event` to the outbox on `conn` (pass the transaction of the state change).
pub async fn enqueue<E: Event>(conn: &mut PgConnection, event: &E) -> Result<Envelope, BusError> {
    let envelope = Envelope::new(event)?;
    enqueue_envelope(conn, E::TOPIC, &envelope).await?;
    Ok(envelope)
}

/// Writes a ready-made envelope to the outbox for `topic`.
pub async fn enqueue_envelope(
    conn: &mut PgConnection,
    topic: &str,
    envelope: &Envelope,
) -> Result<(), BusError> {
    sqlx::query("INSERT INTO bus_outbox (id, topic, key, envelope) VALUES ($1, $2, $3, $4)")
        .bind(envelope.id)
        .bind(topic)
        .bind(&envelope.key)
        .bind(sqlx::types::Json(envelope))
        .execute(&mut *conn)
        .await?;
    // Delivered at commit, and only if the transaction commits.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(NOTIFY_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
