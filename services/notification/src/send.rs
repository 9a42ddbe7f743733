//! The channels' senders behind small traits, so the dispatcher does not care what is behind
//! them: [`Mailer`] ([`SmtpMailer`], lettre over SMTP) and [`SmsProvider`] ([`Solapi`], an HTTP
//! API in Solapi's shape). Each answers the provider's id for the message, or a
//! [`SendError`] that says whether trying again may help.

use std::time::Duration;

use async_trait::async_trait;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{authentication::Credentials, extension::ClientId},
};

use crate::{
    config::{SmsConfig, SmtpConfig, SmtpTls},
    domain::text::header_safe,
};

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later (server down, 4xx reply, timeout, provider overloaded).
    #[error("temporary: {0}")]
    Temporary(String),
    /// Trying again will fail the same way (5xx reply, bad address, refused number).
    #[error("permanent: {0}")]
    Permanent(String),
}

/// One email to send.
#[derive(Debug, Clone)]
pub struct Email {
    /// The recipient's display name (made header-safe here).
    pub to_name: String,
    /// The recipient's address.
    pub to_address: String,
    /// The subject.
    pub subject: String,
    /// Plain text.
    pub text: String,
    /// HTML.
    pub html: String,
    /// The `Message-ID` (without angle brackets): derived from the delivery, so a resend after a
    /// crash carries the same id and a receiving system can tell it is a copy.
    pub message_id: String,
}

/// Sends email.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    /// Sends `email`; answers the server's queue id or the message id.
    async fn send(&self, email: &Email) -> Result<String, SendError>;
}

/// Sends SMS.
#[async_trait]
pub trait SmsProvider: Send + Sync + 'static {
    /// Sends `text` to `to` (digits only); answers the provider's message id.
    async fn send(&self, to: &str, text: &str) -> Result<String, SendError>;
}

/// Email over SMTP with lettre.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

/// Why the SMTP settings cannot make a transport.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The sender's address does not parse.
    #[error("notification.smtp.from_address: {0}")]
    From(String),
    /// TLS could not be set up for the host.
    #[error("notification.smtp: {0}")]
    Tls(String),
    /// The SMS client could not be built.
    #[error("notification.sms: {0}")]
    Sms(String),
}

impl SmtpMailer {
    /// A mailer for `config` (nothing is connected until the first message).
    pub fn new(config: &SmtpConfig) -> Result<Self, SetupError> {
        let builder = match config.tls {
            SmtpTls::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(config.host.as_str())
            }
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| SetupError::Tls(e.to_string()))?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| SetupError::Tls(e.to_string()))?,
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(Duration::from_millis(config.timeout_ms.max(1))))
            .hello_name(ClientId::Domain(config.helo_name.clone()));
        if let (Some(user), Some(pass)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        let address = config
            .from_address
            .parse()
            .map_err(|e: lettre::address::AddressError| SetupError::From(e.to_string()))?;
        Ok(Self {
            transport: builder.build(),
            from: Mailbox::new(Some(header_safe(&config.from_name, 100)), address),
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<String, SendError> {
        let address = email
            .to_address
            .parse()
            .map_err(|e: lettre::address::AddressError| {
                SendError::Permanent(format!("invalid address: {e}"))
            })?;
        // A name with CR/LF or other controls must not make a header of its own; lettre
        // encodes what is left (RFC 2047) when it is not plain ASCII.
        let name = header_safe(&email.to_name, 100);
        let to = Mailbox::new((!name.is_empty()).then_some(name), address);
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(header_safe(&email.subject, 200))
            .message_id(Some(format!("<{}>", email.message_id)))
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| SendError::Permanent(format!("message: {e}")))?;
        match self.transport.send(message).await {
            Ok(response) => Ok(response
                .message()
                .next()
                .map(str::to_owned)
                .unwrap_or_else(|| email.message_id.clone())),
            // A 5xx reply: the server refuses this message for good.
            Err(e) if e.is_permanent() => Err(SendError::Permanent(e.to_string())),
            // 4xx replies, refused connections, timeouts, TLS hiccups: the next try may work.
            Err(e) => Err(SendError::Temporary(e.to_string())),
        }
    }
}

/// SMS through an HTTP API in Solapi's shape (`POST /messages/v4/send`, HMAC-SHA256 request
/// signature); the sandbox's `fakes::sms` speaks the same.
pub struct Solapi {
    client: reqwest::Client,
    url: String,
    key: String,
    secret: String,
    sender: String,
}

impl Solapi {
    /// A client of the API at `url` (its base, e.g. `https://api.solapi.com`).
    pub fn new(url: &str, config: &SmsConfig) -> Result<Self, SetupError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_millis(config.timeout_ms.max(1)))
            .build()
            .map_err(|e| SetupError::Sms(e.to_string()))?;
        Ok(Self {
            client,
            url: format!("{}/messages/v4/send", url.trim_end_matches('/')),
            key: config.api_key.clone(),
            secret: config.api_secret.clone(),
            sender: config.sender.clone(),
        })
    }

    fn authorization(&self) -> String {
        use hmac::{Hmac, Mac};
        let date = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let salt = uuid::Uuid::new_v4().simple().to_string();
        let signature = <Hmac<sha2::Sha256> as Mac>::new_from_slice(self.secret.as_bytes())
            .map(|mut mac| {
                mac.update(date.as_bytes());
                mac.update(salt.as_bytes());
                hex::encode(mac.finalize().into_bytes())
            })
            .unwrap_or_default();
        format!(
            "HMAC-SHA256 apiKey={}, date={date}, salt={salt}, signature={signature}",
            self.key
        )
    }
}

