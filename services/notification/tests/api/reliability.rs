//! Failures: the SMTP server down (retried with backoff until it is back), a permanent refusal
//! (dead-lettered, then re-driven), temporary failures past the last try (dead too), SMS the
//! provider refuses.

use crate::helpers::{config, spawn, spawn_with, wait_delivery};

#[tokio::test]
async fn smtp_down_is_retried_and_delivered_when_it_comes_back() {
    let app = spawn().await;
    // No server at all: the catcher's SMTP port is closed (connections refused).
    app.mail_fault("refuse").await;
    let (user, _) = app
        .register("patient@example.kr", "기다림", None, None)
        .await;
    let failing = wait_delivery(&app, user, "welcome", "two refused tries", |d| {
        d["status"] == "pending" && d["attempts"].as_i64().unwrap() >= 2
    })
    .await;
    assert!(failing["last_error"].as_str().is_some(), "{failing}");
    // Then a server that drops every connection before its greeting.
    app.mail_fault("down").await;
    wait_delivery(&app, user, "welcome", "two dropped tries", |d| {
        d["status"] == "pending" && d["attempts"].as_i64().unwrap() >= 4
    })
    .await;
    assert!(app.mail.mailbox.refused() >= 1);
    assert!(app.mails_to("patient@example.kr").await.is_empty());

    // Back: the next try delivers, once.
    app.mail_fault("none").await;
    let mails = app.wait_mails("patient@example.kr", 1).await;
    assert_eq!(mails.len(), 1);
    let sent = wait_delivery(&app, user, "welcome", "sent", |d| d["status"] == "sent").await;
    assert!(sent["attempts"].as_i64().unwrap() >= 5, "{sent}");
    assert!(sent["sent_at"].is_string());
    assert_eq!(app.mails_to("patient@example.kr").await.len(), 1);
}

