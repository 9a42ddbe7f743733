//! A mail catcher: a real SMTP server that stores every message it accepts, and an HTTP API in the
//! shape of Mailpit's (so the real Mailpit can stand in for it) that shows them.
//!
//! SMTP ([`smtp`]): plain SMTP on its own TCP port — `EHLO`/`HELO`, `MAIL FROM` (with `SIZE=`),
//! `RCPT TO`, `DATA` (dot-unstuffed, at most [`Options::max_message_bytes`]), `RSET`, `NOOP`,
//! `QUIT`. No TLS and no authentication: it is a sandbox on loopback, never a relay.
//!
//! HTTP ([`api`]), mounted at `/sandbox/mail/` in standalone:
//! - `GET /api/v1/messages?start&limit` → `{total, unread, count, start, messages: [{ID,
//!   MessageID, From: {Name, Address}, To: [...], Cc, Bcc, Subject, Created, Size, Snippet,
//!   Read}]}`, newest first, the subject decoded (RFC 2047);
//! - `GET /api/v1/message/{ID}` → the message with its decoded `Text` and `HTML`;
//! - `GET /api/v1/message/{ID}/raw` → the message as received;
//! - `DELETE /api/v1/messages` → every message deleted (with `{"IDs": [...]}`: those);
//! - `PUT /api/v1/sandbox/fault {"mode": "none"|"temporary"|"permanent"|"down", "count"?}` —
//!   not Mailpit's: makes the SMTP server answer `451` (temporary) or `550` (permanent) to
//!   `RCPT TO`, or drop every connection before its greeting (down), for the next `count`
//!   transactions or until set back to `none`; or close its port (`refuse`: connections are
//!   refused until the mode changes). Also [`Mailbox::set_fault`].
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let mail = fakes::mail::spawn(fakes::mail::Options::default()).await?;
//! // point an SMTP client at mail.smtp_addr, then:
//! let list: serde_json::Value = reqwest::get(mail.url("/api/v1/messages")).await.unwrap()
//!     .json().await.unwrap();
//! assert_eq!(list["total"], 0);
//! # Ok(()) }
//! ```

pub mod api;
pub mod mime;
pub mod smtp;

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::{CancellationToken, DropGuard};

/// The catcher's settings (`fakes.mail.*`), for `boxoffice serve fake-mail`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The SMTP side's port when served on its own (env `BOXOFFICE_FAKES__MAIL__SMTP_PORT`;
    /// default 1025, Mailpit's); standalone uses a free loopback port.
    pub smtp_port: u16,
}

impl Default for Settings {
    fn default() -> Self {
        Self { smtp_port: 1025 }
    }
}

/// How the catcher is set up.
#[derive(Debug, Clone)]
pub struct Options {
    /// Largest message `DATA` accepts, in bytes (default 10 MiB); larger ones are refused `552`.
    pub max_message_bytes: usize,
    /// Most messages kept; the oldest go first (default 1,000).
    pub max_messages: usize,
    /// Most recipients of one message (default 100).
    pub max_recipients: usize,
    /// The name it greets with.
    pub hostname: String,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_message_bytes: 10 * 1024 * 1024,
            max_messages: 1_000,
            max_recipients: 100,
            hostname: "mail.sandbox.boxoffice.invalid".into(),
        }
    }
}

/// What the SMTP server does instead of accepting mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultMode {
    /// Accept mail.
    #[default]
    None,
    /// `451 4.3.0` to every `RCPT TO`: try again later.
    Temporary,
    /// `550 5.1.1` to every `RCPT TO`: never.
    Permanent,
    /// Close every connection before the greeting, as a server that is going down.
    Down,
    /// Close the SMTP port itself: connections are refused, as with no server at all; it opens
    /// again (same port) when the mode changes. `count` does not apply.
    Refuse,
}

/// A received message.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Its id in the listing.
    pub id: String,
    /// The envelope sender (`MAIL FROM`).
    pub envelope_from: String,
    /// The envelope recipients (`RCPT TO`).
    pub envelope_to: Vec<String>,
    /// The message as received (after dot-unstuffing).
    pub raw: Vec<u8>,
    /// When it was received.
    pub created: DateTime<Utc>,
    /// Whether it was read through `GET /api/v1/message/{ID}`.
    pub read: bool,
}

#[derive(Debug, Default)]
struct State {
    messages: VecDeque<Stored>,
    fault: FaultMode,
    /// Transactions left under the fault; `None`: until changed.
    fault_left: Option<u32>,
    /// Connections and transactions the fault refused, for tests.
    refused: u64,
}