#[async_trait]
impl SmsProvider for Solapi {
    async fn send(&self, to: &str, text: &str) -> Result<String, SendError> {
        let body = serde_json::json!({"message": {"to": to, "from": self.sender, "text": text}});
        let response = self
            .client
            .post(&self.url)
            .header("Authorization", self.authorization())
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::Temporary(format!("SMS provider unreachable: {e}")))?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            return Ok(answer["messageId"].as_str().unwrap_or_default().to_owned());
        }
        let why = format!(
            "{status} {}: {}",
            answer["errorCode"].as_str().unwrap_or("?"),
            answer["errorMessage"].as_str().unwrap_or("")
        );
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(SendError::Temporary(why))
        } else {
            Err(SendError::Permanent(why))
        }
    }
}

/// The SMS channel when no provider is configured: every SMS fails, permanently, saying so
/// (never a silent drop, never a sandbox behind the operator's back).
pub struct NoSmsProvider;

#[async_trait]
impl SmsProvider for NoSmsProvider {
    async fn send(&self, _to: &str, _text: &str) -> Result<String, SendError> {
        Err(SendError::Permanent(
            "no SMS provider configured (notification.sms.url)".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email() -> Email {
        Email {
            to_name: "김민준".into(),
            to_address: "minjun@example.kr".into(),
            subject: "안녕".into(),
            text: "본문".into(),
            html: "<p>본문</p>".into(),
            message_id: "m1@boxoffice.notification".into(),
        }
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_a_temporary_failure() {
        // A port nothing listens on: bind one, learn it, let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = SmtpConfig {
            port,
            timeout_ms: 1_000,
            ..SmtpConfig::default()
        };
        let err = SmtpMailer::new(&config).unwrap().send(&email()).await;
        assert!(matches!(err, Err(SendError::Temporary(_))), "{err:?}");
        let mut bad = email();
        bad.to_address = "not an address".into();
        let err = SmtpMailer::new(&config).unwrap().send(&bad).await;
        assert!(matches!(err, Err(SendError::Permanent(_))), "{err:?}");
    }

    #[test]
    fn every_tls_mode_builds_and_a_bad_sender_is_refused() {
        for tls in [SmtpTls::None, SmtpTls::Starttls, SmtpTls::Tls] {
            let config = SmtpConfig {
                host: "smtp.example.kr".into(),
                tls,
                username: Some("u".into()),
                password: Some("p".into()),
                ..SmtpConfig::default()
            };
            assert!(SmtpMailer::new(&config).is_ok(), "{tls:?}");
        }
        let config = SmtpConfig {
            from_address: "nobody".into(),
            ..SmtpConfig::default()
        };
        assert!(matches!(SmtpMailer::new(&config), Err(SetupError::From(_))));
    }

    #[tokio::test]
    async fn the_solapi_client_signs_its_calls_and_classifies_refusals() {
        let sandbox = fakes::sms::spawn(fakes::sms::Options::default())
            .await
            .unwrap();
        let good = Solapi::new(&sandbox.base_url, &SmsConfig::default()).unwrap();
        let id = good.send("01012345678", "안녕하세요").await.unwrap();
        assert!(id.starts_with("M4V"), "{id}");
        let got = sandbox.outbox.messages();
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].to.as_str(), got[0].text.as_str()),
            ("01012345678", "안녕하세요")
        );

        let forged = Solapi::new(
            &sandbox.base_url,
            &SmsConfig {
                api_secret: "wrong".into(),
                ..SmsConfig::default()
            },
        )
        .unwrap();
        let err = forged.send("01012345678", "x").await;
        assert!(
            matches!(&err, Err(SendError::Permanent(why)) if why.contains("InvalidAPIKey")),
            "{err:?}"
        );
        sandbox
            .outbox
            .set_fault(fakes::sms::FaultMode::Temporary, Some(1));
        assert!(matches!(
            good.send("01012345678", "x").await,
            Err(SendError::Temporary(_))
        ));
        assert!(matches!(
            good.send("123", "x").await,
            Err(SendError::Permanent(_))
        ));
        let gone = Solapi::new("http://127.0.0.1:9", &SmsConfig::default()).unwrap();
        assert!(matches!(
            gone.send("01012345678", "x").await,
            Err(SendError::Temporary(_))
        ));
        assert!(matches!(
            NoSmsProvider.send("01012345678", "x").await,
            Err(SendError::Permanent(_))
        ));
        assert_eq!(sandbox.outbox.messages().len(), 1);
    }
}