#[tokio::test]
async fn a_permanent_failure_is_dead_lettered_and_can_be_re_driven() {
    let app = spawn().await;
    app.mail_fault("permanent").await;
    let (user, _) = app.register("bounce@example.kr", "반송", None, None).await;
    let dead = wait_delivery(&app, user, "welcome", "dead-lettered", |d| {
        d["status"] == "dead"
    })
    .await;
    // A 5xx is final at once: no retry.
    assert_eq!(dead["attempts"], 1, "{dead}");
    assert!(
        dead["last_error"].as_str().unwrap().contains("550"),
        "{dead}"
    );
    let id = dead["id"].as_str().unwrap().to_owned();

    let admin = app.admin();
    let (status, body, _) = app
        .get("/api/v1/notifications/dead-letters", Some(&admin))
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()]);

    // Re-driven while the server still refuses: dead again, tried once more.
    let (status, body, _) = app
        .post(
            &format!("/api/v1/notifications/deliveries/{id}/redrive"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["redriven"], 1);
    wait_delivery(&app, user, "welcome", "dead again", |d| {
        d["status"] == "dead" && d["redriven"] == 1
    })
    .await;

    // The server accepts again: the re-drive delivers.
    app.mail_fault("none").await;
    let (status, body, _) = app
        .post(
            &format!("/api/v1/notifications/deliveries/{id}/redrive"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "pending");
    app.wait_mails("bounce@example.kr", 1).await;
    let sent = wait_delivery(&app, user, "welcome", "sent after re-drive", |d| {
        d["status"] == "sent"
    })
    .await;
    assert_eq!(sent["redriven"], 2);
    assert_eq!(sent["attempts"], 1);

    // A sent delivery cannot be re-driven (it would send twice).
    let (status, body, ctype) = app
        .post(
            &format!("/api/v1/notifications/deliveries/{id}/redrive"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 409);
    assert_eq!(ctype, "application/problem+json");
    assert_eq!(body["code"], "not_dead_lettered");
    assert_eq!(body["status"], "sent");
    assert_eq!(app.mails_to("bounce@example.kr").await.len(), 1);

    // The metrics count it: dead-lettered twice, failed twice, sent once (each test is its own
    // process under nextest, so the counters are this test's).
    let metrics = app
        .server
        .client
        .get(app.server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "boxoffice_notifications_dead_lettered_total{kind=\"welcome\",channel=\"email\"} 2",
        "boxoffice_notifications_failed_total{kind=\"welcome\",channel=\"email\"} 2",
        "boxoffice_notifications_sent_total{kind=\"welcome\",channel=\"email\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
}

#[tokio::test]
async fn temporary_failures_past_the_last_try_are_dead_lettered_too() {
    let mut c = config();
    c.retry.max_attempts = 3;
    let app = spawn_with(c, None).await;
    app.mail_fault("temporary").await;
    let (user, _) = app.register("busy@example.kr", "혼잡", None, None).await;
    let dead = wait_delivery(&app, user, "welcome", "dead after 3 tries", |d| {
        d["status"] == "dead"
    })
    .await;
    assert_eq!(dead["attempts"], 3, "{dead}");
    let why = dead["last_error"].as_str().unwrap();
    assert!(
        why.contains("gave up after 3 tries") && why.contains("451"),
        "{why}"
    );
}

#[tokio::test]
async fn an_sms_the_provider_refuses_is_dead_and_one_it_defers_is_retried() {
    let app = spawn().await;
    app.sms
        .outbox
        .set_fault(fakes::sms::FaultMode::Temporary, Some(2));
    let (user, _) = app
        .register("phone@example.kr", "문자", None, Some("01099998888"))
        .await;
    let order = uuid::Uuid::now_v7();
    app.publish(&contracts::events::OrderConfirmed {
        order_id: order,
        buyer_id: user,
        hold_id: uuid::Uuid::now_v7(),
        performance_id: uuid::Uuid::now_v7(),
        seat_ids: vec!["B-1".into()],
        areas: vec![],
        amount_krw: 12_000,
        ticket_ids: vec![uuid::Uuid::now_v7()],
    })
    .await;
    crate::helpers::eventually_sms(&app, "01099998888", 1).await;
    // The provider has it; the log says so once the sender has recorded the answer.
    platform::testing::eventually(
        "the SMS is logged sent",
        crate::helpers::DEADLINE,
        || async {
            app.deliveries_to(user)
                .await
                .iter()
                .any(|d| d["channel"] == "sms" && d["status"] != "sending")
        },
    )
    .await;
    let log = app.deliveries_to(user).await;
    let sms = log.iter().find(|d| d["channel"] == "sms").unwrap();
    assert_eq!(sms["status"], "sent");
    assert_eq!(sms["attempts"], 3, "two 503s, then accepted: {sms}");

    app.sms
        .outbox
        .set_fault(fakes::sms::FaultMode::Permanent, None);
    let (other, _) = app
        .register("phone2@example.kr", "문자둘", None, Some("01011112222"))
        .await;
    app.publish(&contracts::events::OrderConfirmed {
        order_id: uuid::Uuid::now_v7(),
        buyer_id: other,
        hold_id: uuid::Uuid::now_v7(),
        performance_id: uuid::Uuid::now_v7(),
        seat_ids: vec![],
        areas: vec![("GA".into(), 1)],
        amount_krw: 12_000,
        ticket_ids: vec![uuid::Uuid::now_v7()],
    })
    .await;
    platform::testing::eventually(
        "the refused SMS is dead",
        crate::helpers::DEADLINE,
        || async {
            app.deliveries_to(other)
                .await
                .iter()
                .any(|d| d["channel"] == "sms" && d["status"] == "dead")
        },
    )
    .await;
    let log = app.deliveries_to(other).await;
    let sms = log.iter().find(|d| d["channel"] == "sms").unwrap();
    assert!(
        sms["last_error"]
            .as_str()
            .unwrap()
            .contains("InvalidPhoneNumber"),
        "{sms}"
    );
}
