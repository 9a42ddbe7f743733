//! The sender: takes due deliveries (each reserved with a lease), renders them in the
//! recipient's language, sends them with no transaction open, and records what happened —
//! sent, skipped (marketing to someone who opted out, SMS without a number), retried after an
//! exponential backoff with jitter (temporary failures), or dead (a permanent failure, or
//! `retry.max_attempts` temporary ones), for an admin to re-drive.
//!
//! **At least once.** A sender that dies between the provider's acceptance and the record of it
//! leaves the delivery `sending`; when its lease ends another sender sends it again. The copy
//! carries the same `Message-ID` (`<delivery id>@boxoffice.notification`), so a mail system
//! that de-duplicates by it shows one; SMS has no such id and may arrive twice. The window is
//! the time of one database write.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::{
    Config,
    domain::{Channel, Kind, Locale, backoff, may_send, text},
    send::{Email, Mailer, SendError, SmsProvider},
    store::{self, Delivery, Outcome, Recipient},
    templates::Templates,
};

/// Everything a send needs.
#[derive(Clone)]
pub struct Dispatcher {
    /// NotificationDB.
    pub pool: PgPool,
    /// Settings.
    pub config: Arc<Config>,
    /// The templates.
    pub templates: Arc<Templates>,
    /// Email.
    pub mailer: Arc<dyn Mailer>,
    /// SMS.
    pub sms: Arc<dyn SmsProvider>,
}

