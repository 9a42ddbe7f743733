//! The catcher over real TCP: a raw SMTP conversation, dot-unstuffing, limits, faults and the
//! Mailpit-shaped listing.

#![allow(clippy::unwrap_used)]

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

use super::{FaultMode, Options, spawn};

/// Polls `condition` every 20 ms until it holds, for at most `timeout`.
async fn eventually<F, Fut>(what: &str, timeout: std::time::Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

struct Client {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: std::net::SocketAddr) -> Self {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Self {
            r: BufReader::new(r),
            w,
        }
    }

    /// The next reply (all its lines), or "" when the server closed.
    async fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).await.unwrap() == 0 {
                return all;
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    async fn say(&mut self, line: &str) -> String {
        self.w.write_all(line.as_bytes()).await.unwrap();
        self.w.write_all(b"\r\n").await.unwrap();
        self.reply().await
    }
}

#[tokio::test]
async fn a_conversation_is_stored_unstuffed_and_listed_like_mailpit() {
    let mail = spawn(Options {
        max_message_bytes: 4_096,
        ..Options::default()
    })
    .await
    .unwrap();
    let mut c = Client::connect(mail.smtp_addr).await;
    assert!(c.reply().await.starts_with("220 "));
    assert!(
        c.say("MAIL FROM:<a@b.kr>").await.starts_with("503"),
        "EHLO first"
    );
    let ehlo = c.say("EHLO client.test").await;
    assert!(ehlo.contains("250-SIZE 4096"), "{ehlo}");
    assert!(
        c.say("RCPT TO:<x@y.kr>").await.starts_with("503"),
        "MAIL first"
    );
    assert!(
        c.say("MAIL FROM:<a@b.kr> SIZE=99999")
            .await
            .starts_with("552")
    );
    assert!(
        c.say("MAIL FROM:<a@b.kr> SIZE=100")
            .await
            .starts_with("250")
    );
    assert!(c.say("RCPT TO:<x@y.kr>").await.starts_with("250"));
    assert!(c.say("NOOP").await.starts_with("250"));
    assert!(c.say("DATA").await.starts_with("354"));
    let body = "From: =?utf-8?b?67CV7Iqk?= <a@b.kr>\r\nTo: X <x@y.kr>\r\nSubject: =?utf-8?b?7JiI66ek7ZmV7J24?=\r\nMessage-ID: <m1@b.kr>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nline one\r\n..starts with a dot\r\n.";
    assert!(c.say(body).await.starts_with("250"));
    // RSET, then a message too large for DATA.
    assert!(c.say("RSET").await.starts_with("250"));
    c.say("MAIL FROM:<a@b.kr>").await;
    c.say("RCPT TO:<x@y.kr>").await;
    c.say("DATA").await;
    let big = format!("Subject: big\r\n\r\n{}\r\n.", "x".repeat(5_000));
    assert!(c.say(&big).await.starts_with("552"));
    assert!(c.say("QUIT").await.starts_with("221"));

    let stored = mail.mailbox.messages();
    assert_eq!(stored.len(), 1);
    let raw = String::from_utf8(stored[0].raw.clone()).unwrap();
    assert!(raw.contains("\r\n.starts with a dot\r\n"), "{raw}");

    let list: serde_json::Value = reqwest::get(mail.url("/api/v1/messages"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["count"], 1);
    let m = &list["messages"][0];
    assert_eq!(m["Subject"], "예매확인");
    assert_eq!(m["From"]["Name"], "박스");
    assert_eq!(m["From"]["Address"], "a@b.kr");
    assert_eq!(m["To"][0]["Address"], "x@y.kr");
    assert_eq!(m["MessageID"], "m1@b.kr");
    assert!(m["Snippet"].as_str().unwrap().starts_with("line one"));
    let id = m["ID"].as_str().unwrap();
    let one: serde_json::Value = reqwest::get(mail.url(&format!("/api/v1/message/{id}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(one["Text"].as_str().unwrap().contains(".starts with a dot"));
    let missing = reqwest::get(mail.url("/api/v1/message/nope"))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);

    let client = reqwest::Client::new();
    let del = client
        .delete(mail.url("/api/v1/messages"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), 200);
    assert!(mail.mailbox.messages().is_empty());
}

#[tokio::test]
async fn faults_refuse_temporarily_permanently_or_drop_the_connection() {
    let mail = spawn(Options::default()).await.unwrap();
    let client = reqwest::Client::new();
    let put = |mode: &'static str| {
        client
            .put(mail.url("/api/v1/sandbox/fault"))
            .json(&serde_json::json!({"mode": mode}))
            .send()
    };
    assert_eq!(put("temporary").await.unwrap().status(), 200);
    let mut c = Client::connect(mail.smtp_addr).await;
    c.reply().await;
    c.say("HELO t").await;
    c.say("MAIL FROM:<a@b.kr>").await;
    assert!(c.say("RCPT TO:<x@y.kr>").await.starts_with("451"));
    put("permanent").await.unwrap();
    assert!(c.say("RCPT TO:<x@y.kr>").await.starts_with("550"));

    put("down").await.unwrap();
    let mut d = Client::connect(mail.smtp_addr).await;
    assert_eq!(d.reply().await, "", "closed before any greeting");

    // The port closed: connections are refused; opened again on the same port after.
    put("refuse").await.unwrap();
    eventually(
        "the port is closed",
        std::time::Duration::from_secs(5),
        || async { TcpStream::connect(mail.smtp_addr).await.is_err() },
    )
    .await;
    put("none").await.unwrap();
    eventually(
        "the port is open",
        std::time::Duration::from_secs(5),
        || async { TcpStream::connect(mail.smtp_addr).await.is_ok() },
    )
    .await;
    let mut back = Client::connect(mail.smtp_addr).await;
    assert!(back.reply().await.starts_with("220 "));

    // A fault for one transaction only, then back to normal.
    mail.mailbox.set_fault(FaultMode::Temporary, Some(1));
    let mut e = Client::connect(mail.smtp_addr).await;
    e.reply().await;
    e.say("HELO t").await;
    e.say("MAIL FROM:<a@b.kr>").await;
    assert!(e.say("RCPT TO:<x@y.kr>").await.starts_with("451"));
    assert!(e.say("RCPT TO:<x@y.kr>").await.starts_with("250"));
    assert_eq!(mail.mailbox.fault(), FaultMode::None);
    let bad = client
        .put(mail.url("/api/v1/sandbox/fault"))
        .json(&serde_json::json!({"mode": "sideways"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}
