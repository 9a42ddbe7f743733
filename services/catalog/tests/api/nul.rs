//! NUL (U+0000), which no PostgreSQL text column stores, gave a 500 from the database: it is
//! refused with 400 `validation_failed` in bodies and in query strings, and nothing is written.

use platform::auth::Role;
use serde_json::Value;

use crate::support::{hall, spawn};

#[tokio::test]
async fn nul_in_a_body_or_a_search_is_a_validation_error_and_writes_nothing() {
    let app = spawn("cat_nul").await;
    let token = app.token(&[Role::Organizer]);
    let venues = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM venues")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    let before = venues().await;
    let mut body = hall();
    body["name"] = Value::String("Hall\u{0}One".into());
    let (status, _, problem) = app
        .send("POST", "/api/v1/admin/venues", Some(&token), &body)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("validation_failed")),
        "{problem}"
    );
    assert_eq!(venues().await, before);
    // The same body without it is accepted: the NUL was the only fault.
    body["name"] = Value::String("Hall One".into());
    let (status, _, created) = app
        .send("POST", "/api/v1/admin/venues", Some(&token), &body)
        .await;
    assert_eq!(status, 201, "{created}");
    // Search and listing parameters.
    for path in [
        "/api/v1/events?q=%00",
        "/api/v1/events?q=%EC%9E%A0%00%EC%8B%A4",
    ] {
        let (status, problem) = app.get(path).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (400, Some("validation_failed")),
            "{path}"
        );
    }
    app.finish().await;
}
