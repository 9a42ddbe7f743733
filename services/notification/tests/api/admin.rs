//! The admin API's guards and answers: no token, a buyer's token, unknown and malformed ids,
//! bad filters, the OpenAPI document; a user's own preferences.

use platform::auth::Role;
use uuid::Uuid;

use crate::helpers::{spawn, wait_delivery};

#[tokio::test]
async fn only_admins_see_and_re_drive_deliveries_and_errors_are_problems() {
    let app = spawn().await;
    let (user, _) = app
        .register("someone@example.kr", "누군가", None, None)
        .await;
    let sent = wait_delivery(&app, user, "welcome", "sent", |d| d["status"] == "sent").await;
    let id = sent["id"].as_str().unwrap().to_owned();
    let buyer = app.issuer.token(user, &[Role::Buyer]);
    let organizer = app.issuer.token(user, &[Role::Organizer]);
    let paths = [
        "/api/v1/notifications/deliveries".to_owned(),
        "/api/v1/notifications/dead-letters".to_owned(),
        format!("/api/v1/notifications/deliveries/{id}"),
    ];
    for path in &paths {
        let (status, body, ctype) = app.get(path, None).await;
        assert_eq!(
            (status, ctype.as_str()),
            (401, "application/problem+json"),
            "{path}"
        );
        assert_eq!(body["code"], "unauthorized");
        for token in [&buyer, &organizer] {
            let (status, body, _) = app.get(path, Some(token)).await;
            assert_eq!(status, 403, "{path}: {body}");
            assert_eq!(body["code"], "forbidden");
        }
    }
    let redrive = format!("/api/v1/notifications/deliveries/{id}/redrive");
    let (status, _, _) = app.post(&redrive, Some(&buyer)).await;
    assert_eq!(status, 403);
    let (status, _, _) = app.post(&redrive, Some("not-a-token")).await;
    assert_eq!(status, 401);

    let admin = app.admin();
    // Unknown and malformed ids.
    let unknown = Uuid::now_v7();
    for path in [
        format!("/api/v1/notifications/deliveries/{unknown}/redrive"),
        "/api/v1/notifications/deliveries/nonsense/redrive".to_owned(),
    ] {
        let (status, body, ctype) = app.post(&path, Some(&admin)).await;
        assert_eq!(
            (status, ctype.as_str()),
            (404, "application/problem+json"),
            "{path}"
        );
        assert_eq!(body["code"], "not_found");
    }
    let (status, body, _) = app
        .get(
            &format!("/api/v1/notifications/deliveries/{unknown}"),
            Some(&admin),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    // Bad filters.
    for (q, code) in [
        ("status=lost", "validation_failed"),
        ("limit=0", "validation_failed"),
        ("limit=201", "validation_failed"),
        ("kind=spam", "validation_failed"),
        ("colour=red", "invalid_query"),
        ("recipient_id=nobody", "invalid_query"),
    ] {
        let (status, body, _) = app
            .get(
                &format!("/api/v1/notifications/deliveries?{q}"),
                Some(&admin),
            )
            .await;
        assert_eq!(status, 400, "{q}: {body}");
        assert_eq!(body["code"], code, "{q}");
    }
    let (status, body, _) = app
        .get(
            &format!("/api/v1/notifications/deliveries/{id}"),
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["kind"], "welcome");
    assert_eq!(body["address"], "someone@example.kr");
    let (status, body, _) = app
        .get(
            "/api/v1/notifications/deliveries?status=sent&kind=welcome&limit=1",
            Some(&admin),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["deliveries"].as_array().unwrap().len(), 1);
    assert!(body["next"].is_string(), "a full page has a next: {body}");

    let (status, doc, _) = app.get("/api/docs/notification/openapi.json", None).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/v1/notifications/deliveries/{id}/redrive"]["post"].is_object());
}

#[tokio::test]
async fn a_user_sets_their_language_and_marketing_choice() {
    let app = spawn().await;
    let (user, _) = app.register("prefs@example.kr", "설정", None, None).await;
    app.wait_mails("prefs@example.kr", 1).await;
    let token = app.issuer.token(user, &[Role::Buyer]);
    let path = "/api/v1/me/notifications/preferences";
    let (status, body, _) = app.get(path, Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"locale": null, "marketing": false})
    );
    let put = |body: serde_json::Value| {
        app.server
            .client
            .put(app.server.url(path))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = crate::helpers::answer(
        put(serde_json::json!({"locale": "en", "marketing": true}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.0, 200, "{:?}", r.1);
    assert_eq!(r.1, serde_json::json!({"locale": "en", "marketing": true}));
    let r = crate::helpers::answer(put(serde_json::json!({"locale": "fr"})).await.unwrap()).await;
    assert_eq!(r.0, 400, "{:?}", r.1);
    assert_eq!(r.2, "application/problem+json");
    assert_eq!(r.1["code"], "validation_failed");
    // Someone this service never heard of.
    let stranger = app.issuer.token(Uuid::now_v7(), &[Role::Buyer]);
    let (status, body, _) = app.get(path, Some(&stranger)).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _, _) = app.get(path, None).await;
    assert_eq!(status, 401);

    // The next message comes in the language chosen.
    app.publish(&contracts::events::OrderCancelled {
        order_id: Uuid::now_v7(),
        buyer_id: user,
        performance_id: Uuid::now_v7(),
        seat_ids: vec![],
        areas: vec![],
        refund_krw: 0,
        reason: "expired".into(),
        hold_id: None,
    })
    .await;
    let mails = app.wait_mails("prefs@example.kr", 2).await;
    assert_eq!(mails[1]["Subject"], "[Boxoffice] Your order expired");
}
