//! The catcher's HTTP API, in the shape of Mailpit's (`/api/v1/...`, PascalCase fields), plus
//! the sandbox's fault switch.

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, put},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FaultMode, Mailbox, Stored, mime};

/// The routes, rooted at `/`.
pub fn router(mailbox: Mailbox) -> Router {
    Router::new()
        .route("/api/v1/messages", get(list).delete(delete))
        .route("/api/v1/message/{id}", get(one))
        .route("/api/v1/message/{id}/raw", get(raw))
        .route("/api/v1/sandbox/fault", put(set_fault).get(get_fault))
        .with_state(mailbox)
}

fn address(name_addr: (String, String)) -> Value {
    json!({"Name": name_addr.0, "Address": name_addr.1})
}

/// The parts of a message both the listing and the message show.
fn summary(m: &Stored, part: &mime::Part) -> serde_json::Map<String, Value> {
    let from = part
        .header("From")
        .map(mime::mailbox)
        .unwrap_or_else(|| (String::new(), m.envelope_from.clone()));
    let list = |h: &str| -> Vec<Value> {
        part.header(h)
            .map(mime::mailboxes)
            .unwrap_or_default()
            .into_iter()
            .map(address)
            .collect()
    };
    let mut to = list("To");
    if to.is_empty() {
        to = m
            .envelope_to
            .iter()
            .map(|a| address((String::new(), a.clone())))
            .collect();
    }
    let message_id = part
        .header("Message-ID")
        .unwrap_or("")
        .trim_matches(['<', '>'])
        .to_owned();
    let mut out = serde_json::Map::new();
    out.insert("ID".into(), m.id.clone().into());
    out.insert("MessageID".into(), message_id.into());
    out.insert("Read".into(), m.read.into());
    out.insert("From".into(), address(from));
    out.insert("To".into(), to.into());
    out.insert("Cc".into(), list("Cc").into());
    out.insert("Bcc".into(), Vec::<Value>::new().into());
    out.insert("ReplyTo".into(), list("Reply-To").into());
    out.insert(
        "Subject".into(),
        mime::decode_words(part.header("Subject").unwrap_or("")).into(),
    );
    out.insert("Created".into(), m.created.to_rfc3339().into());
    out.insert("Tags".into(), Vec::<Value>::new().into());
    out.insert("Size".into(), m.raw.len().into());
    out.insert("Attachments".into(), 0.into());
    out
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    start: usize,
    #[serde(default)]
    limit: Option<usize>,
}

async fn list(State(mailbox): State<Mailbox>, Query(page): Query<Page>) -> Json<Value> {
    let mut all = mailbox.messages();
    all.reverse();
    let total = all.len();
    let unread = all.iter().filter(|m| !m.read).count();
    let limit = page.limit.unwrap_or(50).clamp(1, 1_000);
    let messages: Vec<Value> = all
        .iter()
        .skip(page.start)
        .take(limit)
        .map(|m| {
            let part = mime::Part::parse(&m.raw);
            let mut s = summary(m, &part);
            let (text, _) = part.texts();
            let snippet: String = text
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .chars()
                .take(250)
                .collect();
            s.insert("Snippet".into(), snippet.into());
            Value::Object(s)
        })
        .collect();
    Json(json!({
        "total": total,
        "unread": unread,
        "count": messages.len(),
        "messages_count": total,
        "start": page.start,
        "tags": [],
        "messages": messages,
    }))
}

fn not_found(id: &str) -> Response {
    (StatusCode::NOT_FOUND, format!("message {id} not found")).into_response()
}

async fn one(State(mailbox): State<Mailbox>, Path(id): Path<String>) -> Response {
    let Some(m) = mailbox.message(&id, true) else {
        return not_found(&id);
    };
    let part = mime::Part::parse(&m.raw);
    let mut s = summary(&m, &part);
    let (text, html) = part.texts();
    s.insert("Text".into(), text.unwrap_or_default().into());
    s.insert("HTML".into(), html.unwrap_or_default().into());
    s.insert(
        "Date".into(),
        part.header("Date").unwrap_or_default().to_owned().into(),
    );
    s.insert("ReturnPath".into(), m.envelope_from.clone().into());
    s.insert("Inline".into(), Vec::<Value>::new().into());
    s.insert("Attachments".into(), Vec::<Value>::new().into());
    Json(Value::Object(s)).into_response()
}

async fn raw(State(mailbox): State<Mailbox>, Path(id): Path<String>) -> Response {
    match mailbox.message(&id, false) {
        Some(m) => ([(header::CONTENT_TYPE, "message/rfc822")], m.raw).into_response(),
        None => not_found(&id),
    }
}

#[derive(Debug, Deserialize)]
struct Ids {
    #[serde(rename = "IDs", default)]
    ids: Option<Vec<String>>,
}

async fn delete(State(mailbox): State<Mailbox>, body: Bytes) -> Response {
    let ids = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<Ids>(&body) {
            Ok(i) => i.ids,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        }
    };
    mailbox.delete(ids.as_deref());
    (StatusCode::OK, "ok").into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    mode: FaultMode,
    #[serde(default)]
    count: Option<u32>,
}

async fn set_fault(State(mailbox): State<Mailbox>, body: Bytes) -> Response {
    match serde_json::from_slice::<FaultBody>(&body) {
        Ok(f) => {
            mailbox.set_fault(f.mode, f.count);
            Json(json!({"mode": f.mode})).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

async fn get_fault(State(mailbox): State<Mailbox>) -> Json<Value> {
    Json(json!({"mode": mailbox.fault(), "refused": mailbox.refused()}))
}
