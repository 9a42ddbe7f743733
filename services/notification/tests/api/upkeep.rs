//! Upkeep: a delivery that keeps killing its sender is dead-lettered instead of killing it
//! forever; old finished deliveries are purged, dead letters kept.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use async_trait::async_trait;
use notification::send::{Email, Mailer, SendError};
use uuid::Uuid;

use crate::helpers::{config, spawn_with, wait_delivery};

/// A mailer that dies on every message.
struct AlwaysDies(AtomicUsize);

#[async_trait]
impl Mailer for AlwaysDies {
    async fn send(&self, _email: &Email) -> Result<String, SendError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        panic!("simulated crash on this message");
    }
}

#[tokio::test]
async fn a_delivery_that_keeps_killing_its_sender_is_dead_lettered() {
    let mut c = config();
    c.lease_ms = 300;
    c.retry.max_attempts = 2;
    let mailer = Arc::new(AlwaysDies(AtomicUsize::new(0)));
    let app = spawn_with(c, Some(mailer.clone())).await;
    let (user, _) = app.register("poison@example.kr", "독", None, None).await;
    let dead = wait_delivery(&app, user, "welcome", "dead", |d| d["status"] == "dead").await;
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("never recorded"),
        "{dead}"
    );
    assert_eq!(
        mailer.0.load(Ordering::SeqCst),
        2,
        "tried twice, then left alone"
    );
}

#[tokio::test]
async fn old_finished_deliveries_are_purged_and_dead_letters_kept() {
    // The service's own janitor off: this test runs the pass itself.
    let mut c = config();
    c.retention_days = 0;
    let app = spawn_with(c, None).await;
    let insert = |event: &'static str, status: &'static str, days: i32| {
        let db = app.db.clone();
        async move {
            sqlx::query(
                "INSERT INTO deliveries (id, event_id, kind, channel, recipient_id, data, status,
                     updated_at)
                 VALUES ($1, $2, 'welcome', 'email', $3, '{}', $4,
                         now() - make_interval(days => $5))",
            )
            .bind(Uuid::now_v7())
            .bind(event)
            .bind(Uuid::now_v7())
            .bind(status)
            .bind(days)
            .execute(&db)
            .await
            .unwrap();
        }
    };
    insert("old-sent", "sent", 100).await;
    insert("old-skipped", "skipped", 100).await;
    insert("old-dead", "dead", 100).await;
    insert("new-sent", "sent", 1).await;
    sqlx::query(
        "INSERT INTO parked (event_id, order_id, kind, data, parked_at)
         VALUES ('old-parked', $1, 'order_refunded', '{}', now() - interval '100 days')",
    )
    .bind(Uuid::now_v7())
    .execute(&app.db)
    .await
    .unwrap();

    let gone = notification::janitor::purge_once(&app.db, 90)
        .await
        .unwrap();
    assert_eq!(gone, 3);
    let left: Vec<String> = sqlx::query_scalar("SELECT event_id FROM deliveries ORDER BY event_id")
        .fetch_all(&app.db)
        .await
        .unwrap();
    assert_eq!(left, ["new-sent", "old-dead"]);
}
