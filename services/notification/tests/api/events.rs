//! Each event makes the right message in the right language, and a standard mail parser
//! (Python's `email`) reads Korean subjects and bodies intact; a duplicated event sends once.

use contracts::events::{
    OrderCancelled, OrderConfirmed, OrderCreated, PaymentFailed, PaymentRefunded,
};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{published, python_reads, spawn};

fn subjects(mails: &[Value]) -> Vec<String> {
    mails
        .iter()
        .map(|m| m["Subject"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn each_event_sends_the_right_message_in_the_right_language() {
    let app = spawn().await;
    let (ko, _) = app
        .register("minjun@example.kr", "김민준", None, Some("010-1234-5678"))
        .await;
    let (en, _) = app
        .register("jane@example.com", "Jane Doe", Some("en-US"), None)
        .await;

    // Welcome, in each one's language (Korean is the default), with the verification link.
    let ko_mails = app.wait_mails("minjun@example.kr", 1).await;
    assert_eq!(subjects(&ko_mails), ["Boxoffice에 오신 것을 환영합니다"]);
    let en_mails = app.wait_mails("jane@example.com", 1).await;
    assert_eq!(subjects(&en_mails), ["Welcome to Boxoffice"]);
    let welcome = python_reads(&app.raw(&ko_mails[0]["ID"]).await);
    assert_eq!(welcome["subject"], "Boxoffice에 오신 것을 환영합니다");
    assert_eq!(welcome["to_name"], "김민준");
    assert!(
        welcome["text"]
            .as_str()
            .unwrap()
            .contains(&format!("https://boxoffice.test/verify?u={ko}")),
        "{welcome}"
    );

    // A confirmed order: tickets by email (and SMS: the Korean buyer has a number).
    let perf = Uuid::now_v7();
    let starts = chrono::DateTime::parse_from_rfc3339("2030-05-04T10:30:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    app.publish(&published(perf, starts)).await;
    // A publication comes long before anyone can buy; here the test makes sure of it (the
    // catalog's topic and the orders' are not ordered with each other).
    platform::testing::eventually(
        "the performance is known",
        crate::helpers::DEADLINE,
        || async {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM performances WHERE performance_id = $1",
            )
            .bind(perf)
            .fetch_one(&app.db)
            .await
            .unwrap()
                == 1
        },
    )
    .await;
    let order = Uuid::now_v7();
    let tickets = vec![Uuid::now_v7(), Uuid::now_v7()];
    app.publish(&OrderCreated {
        order_id: order,
        buyer_id: ko,
        hold_id: Uuid::now_v7(),
        performance_id: perf,
        amount_krw: 304_000,
        expires_at: chrono::Utc::now(),
    })
    .await;
    app.publish(&OrderConfirmed {
        order_id: order,
        buyer_id: ko,
        hold_id: Uuid::now_v7(),
        performance_id: perf,
        seat_ids: vec!["A-01-01".into(), "A-01-02".into()],
        areas: vec![],
        amount_krw: 304_000,
        ticket_ids: tickets.clone(),
    })
    .await;
    let ko_mails = app.wait_mails("minjun@example.kr", 2).await;
    assert_eq!(
        ko_mails[1]["Subject"],
        "[Boxoffice] 예매가 완료되었습니다 (2매)"
    );
    let confirmed = python_reads(&app.raw(&ko_mails[1]["ID"]).await);
    assert_eq!(
        confirmed["subject"],
        "[Boxoffice] 예매가 완료되었습니다 (2매)"
    );
    assert_eq!(confirmed["defects"], serde_json::json!([]));
    let text = confirmed["text"].as_str().unwrap();
    assert!(text.contains("김민준님, 예매가 완료되었습니다."), "{text}");
    assert!(text.contains("결제 금액: 304,000원"), "{text}");
    // 10:30 UTC is 19:30 in Seoul, a Saturday.
    assert!(text.contains("2030년 5월 4일 (토) 19:30"), "{text}");
    assert!(text.contains("- A-01-01 (티켓 번호 "), "{text}");
    for t in &tickets {
        assert!(
            text.contains(&format!("{t}): https://boxoffice.test/tickets/{t}")),
            "{text}"
        );
    }
    let html = confirmed["html"].as_str().unwrap();
    assert!(
        html.contains("<li><a href=\"https:&#x2f;&#x2f;boxoffice.test&#x2f;tickets&#x2f;"),
        "{html}"
    );
    crate::helpers::eventually_sms(&app, "01012345678", 1).await;
    let sms = app.sms.outbox.messages();
    assert!(
        sms[0].text.starts_with("[Boxoffice] 예매 완료 2매"),
        "{:?}",
        sms[0]
    );

    // The English buyer: an order that lapsed unpaid, and a failed payment.
    let lapsed = Uuid::now_v7();
    app.publish(&OrderCreated {
        order_id: lapsed,
        buyer_id: en,
        hold_id: Uuid::now_v7(),
        performance_id: perf,
        amount_krw: 52_000,
        expires_at: chrono::Utc::now(),
    })
    .await;
    app.publish(&PaymentFailed {
        order_id: lapsed,
        code: "REJECT_CARD_COMPANY".into(),
        message: "Card declined".into(),
    })
    .await;
    app.publish(&OrderCancelled {
        order_id: lapsed,
        buyer_id: en,
        performance_id: perf,
        seat_ids: vec![],
        areas: vec![("GA".into(), 1)],
        refund_krw: 0,
        reason: "expired".into(),
        hold_id: None,
    })
    .await;
    let en_mails = app.wait_mails("jane@example.com", 3).await;
    let mut got = subjects(&en_mails[1..]);
    got.sort();
    assert_eq!(
        got,
        [
            "[Boxoffice] Your order expired",
            "[Boxoffice] Your payment did not go through"
        ]
    );
    let failed = en_mails
        .iter()
        .find(|m| m["Subject"] == "[Boxoffice] Your payment did not go through")
        .unwrap();
    let failed = python_reads(&app.raw(&failed["ID"]).await);
    assert!(failed["text"].as_str().unwrap().contains("Card declined"));
    assert!(
        failed["text"]
            .as_str()
            .unwrap()
            .contains(&format!("https://boxoffice.test/orders/{lapsed}"))
    );

    // The Korean buyer cancels: the cancellation with its refund, then the refund itself.
    app.publish(&OrderCancelled {
        order_id: order,
        buyer_id: ko,
        performance_id: perf,
        seat_ids: vec!["A-01-01".into(), "A-01-02".into()],
        areas: vec![],
        refund_krw: 300_000,
        reason: "buyer_cancelled".into(),
        hold_id: None,
    })
    .await;
    app.publish(&PaymentRefunded {
        order_id: order,
        payment_key: "pk".into(),
        amount_krw: 300_000,
        reason: "buyer_cancelled".into(),
    })
    .await;
    let ko_mails = app.wait_mails("minjun@example.kr", 4).await;
    let mut got = subjects(&ko_mails[2..]);
    got.sort();
    assert_eq!(
        got,
        [
            "[Boxoffice] 주문이 취소되었습니다",
            "[Boxoffice] 환불이 완료되었습니다"
        ]
    );
    let refunded = ko_mails
        .iter()
        .find(|m| m["Subject"] == "[Boxoffice] 환불이 완료되었습니다")
        .unwrap();
    let refunded = python_reads(&app.raw(&refunded["ID"]).await);
    assert!(
        refunded["text"]
            .as_str()
            .unwrap()
            .contains(&format!("주문({order})의 300,000원 환불이 완료되었습니다.")),
        "{refunded}"
    );

    // The log says where each went and in which language.
    let log = app.deliveries_to(ko).await;
    assert!(log.iter().all(|d| d["status"] == "sent"), "{log:?}");
    assert!(log.iter().all(|d| d["locale"] == "ko"));
    let sms = log.iter().find(|d| d["channel"] == "sms").unwrap();
    assert_eq!(sms["address"], "01012345678");
    let log = app.deliveries_to(en).await;
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log.iter()
            .all(|d| d["status"] == "sent" && d["locale"] == "en"),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_duplicated_event_sends_once() {
    let app = spawn().await;
    let (user, env) = app.register("twice@example.kr", "두번", None, None).await;
    // The same event again and again (a producer's retry, a relay that republished).
    for _ in 0..3 {
        app.publish_envelope(contracts::topics::USERS, &env).await;
    }
    // Then a new event on the same key (same partition, so consumed after the copies).
    let mut later = env.clone();
    later.id = Uuid::now_v7();
    app.publish_envelope(contracts::topics::USERS, &later).await;
    let mails = app.wait_mails("twice@example.kr", 2).await;
    assert_eq!(mails.len(), 2, "one per event: {mails:?}");
    let log = app.deliveries_to(user).await;
    assert_eq!(log.len(), 2, "{log:?}");
    let first: Vec<&Value> = log
        .iter()
        .filter(|d| d["event_id"] == env.id.to_string())
        .collect();
    assert_eq!(first.len(), 1);

    // Even past the inbox (a handler run twice for one event id), the log's unique key keeps
    // one delivery per (event, channel, recipient).
    let mut tx = app.db.begin().await.unwrap();
    let again = notification::store::enqueue(
        &mut tx,
        &env.id.to_string(),
        notification::domain::Kind::Welcome,
        user,
        &serde_json::json!({}),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again, 0);
    assert_eq!(app.mails_to("twice@example.kr").await.len(), 2);
}

#[tokio::test]
async fn a_payment_event_before_its_order_waits_for_the_order() {
    let app = spawn().await;
    let (user, _) = app
        .register("early@example.com", "Early", Some("en"), None)
        .await;
    app.wait_mails("early@example.com", 1).await;
    let order = Uuid::now_v7();
    app.publish(&PaymentRefunded {
        order_id: order,
        payment_key: "pk".into(),
        amount_krw: 7_000,
        reason: "buyer_cancelled".into(),
    })
    .await;
    platform::testing::eventually("the refund is parked", crate::helpers::DEADLINE, || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM parked WHERE order_id = $1")
            .bind(order)
            .fetch_one(&app.db)
            .await
            .unwrap()
            == 1
    })
    .await;
    assert_eq!(app.mails_to("early@example.com").await.len(), 1);
    app.publish(&OrderCreated {
        order_id: order,
        buyer_id: user,
        hold_id: Uuid::now_v7(),
        performance_id: Uuid::now_v7(),
        amount_krw: 7_000,
        expires_at: chrono::Utc::now(),
    })
    .await;
    let mails = app.wait_mails("early@example.com", 2).await;
    assert_eq!(mails[1]["Subject"], "[Boxoffice] Your refund is done");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM parked")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(left, 0);
}
