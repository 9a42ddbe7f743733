//! The reminder before a performance: its state is in the database, so it fires once however
//! often the service restarts, and not before it is due.

use chrono::Utc;
use contracts::events::{OrderConfirmed, PerformanceCancelled};
use platform::testing;
use uuid::Uuid;

use crate::helpers::{App, DEADLINE, config, spawn};

/// Waits until the reminder scheduler has run after `since` (its runs are recorded).
async fn scheduler_ran_after(app: &App, since: chrono::DateTime<Utc>) {
    testing::eventually("a reminder run", DEADLINE, || async {
        let last: Option<chrono::DateTime<Utc>> =
            sqlx::query_scalar("SELECT last_run_at FROM job_runs WHERE job = 'reminder'")
                .fetch_optional(&app.db)
                .await
                .unwrap();
        last.is_some_and(|t| t > since)
    })
    .await;
}

/// Waits until the consumer has taken in `order` (it is in NotificationDB).
async fn order_known(app: &App, order: Uuid) {
    testing::eventually("the order is known", DEADLINE, || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM orders WHERE order_id = $1")
            .bind(order)
            .fetch_one(&app.db)
            .await
            .unwrap()
            == 1
    })
    .await;
}

fn reminders(mails: &[serde_json::Value]) -> usize {
    mails
        .iter()
        .filter(|m| m["Subject"] == "[Boxoffice] 내일 공연이 있습니다")
        .count()
}

#[tokio::test]
async fn the_reminder_fires_once_across_restarts() {
    let app = spawn().await;
    let mut app = app;
    let (user, _) = app
        .register("fan@example.kr", "야구팬", None, Some("01055556666"))
        .await;
    let (skipped, _) = app.register("gone@example.kr", "취소", None, None).await;
    let perf = Uuid::now_v7();
    let cancelled_perf = Uuid::now_v7();
    // 30 hours away: not due with the default lead of 24 hours.
    let starts = Utc::now() + chrono::Duration::hours(30);
    for p in [perf, cancelled_perf] {
        let mut header = crate::helpers::published(p, starts);
        header.revision = 1;
        app.publish(&header).await;
    }
    let order = Uuid::now_v7();
    app.publish(&OrderConfirmed {
        order_id: order,
        buyer_id: user,
        hold_id: Uuid::now_v7(),
        performance_id: perf,
        seat_ids: vec!["1-3-7".into(), "1-3-8".into(), "1-3-9".into()],
        areas: vec![],
        amount_krw: 45_000,
        ticket_ids: vec![Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()],
    })
    .await;
    let other = Uuid::now_v7();
    app.publish(&OrderConfirmed {
        order_id: other,
        buyer_id: skipped,
        hold_id: Uuid::now_v7(),
        performance_id: cancelled_perf,
        seat_ids: vec!["2-1-1".into()],
        areas: vec![],
        amount_krw: 15_000,
        ticket_ids: vec![Uuid::now_v7()],
    })
    .await;
    app.publish(&PerformanceCancelled {
        performance_id: cancelled_perf,
        reason: "우천 취소".into(),
    })
    .await;
    order_known(&app, order).await;
    order_known(&app, other).await;
    testing::eventually("the cancellation is known", DEADLINE, || async {
        sqlx::query_scalar::<_, bool>(
            "SELECT cancelled FROM performances WHERE performance_id = $1",
        )
        .bind(cancelled_perf)
        .fetch_optional(&app.db)
        .await
        .unwrap()
        .unwrap_or(false)
    })
    .await;
    app.wait_mails("fan@example.kr", 2).await; // welcome, tickets
    scheduler_ran_after(&app, Utc::now()).await;
    assert_eq!(
        reminders(&app.mails_to("fan@example.kr").await),
        0,
        "not due yet"
    );

    // Restarted with a lead of 48 hours: now it is due, and it goes, once.
    let mut due = config();
    due.reminder.lead_ms = 48 * 3_600_000;
    app.restart(due.clone()).await;
    let mails = app.wait_mails("fan@example.kr", 3).await;
    assert_eq!(reminders(&mails), 1, "{mails:?}");
    let reminder = mails
        .iter()
        .find(|m| m["Subject"] == "[Boxoffice] 내일 공연이 있습니다")
        .unwrap();
    let read = crate::helpers::python_reads(&app.raw(&reminder["ID"]).await);
    assert!(
        read["text"].as_str().unwrap().contains("티켓 3매"),
        "{read}"
    );
    crate::helpers::eventually_sms(&app, "01055556666", 2).await; // tickets, reminder

    // Restarted again, and again: no second reminder.
    for _ in 0..2 {
        app.restart(due.clone()).await;
        let since = Utc::now();
        scheduler_ran_after(&app, since).await;
        scheduler_ran_after(&app, Utc::now()).await;
    }
    // Everything queued has been sent (nothing pending that could still arrive).
    testing::eventually("nothing pending", DEADLINE, || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending')",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
            == 0
    })
    .await;
    assert_eq!(reminders(&app.mails_to("fan@example.kr").await), 1);
    assert_eq!(
        app.sms
            .outbox
            .messages()
            .iter()
            .filter(|m| m.to == "01055556666")
            .count(),
        2
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries WHERE kind = 'reminder'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(rows, 2, "one email and one SMS");
    // The cancelled performance's buyer got no reminder.
    assert_eq!(reminders(&app.mails_to("gone@example.kr").await), 0);

    // A rain delay moves the performance two hours later: reminded again, once, for the new
    // start.
    let mut moved = crate::helpers::published(perf, starts + chrono::Duration::hours(2));
    moved.revision = 2;
    app.publish(&moved).await;
    let mails = app.wait_mails("fan@example.kr", 4).await;
    assert_eq!(reminders(&mails), 2, "{mails:?}");
    app.restart(due.clone()).await;
    scheduler_ran_after(&app, Utc::now()).await;
    scheduler_ran_after(&app, Utc::now()).await;
    testing::eventually("nothing pending", DEADLINE, || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending')",
        )
        .fetch_one(&app.db)
        .await
        .unwrap()
            == 0
    })
    .await;
    assert_eq!(reminders(&app.mails_to("fan@example.kr").await), 2);
}