/// The catcher's store and fault switch, shared by the SMTP server and the HTTP API.
#[derive(Debug, Clone)]
pub struct Mailbox {
    state: Arc<Mutex<State>>,
    options: Arc<Options>,
    /// Woken on every change of the fault switch (the SMTP server closes or reopens its port).
    changed: Arc<tokio::sync::Notify>,
}

impl Mailbox {
    /// An empty mailbox.
    pub fn new(options: Options) -> Self {
        Self {
            state: Arc::default(),
            options: Arc::new(options),
            changed: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: keep serving it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Its settings.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Makes the server fail as `mode` for the next `count` transactions (`None`: until changed).
    pub fn set_fault(&self, mode: FaultMode, count: Option<u32>) {
        {
            let mut s = self.lock();
            s.fault = mode;
            s.fault_left = count;
        }
        self.changed.notify_waiters();
    }

    /// Resolves at the next change of the fault switch.
    pub(crate) fn fault_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// The fault in force now.
    pub fn fault(&self) -> FaultMode {
        self.lock().fault
    }

    /// How many connections or transactions a fault refused so far.
    pub fn refused(&self) -> u64 {
        self.lock().refused
    }

    /// Takes one use of the fault when it is one of `modes` (the faults that apply at this step
    /// of a session): what the server should do now.
    pub(crate) fn take_fault(&self, modes: &[FaultMode]) -> FaultMode {
        let mut s = self.lock();
        let mode = s.fault;
        if mode == FaultMode::None || !modes.contains(&mode) {
            return FaultMode::None;
        }
        s.refused += 1;
        if let Some(left) = s.fault_left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                s.fault = FaultMode::None;
                s.fault_left = None;
            }
        }
        mode
    }

    /// Stores a message; answers its id.
    pub fn store(&self, envelope_from: String, envelope_to: Vec<String>, raw: Vec<u8>) -> String {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut s = self.lock();
        while s.messages.len() >= self.options.max_messages.max(1) {
            s.messages.pop_front();
        }
        s.messages.push_back(Stored {
            id: id.clone(),
            envelope_from,
            envelope_to,
            raw,
            created: Utc::now(),
            read: false,
        });
        id
    }

    /// Every message, oldest first.
    pub fn messages(&self) -> Vec<Stored> {
        self.lock().messages.iter().cloned().collect()
    }

    /// One message, marked read when `mark_read`.
    pub fn message(&self, id: &str, mark_read: bool) -> Option<Stored> {
        let mut s = self.lock();
        let m = s.messages.iter_mut().find(|m| m.id == id)?;
        if mark_read {
            m.read = true;
        }
        Some(m.clone())
    }

    /// Deletes those messages (`None`: all).
    pub fn delete(&self, ids: Option<&[String]>) {
        let mut s = self.lock();
        match ids {
            None => s.messages.clear(),
            Some(ids) => s.messages.retain(|m| !ids.contains(&m.id)),
        }
    }
}

impl Default for Mailbox {
    fn default() -> Self {
        Self::new(Options::default())
    }
}

/// The catcher's HTTP API (its SMTP server is [`smtp::serve`]).
pub fn router(mailbox: Mailbox) -> axum::Router {
    api::router(mailbox)
}

/// A catcher running on loopback: SMTP and HTTP each on a free port. Dropping it stops both.
pub struct Running {
    /// The SMTP server's address.
    pub smtp_addr: SocketAddr,
    /// The HTTP API's `http://127.0.0.1:<port>`.
    pub base_url: String,
    /// The store and fault switch.
    pub mailbox: Mailbox,
    _stop: DropGuard,
}

impl Running {
    /// `base_url + path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

/// Starts the SMTP server and the HTTP API on free loopback ports.
pub async fn spawn(options: Options) -> std::io::Result<Running> {
    let mailbox = Mailbox::new(options);
    let smtp = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let smtp_addr = smtp.local_addr()?;
    let http = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let http_addr = http.local_addr()?;
    let stop = CancellationToken::new();
    tokio::spawn(smtp::serve(smtp, mailbox.clone(), stop.clone()));
    let router = router(mailbox.clone());
    let token = stop.clone();
    tokio::spawn(async move {
        let served = axum::serve(http, router)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "mail catcher's HTTP API stopped");
        }
    });
    Ok(Running {
        smtp_addr,
        base_url: format!("http://{http_addr}"),
        mailbox,
        _stop: stop.drop_guard(),
    })
}

#[cfg(test)]
mod tests;