impl Dispatcher {
    /// Sends due deliveries until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let idle = Duration::from_millis(self.config.poll_interval_ms.max(10));
        while !shutdown.is_cancelled() {
            let pause = match self.once().await {
                Ok(0) => idle,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    tracing::warn!(error = %e, "taking due deliveries failed");
                    idle
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
    }

    /// Takes one batch of due deliveries and sends them; answers how many.
    pub async fn once(&self) -> sqlx::Result<usize> {
        let due = store::claim(&self.pool, self.config.batch.max(1), self.config.lease_ms).await?;
        let n = due.len();
        futures::future::join_all(due.into_iter().map(|d| self.deliver(d))).await;
        Ok(n)
    }

    async fn deliver(&self, d: Delivery) {
        let (kind, channel) = (d.kind.clone(), d.channel.clone());
        let outcome = self.attempt(&d).await;
        let labels = [("kind", kind), ("channel", channel)];
        match &outcome {
            Outcome::Sent { .. } => {
                metrics::counter!("boxoffice_notifications_sent_total", &labels).increment(1)
            }
            Outcome::Skipped(_) => {
                metrics::counter!("boxoffice_notifications_skipped_total", &labels).increment(1)
            }
            Outcome::Retry { error, .. } => {
                tracing::info!(delivery_id = %d.id, attempt = d.attempts, %error, "delivery failed; will retry");
                metrics::counter!("boxoffice_notifications_failed_total", &labels).increment(1);
            }
            Outcome::Dead { error, .. } => {
                tracing::warn!(delivery_id = %d.id, attempt = d.attempts, %error, "delivery dead-lettered");
                metrics::counter!("boxoffice_notifications_failed_total", &labels).increment(1);
                metrics::counter!("boxoffice_notifications_dead_lettered_total", &labels)
                    .increment(1);
            }
        }
        match store::record(&self.pool, d.id, d.attempts, &outcome).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery_id = %d.id, "delivery taken by another sender meanwhile");
            }
            // Not recorded: the lease runs out and the delivery is tried again (at least once).
            Err(e) => {
                tracing::error!(delivery_id = %d.id, error = %e, "recording a delivery failed")
            }
        }
    }

    /// A temporary failure: retried after the backoff, or dead after the last try.
    fn temporary(&self, d: &Delivery, error: String, address: Option<String>) -> Outcome {
        let r = &self.config.retry;
        if d.attempts >= r.max_attempts.max(1) {
            return Outcome::Dead {
                error: format!("gave up after {} tries: {error}", d.attempts),
                address,
            };
        }
        let unit: f64 = rand::rng().random();
        let pause = backoff::pause(d.attempts, r.base_ms, r.max_ms, unit);
        Outcome::Retry {
            error,
            retry_in_ms: u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
            address,
        }
    }

    async fn attempt(&self, d: &Delivery) -> Outcome {
        if d.attempts > self.config.retry.max_attempts.max(1) {
            // Tries past the last one are tries whose sender died before recording them (a
            // lease that ran out): a delivery that keeps killing its sender stops here.
            return Outcome::Dead {
                error: format!(
                    "gave up after {} tries, the last ones never recorded (their sender died)",
                    d.attempts - 1
                ),
                address: None,
            };
        }
        let (Some(kind), Some(channel)) = (Kind::parse(&d.kind), Channel::parse(&d.channel)) else {
            return Outcome::Dead {
                error: format!("unknown kind {} or channel {}", d.kind, d.channel),
                address: None,
            };
        };
        let recipient = match store::recipient(&self.pool, d.recipient_id).await {
            Ok(Some(r)) => r,
            // Its user.registered may not have arrived yet (another topic).
            Ok(None) => return self.temporary(d, "recipient_unknown".into(), None),
            Err(e) => return self.temporary(d, format!("database: {e}"), None),
        };
        if !may_send(kind.category(), recipient.marketing_opt_in) {
            return Outcome::Skipped("opted_out".into());
        }
        if kind == Kind::Reminder {
            // Queued a while ago: the order may have been cancelled since, or the performance.
            match store::reminder_still_due(&self.pool, &d.data).await {
                Ok(true) => {}
                Ok(false) => return Outcome::Skipped("no_longer_due".into()),
                Err(e) => return self.temporary(d, format!("database: {e}"), None),
            }
        }
        let locale = recipient.locale.unwrap_or(self.config.default_locale);
        let context = match self.context(kind, d, &recipient, locale).await {
            Ok(c) => c,
            Err(e) => return self.temporary(d, format!("database: {e}"), None),
        };
        let rendered = match self.templates.render(kind, locale, &context) {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Dead {
                    error: e.to_string(),
                    address: None,
                };
            }
        };
        let (address, result, subject) = match channel {
            Channel::Email => {
                let email = Email {
                    to_name: recipient.name.clone(),
                    to_address: recipient.email.clone(),
                    subject: rendered.subject.clone(),
                    text: rendered.text,
                    html: rendered.html,
                    message_id: format!("{}@boxoffice.notification", d.id),
                };
                let r = self.mailer.send(&email).await;
                (recipient.email.clone(), r, Some(rendered.subject))
            }
            Channel::Sms => {
                if !self.config.sms.enabled {
                    return Outcome::Skipped("sms_disabled".into());
                }
                let Some(phone) = recipient.phone.clone() else {
                    return Outcome::Skipped("no_phone".into());
                };
                let r = self.sms.send(&phone, &rendered.sms).await;
                (phone, r, None)
            }
        };
        match result {
            Ok(provider_id) => Outcome::Sent {
                address,
                subject,
                locale,
                provider_id,
            },
            Err(SendError::Temporary(e)) => self.temporary(d, e, Some(address)),
            Err(SendError::Permanent(e)) => Outcome::Dead {
                error: e,
                address: Some(address),
            },
        }
    }

    /// The template's variables: the delivery's data worded for `locale`.
    async fn context(
        &self,
        kind: Kind,
        d: &Delivery,
        r: &Recipient,
        locale: Locale,
    ) -> sqlx::Result<Value> {
        let base = self.config.public_url.trim_end_matches('/');
        let data = &d.data;
        let won = |v: &Value| v.as_i64().map(|n| text::won(n, locale));
        let order_id = data["order_id"].as_str().unwrap_or_default();
        let mut starts_at: Option<DateTime<Utc>> =
            serde_json::from_value(data["starts_at"].clone()).unwrap_or(None);
        if starts_at.is_none() {
            // The performance's publication may have come after the order.
            if let Some(p) = data["performance_id"]
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
            {
                let mut conn = self.pool.acquire().await?;
                starts_at = store::performance_start(&mut conn, p).await?;
            }
        }
        let mut c = json!({
            // A name is one line wherever it appears (a CR/LF in it would start a line of its
            // own in the text, and a header in the subject).
            "name": text::header_safe(&r.name, 100),
            "public_url": base,
            "order_id": order_id,
            "order_url": format!("{base}/orders/{order_id}"),
            "starts": starts_at.map(|t| text::when(t, locale)),
        });
        match kind {
            Kind::Welcome => c["verification_url"] = data["verification_url"].clone(),
            Kind::OrderConfirmed => {
                let seats: Vec<String> =
                    serde_json::from_value(data["seat_ids"].clone()).unwrap_or_default();
                let ids: Vec<String> =
                    serde_json::from_value(data["ticket_ids"].clone()).unwrap_or_default();
                let tickets: Vec<Value> = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| {
                        let label = seats.get(i).cloned().unwrap_or_else(|| match locale {
                            Locale::Ko => format!("입장권 {}", i + 1),
                            Locale::En => format!("Admission {}", i + 1),
                        });
                        json!({"id": id, "label": label, "url": format!("{base}/tickets/{id}")})
                    })
                    .collect();
                c["count"] = ids.len().into();
                c["tickets"] = tickets.into();
                c["amount"] = won(&data["amount_krw"]).into();
            }
            Kind::OrderCancelled | Kind::OrderExpired => {
                let refund = data["refund_krw"].as_i64().unwrap_or(0);
                c["refund"] = (refund > 0).then(|| text::won(refund, locale)).into();
                let reason = data["reason"].as_str().unwrap_or_default();
                let reason_text = match (reason, locale) {
                    ("buyer_cancelled", Locale::Ko) => "고객 요청",
                    ("buyer_cancelled", Locale::En) => "at your request",
                    ("performance_cancelled", Locale::Ko) => "공연 취소",
                    ("performance_cancelled", Locale::En) => "the performance was cancelled",
                    ("sale_rejected", Locale::Ko) => "좌석을 확정할 수 없음",
                    ("sale_rejected", Locale::En) => "the seats could not be confirmed",
                    _ => "",
                };
                c["reason_text"] = reason_text.into();
            }
            Kind::OrderRefunded => c["amount"] = won(&data["amount_krw"]).into(),
            Kind::PaymentFailed => c["message"] = data["message"].clone(),
            Kind::Reminder => c["count"] = data["tickets"].clone(),
            Kind::Announcement => {
                c["title"] = data["title"][locale.as_str()].clone();
                c["body"] = data["body"][locale.as_str()].clone();
            }
        }
        Ok(c)
    }
}
