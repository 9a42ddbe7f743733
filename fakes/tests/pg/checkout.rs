//! The hosted checkout page: the browser's way through, and no open redirect.

use reqwest::{StatusCode, header};

use crate::helpers::{SHOP, order_id, spawn};

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// The redirect's target and its query parameters.
fn location(r: &reqwest::Response) -> (String, Vec<(String, String)>) {
    assert_eq!(r.status(), StatusCode::FOUND);
    let loc = r.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let (base, query) = loc.split_once('?').unwrap();
    let pairs = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), decode(v))
        })
        .collect();
    (base.to_owned(), pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {pairs:?}"))
}

fn query(order: &str, success: &str, fail: &str) -> Vec<(&'static str, String)> {
    vec![
        ("orderId", order.to_owned()),
        ("amount", "12000".to_owned()),
        ("orderName", "<b>Giants vs Twins</b>".to_owned()),
        ("successUrl", success.to_owned()),
        ("failUrl", fail.to_owned()),
    ]
}

#[tokio::test]
async fn the_page_offers_card_and_easy_pay_with_everything_escaped() {
    let pg = spawn().await;
    let r = pg
        .client
        .get(pg.url("/checkout"))
        .query(&query(
            &order_id(),
            &format!("{SHOP}/pay/ok"),
            &format!("{SHOP}/pay/fail"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"value="card""#) && html.contains(r#"value="easypay""#));
    assert!(html.contains("&lt;b&gt;Giants vs Twins&lt;/b&gt;"));
    assert!(!html.contains("<b>Giants"));
}

#[tokio::test]
async fn approving_sends_the_browser_back_with_what_confirm_needs() {
    let pg = spawn().await;
    let order = order_id();
    let mut q = query(
        &order,
        &format!("{SHOP}/pay/ok?lang=ko"),
        &format!("{SHOP}/pay/fail"),
    );
    q.push(("auto", "approved".into()));
    let r = pg
        .client
        .get(pg.url("/checkout"))
        .query(&q)
        .send()
        .await
        .unwrap();
    let (base, pairs) = location(&r);
    assert_eq!(base, format!("{SHOP}/pay/ok"));
    assert_eq!(
        param(&pairs, "lang"),
        "ko",
        "the success URL's own query is kept"
    );
    assert_eq!(param(&pairs, "orderId"), order);
    assert_eq!(param(&pairs, "amount"), "12000");
    let body = serde_json::json!({
        "paymentKey": param(&pairs, "paymentKey"),
        "orderId": order,
        "amount": 12000,
    });
    let (status, done) = pg.confirm(&body).await;
    assert_eq!(
        (status, done["orderName"].as_str()),
        (StatusCode::OK, Some("<b>Giants vs Twins</b>"))
    );
}

#[tokio::test]
async fn the_form_approves_by_easy_pay_declines_or_cancels() {
    let pg = spawn().await;
    let post = |decision: &'static str, method: &'static str| {
        let order = order_id();
        let mut form = query(
            &order,
            &format!("{SHOP}/pay/ok"),
            &format!("{SHOP}/pay/fail"),
        );
        form.push(("method", method.into()));
        form.push(("decision", decision.into()));
        let req = pg.client.post(pg.url("/checkout")).form(&form);
        async move { (order, req.send().await.unwrap()) }
    };
    let (_, r) = post("approve", "easypay").await;
    let (base, pairs) = location(&r);
    assert_eq!(base, format!("{SHOP}/pay/ok"));
    let (_, payment) = pg.payment(param(&pairs, "paymentKey")).await;
    assert_eq!(
        (payment["status"].as_str(), payment["method"].as_str()),
        (Some("READY"), Some("간편결제"))
    );

    let (order, r) = post("decline", "card").await;
    let (base, pairs) = location(&r);
    assert_eq!(base, format!("{SHOP}/pay/fail"));
    assert_eq!(param(&pairs, "code"), "REJECT_CARD_COMPANY");
    assert_eq!(param(&pairs, "orderId"), order);
    assert!(!param(&pairs, "message").is_empty());

    let (_, r) = post("cancel", "card").await;
    assert_eq!(param(&location(&r).1, "code"), "PAY_PROCESS_CANCELED");
}

#[tokio::test]
async fn the_page_never_redirects_off_the_allowed_origins() {
    let pg = spawn().await;
    let ok = format!("{SHOP}/pay/ok");
    for evil in [
        "https://evil.example/steal",
        "http://shop.test.evil.example/",
        "http://shop.test@evil.example/",
        "javascript:alert(1)",
        "//evil.example/",
        "http://shop.test/\r\nSet-Cookie: a=b",
    ] {
        for (success, fail) in [(evil, ok.as_str()), (ok.as_str(), evil)] {
            let mut q = query(&order_id(), success, fail);
            q.push(("auto", "approved".into()));
            let r = pg
                .client
                .get(pg.url("/checkout"))
                .query(&q)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{evil}");
            assert!(r.headers().get(header::LOCATION).is_none());
            let mut form = query(&order_id(), success, fail);
            form.push(("method", "card".into()));
            form.push(("decision", "decline".into()));
            let r = pg
                .client
                .post(pg.url("/checkout"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{evil}");
            assert!(r.headers().get(header::LOCATION).is_none());
        }
    }
}

#[tokio::test]
async fn a_bad_amount_is_a_page_not_a_payment() {
    let pg = spawn().await;
    let mut q = query(&order_id(), &format!("{SHOP}/ok"), &format!("{SHOP}/fail"));
    q[1].1 = "12,000".into();
    let r = pg
        .client
        .get(pg.url("/checkout"))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.headers().get(header::LOCATION).is_none());
}
