//! The hosted checkout page the browser is sent to: pick card or easy pay, then approve,
//! decline or cancel. It sends the browser back only to allowed origins.

use axum::{
    Form,
    extract::{
        Query, State,
        rejection::{FormRejection, QueryRejection},
    },
    http::{HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Response},
};
use serde::Deserialize;

use super::{Shared, api::open_checkout, error::PgError, model::Method, origin_of};

/// The checkout's parameters (query of the page, fields of its form).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Params {
    order_id: String,
    amount: String,
    order_name: String,
    success_url: String,
    fail_url: String,
    customer_name: String,
    /// `approved` or `declined`: skip the page.
    auto: Option<String>,
    /// `card` or `easypay`.
    method: Option<String>,
    /// `approve`, `decline` or `cancel` (the form's buttons).
    decision: Option<String>,
}

fn bad_request(why: &str) -> Response {
    (StatusCode::BAD_REQUEST, Html(error_page(why))).into_response()
}

/// Checks both redirect URLs before anything is sent to either.
fn check_urls(pg: &Shared, p: &Params) -> Result<(), &'static str> {
    for url in [&p.success_url, &p.fail_url] {
        let Some(origin) = origin_of(url) else {
            return Err("successUrl and failUrl must be http(s) URLs");
        };
        if !pg.origins.contains(&origin) {
            return Err("successUrl and failUrl must be on an allowed origin");
        }
    }
    Ok(())
}

fn back(url: &str, pairs: &[(&str, &str)]) -> Response {
    let sep = if url.contains('?') { '&' } else { '?' };
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", url_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    match HeaderValue::from_str(&format!("{url}{sep}{query}")) {
        Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
        Err(_) => bad_request("the redirect URL is not a valid header value"),
    }
}

fn fail(p: &Params, code: &str, message: &str) -> Response {
    back(
        &p.fail_url,
        &[
            ("code", code),
            ("message", message),
            ("orderId", &p.order_id),
        ],
    )
}

fn amount(p: &Params) -> Result<i64, &'static str> {
    p.amount
        .trim()
        .parse()
        .map_err(|_| "amount must be a whole number of won")
}

/// Approves (or declines) the checkout and sends the browser back.
fn conclude(pg: &Shared, p: &Params, approve: bool, method: Method) -> Response {
    if !approve {
        let (_, code, message) = PgError::Declined.parts();
        return fail(p, code, &message);
    }
    let amount = match amount(p) {
        Ok(a) => a,
        Err(why) => return bad_request(why),
    };
    let name = (!p.order_name.is_empty()).then_some(p.order_name.as_str());
    match open_checkout(pg, &p.order_id, amount, name, method) {
        Ok(payment) => back(
            &p.success_url,
            &[
                ("paymentType", "NORMAL"),
                ("paymentKey", &payment.payment_key),
                ("orderId", &payment.order_id),
                ("amount", &payment.total_amount.to_string()),
            ],
        ),
        Err(e) => {
            let (_, code, message) = e.parts();
            fail(p, code, &message)
        }
    }
}

/// `GET /checkout`.
pub(crate) async fn page(
    State(pg): State<Shared>,
    query: Result<Query<Params>, QueryRejection>,
) -> Response {
    let Ok(Query(p)) = query else {
        return bad_request("the checkout's parameters cannot be read");
    };
    if let Err(why) = check_urls(&pg, &p) {
        return bad_request(why);
    }
    if let Err(why) = amount(&p) {
        return bad_request(why);
    }
    let method = p
        .method
        .as_deref()
        .and_then(Method::parse)
        .unwrap_or(Method::Card);
    match p.auto.as_deref() {
        Some("approved") => return conclude(&pg, &p, true, method),
        Some("declined") => return conclude(&pg, &p, false, method),
        Some(_) => return bad_request("auto must be `approved` or `declined`"),
        None => {}
    }
    Html(checkout_page(&p)).into_response()
}

/// `POST /checkout`: the page's form.
pub(crate) async fn decide(
    State(pg): State<Shared>,
    form: Result<Form<Params>, FormRejection>,
) -> Response {
    let Ok(Form(p)) = form else {
        return bad_request("the form cannot be read");
    };
    // The form is the buyer's, so everything is checked again.
    if let Err(why) = check_urls(&pg, &p) {
        return bad_request(why);
    }
    let method = match p.method.as_deref().map(Method::parse) {
        Some(Some(m)) => m,
        _ => return bad_request("choose card or easy pay"),
    };
    match p.decision.as_deref() {
        Some("approve") => conclude(&pg, &p, true, method),
        Some("decline") => conclude(&pg, &p, false, method),
        _ => fail(
            &p,
            "PAY_PROCESS_CANCELED",
            "사용자에 의해 결제가 취소되었습니다. (canceled by the buyer)",
        ),
    }
}

/// Escapes text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query value.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char);
            }
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        r#"<input type="hidden" name="{name}" value="{}">"#,
        escape(value)
    )
}

fn checkout_page(p: &Params) -> String {
    let fields = [
        ("orderId", p.order_id.as_str()),
        ("amount", &p.amount),
        ("orderName", &p.order_name),
        ("successUrl", &p.success_url),
        ("failUrl", &p.fail_url),
        ("customerName", &p.customer_name),
    ]
    .iter()
    .map(|(k, v)| hidden(k, v))
    .collect::<String>();
    format!(
        r#"<!doctype html>
<html lang="ko"><head><meta charset="utf-8"><title>결제하기 (sandbox)</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto}}label{{display:block;margin:.6rem 0}}button{{margin-right:.5rem;padding:.4rem 1rem}}</style>
</head><body>
<h1>결제하기 <small>(sandbox PG)</small></h1>
<p>{name} — <b>{amount}원</b></p>
<form method="post">
{fields}
<label><input type="radio" name="method" value="card" checked> 카드 (card)</label>
<label><input type="radio" name="method" value="easypay"> 간편결제 (easy pay)</label>
<button type="submit" name="decision" value="approve">Pay</button>
<button type="submit" name="decision" value="decline">Decline (card refused)</button>
<button type="submit" name="decision" value="cancel">Cancel</button>
</form></body></html>"#,
        name = escape(if p.order_name.is_empty() {
            "Boxoffice order"
        } else {
            &p.order_name
        }),
        amount = escape(&p.amount),
    )
}

fn error_page(why: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Checkout error (sandbox)</title></head>
<body><h1>The checkout cannot go on</h1><p>{}</p></body></html>"#,
        escape(why)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_values_are_escaped_and_encoded() {
        assert_eq!(
            escape("<a href=\"x\">'&"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;"
        );
        assert_eq!(url_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        let p = Params {
            order_name: "<script>".into(),
            success_url: "http://x/\"><script>".into(),
            ..Params::default()
        };
        let html = checkout_page(&p);
        assert!(!html.contains("<script>"), "{html}");
    }
}
