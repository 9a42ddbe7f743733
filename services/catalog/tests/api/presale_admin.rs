//! Undoing a presale: a member taken out of a group is out of every presale the group opens
//! (re-published without them), and a performance's presale audience can be removed whole.

use platform::auth::Role;
use serde_json::json;
use uuid::Uuid;

use crate::support::{concert, hall, next_publication, spawn};

#[tokio::test]
async fn a_member_taken_out_and_a_presale_removed_are_republished() {
    let app = spawn("cat_presale_undo").await;
    let admin = app.token(&[Role::Admin]);
    let (status, _, venue) = app
        .send("POST", "/api/v1/admin/venues", Some(&admin), &hall())
        .await;
    assert_eq!(status, 201, "{venue}");
    let (status, _, event) = app
        .send(
            "POST",
            "/api/v1/admin/events",
            Some(&admin),
            &concert(venue["id"].as_str().unwrap(), app.now()),
        )
        .await;
    assert_eq!(status, 201, "{event}");
    let perf: Uuid = event["performances"][0]["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, _, group) = app
        .send(
            "POST",
            "/api/v1/admin/member-groups",
            Some(&admin),
            &json!({"name": "팬클럽"}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let (kept, dropped) = (Uuid::now_v7(), Uuid::now_v7());
    let (status, _, body) = app
        .send(
            "POST",
            &format!("/api/v1/admin/member-groups/{group_id}/members"),
            Some(&admin),
            &json!({"account_ids": [kept, dropped]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = app
        .send(
            "PUT",
            &format!("/api/v1/admin/performances/{perf}/presale"),
            Some(&admin),
            &json!({"group_id": group_id, "ticket_limit": 2}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let mut sub = app.subscribe().await;
    let (status, _, body) = app
        .send(
            "POST",
            &format!("/api/v1/admin/performances/{perf}/publish"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (published, _) = next_publication(&mut sub, perf).await;
    let rules = published.presale.expect("a members' presale");
    assert_eq!(rules.members.len(), 2);

    // Someone else may not take members out; an account not in the group is no member.
    let stranger = app.token(&[Role::Organizer]);
    let path = format!("/api/v1/admin/member-groups/{group_id}/members/{dropped}");
    let (status, _, problem) = app.send("DELETE", &path, Some(&stranger), &json!({})).await;
    assert_eq!(status, 403, "{problem}");
    let (status, _, problem) = app
        .send(
            "DELETE",
            &format!(
                "/api/v1/admin/member-groups/{group_id}/members/{}",
                Uuid::now_v7()
            ),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(status, 404, "{problem}");
    let (status, _, problem) = app
        .send(
            "DELETE",
            &format!("/api/v1/admin/member-groups/{group_id}/members/not-a-uuid"),
            Some(&admin),
            &json!({}),
        )
        .await;
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["code"], "validation_failed");

    let (status, _, body) = app.send("DELETE", &path, Some(&admin), &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["member_count"], 1);
    let (published, _) = next_publication(&mut sub, perf).await;
    let rules = published.presale.expect("still a members' presale");
    assert_eq!(rules.members, vec![kept], "the one taken out is out");
    let (status, _, _) = app.send("DELETE", &path, Some(&admin), &json!({})).await;
    assert_eq!(status, 404, "out already");

    // The presale itself removed: published without an audience, and only once.
    let presale = format!("/api/v1/admin/performances/{perf}/presale");
    let (status, _, problem) = app
        .send("DELETE", &presale, Some(&stranger), &json!({}))
        .await;
    assert_eq!(status, 403, "{problem}");
    let (status, _, body) = app.send("DELETE", &presale, Some(&admin), &json!({})).await;
    assert_eq!(status, 204, "{body}");
    let (published, _) = next_publication(&mut sub, perf).await;
    assert!(published.presale.is_none(), "{:?}", published.presale);
    let (status, _, problem) = app.send("DELETE", &presale, Some(&admin), &json!({})).await;
    assert_eq!(status, 404, "{problem}");
    let (_, detail) = app
        .get(&format!("/api/v1/events/{}", event["id"].as_str().unwrap()))
        .await;
    assert_eq!(detail["presales"], json!([]), "{detail}");
    app.finish().await;
}
