//! Marketing respects the opt-out: an announcement goes only to those who opted in, and not to
//! one who opted out before it was sent; transactional messages go to everyone.

use contracts::{Envelope, events::UserRegistered};
use platform::auth::Role;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{App, answer, spawn, wait_delivery};

async fn register(app: &App, email: &str, opt_in: bool, locale: &str) -> Uuid {
    let id = Uuid::now_v7();
    let mut env = Envelope::new(&UserRegistered {
        user_id: id,
        email: email.into(),
        name: email.split('@').next().unwrap().into(),
        phone: None,
    })
    .unwrap();
    env.payload["marketing_opt_in"] = opt_in.into();
    env.payload["locale"] = locale.into();
    app.publish_envelope(contracts::topics::USERS, &env).await;
    id
}

#[tokio::test]
async fn announcements_go_only_to_those_who_opted_in() {
    let app = spawn().await;
    let fan = register(&app, "fan@example.kr", true, "ko").await;
    let quiet = register(&app, "quiet@example.kr", false, "ko").await;
    let fickle = register(&app, "fickle@example.com", true, "en").await;
    // Everyone gets the (transactional) welcome, opted in or not.
    for a in ["fan@example.kr", "quiet@example.kr", "fickle@example.com"] {
        app.wait_mails(a, 1).await;
    }

    let admin = app.admin();
    let post = |token: String, body: serde_json::Value| {
        app.server
            .client
            .post(app.server.url("/api/v1/notifications/announcements"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let announcement = json!({
        "title": {"ko": "가을 시리즈 예매 오픈", "en": "Autumn series on sale"},
        "body": {"ko": "내일 10시에 예매가 열립니다.", "en": "Booking opens tomorrow at 10."},
    });
    let buyer = app.issuer.token(fan, &[Role::Buyer]);
    let (status, body, _) = answer(post(buyer, announcement.clone()).await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("forbidden")));
    let (status, body, _) = answer(
        post(
            admin.clone(),
            json!({"title": {"ko": "", "en": "x"}, "body": {"ko": "x", "en": "x"}}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_failed")),
        "{body}"
    );

    // The catcher is down while it is queued; meanwhile one of the two changes their mind.
    app.mail_fault("down").await;
    let (status, body, _) = answer(post(admin, announcement).await.unwrap()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["queued"], 2, "the two who opted in: {body}");
    let fickle_token = app.issuer.token(fickle, &[Role::Buyer]);
    let r = app
        .server
        .client
        .put(app.server.url("/api/v1/me/notifications/preferences"))
        .bearer_auth(fickle_token)
        .json(&json!({"marketing": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.mail_fault("none").await;

    let mails = app.wait_mails("fan@example.kr", 2).await;
    assert_eq!(mails[1]["Subject"], "(광고) 가을 시리즈 예매 오픈");
    let read = crate::helpers::python_reads(&app.raw(&mails[1]["ID"]).await);
    assert_eq!(read["subject"], "(광고) 가을 시리즈 예매 오픈");
    assert!(
        read["text"]
            .as_str()
            .unwrap()
            .contains("내일 10시에 예매가 열립니다.")
    );
    let skipped = wait_delivery(&app, fickle, "announcement", "skipped", |d| {
        d["status"] == "skipped"
    })
    .await;
    assert_eq!(skipped["last_error"], "opted_out");
    assert_eq!(
        app.mails_to("fickle@example.com").await.len(),
        1,
        "the welcome only"
    );
    assert_eq!(
        app.mails_to("quiet@example.kr").await.len(),
        1,
        "the welcome only"
    );
    assert!(
        app.deliveries_to(quiet)
            .await
            .iter()
            .all(|d| d["kind"] != "announcement")
    );
}
