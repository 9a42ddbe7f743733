//! Hostile input and crashes: a name with CR/LF cannot add a header or a recipient; a sender
//! that dies between the server's acceptance and the record sends again (at least once), with
//! the same Message-ID.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use async_trait::async_trait;
use notification::send::{Email, Mailer, SendError, SmtpMailer};

use crate::helpers::{config, python_reads, spawn, spawn_with, wait_delivery};

#[tokio::test]
async fn a_name_with_line_breaks_cannot_inject_headers_or_recipients() {
    let app = spawn().await;
    let (user, _) = app
        .register(
            "mallory@example.kr",
            "Mallory\r\nBcc: victim@evil.test\r\nSubject: free tickets",
            Some("en"),
            None,
        )
        .await;
    let mails = app.wait_mails("mallory@example.kr", 1).await;
    assert_eq!(mails[0]["Subject"], "Welcome to Boxoffice");
    let stored = app.mail.mailbox.messages();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].envelope_to,
        ["mallory@example.kr"],
        "no extra recipient"
    );
    let raw = String::from_utf8_lossy(&stored[0].raw).to_string();
    for line in raw.lines() {
        assert!(!line.to_ascii_lowercase().starts_with("bcc:"), "{raw}");
    }
    assert_eq!(
        raw.matches("\nSubject:").count() + usize::from(raw.starts_with("Subject:")),
        1,
        "{raw}"
    );
    let read = python_reads(&stored[0].raw);
    assert_eq!(read["bcc"], serde_json::Value::Null);
    assert_eq!(read["to_count"], 1);
    assert_eq!(read["to_address"], "mallory@example.kr");
    assert_eq!(read["subject"], "Welcome to Boxoffice");
    assert!(
        read["text"].as_str().unwrap().contains("Hello Mallory"),
        "{read}"
    );

    // An address with a line break in it is refused for good, not sent.
    let (bad, _) = app
        .register("eve@example.kr\r\nRCPT TO:<x@evil.test>", "Eve", None, None)
        .await;
    let dead = wait_delivery(&app, bad, "welcome", "dead", |d| d["status"] == "dead").await;
    assert!(
        dead["last_error"]
            .as_str()
            .unwrap()
            .contains("invalid address"),
        "{dead}"
    );
    assert_eq!(app.mail.mailbox.messages().len(), 1);
    let _ = user;
}

/// Sends through SMTP, then dies (panics) before the dispatcher can record the first send: a
/// crash between "sent" and "recorded".
struct DiesAfterFirstSend {
    smtp: SmtpMailer,
    sends: AtomicUsize,
}

#[async_trait]
impl Mailer for DiesAfterFirstSend {
    async fn send(&self, email: &Email) -> Result<String, SendError> {
        let id = self.smtp.send(email).await?;
        if self.sends.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("simulated crash after the server accepted the message");
        }
        Ok(id)
    }
}

#[tokio::test]
async fn a_crash_between_sent_and_recorded_sends_again_with_the_same_message_id() {
    // A first app only to learn the catcher's address; the second one is the test.
    let mut c = config();
    c.lease_ms = 500;
    let probe = spawn_with(c.clone(), None).await;
    let mut smtp = c.smtp.clone();
    smtp.host = probe.config.smtp.host.clone();
    smtp.port = probe.config.smtp.port;
    let mailer = Arc::new(DiesAfterFirstSend {
        smtp: SmtpMailer::new(&smtp).unwrap(),
        sends: AtomicUsize::new(0),
    });
    let mut app = probe;
    app.mailer = Some(mailer.clone());
    app.restart(c).await;

    let (user, _) = app
        .register("twice-sent@example.kr", "중복", None, None)
        .await;
    // The sender died after the first copy was accepted; its lease ran out and the restarted
    // sender sent the delivery again: at least once, never lost.
    let mails = app.wait_mails("twice-sent@example.kr", 2).await;
    let sent = wait_delivery(&app, user, "welcome", "recorded sent", |d| {
        d["status"] == "sent"
    })
    .await;
    assert_eq!(sent["attempts"], 2, "{sent}");
    let ids: Vec<String> = mails
        .iter()
        .map(|m| m["MessageID"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids[0], ids[1], "the copy carries the same Message-ID");
    assert_eq!(
        ids[0],
        format!("{}@boxoffice.notification", sent["id"].as_str().unwrap())
    );
    assert_eq!(mailer.sends.load(Ordering::SeqCst), 2);
}
