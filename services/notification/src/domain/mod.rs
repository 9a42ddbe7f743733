//! What a notification is, without I/O: its kind (and whether it is transactional or
//! marketing), channel, language, the retry schedule and the text rules for headers.

pub mod backoff;
pub mod text;

use serde::{Deserialize, Serialize};

/// What a message is about; one template per kind and language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `user.registered`: welcome, with the email-verification link when there is one.
    Welcome,
    /// `order.confirmed`: the tickets.
    OrderConfirmed,
    /// `order.cancelled` with reason `expired`: the unpaid order lapsed.
    OrderExpired,
    /// `order.cancelled` otherwise: cancelled, with what will be refunded.
    OrderCancelled,
    /// `payment.refunded`: the money went back.
    OrderRefunded,
    /// `payment.failed`: the payment did not go through; the order may still be payable.
    PaymentFailed,
    /// The day before a performance.
    Reminder,
    /// An operator's announcement to everyone who opted in (marketing).
    Announcement,
}

/// Whether a message may go to someone who opted out of marketing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// About something the recipient did or owns: always sent.
    Transactional,
    /// Promotion: sent only to those who opted in.
    Marketing,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 8] = [
        Kind::Welcome,
        Kind::OrderConfirmed,
        Kind::OrderExpired,
        Kind::OrderCancelled,
        Kind::OrderRefunded,
        Kind::PaymentFailed,
        Kind::Reminder,
        Kind::Announcement,
    ];

    /// The stable name (database, templates, metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Welcome => "welcome",
            Kind::OrderConfirmed => "order_confirmed",
            Kind::OrderExpired => "order_expired",
            Kind::OrderCancelled => "order_cancelled",
            Kind::OrderRefunded => "order_refunded",
            Kind::PaymentFailed => "payment_failed",
            Kind::Reminder => "reminder",
            Kind::Announcement => "announcement",
        }
    }

    /// Parses [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Announcements are marketing; everything else is about the recipient's own account,
    /// order or ticket. [`may_send`] decides with the recipient's choice.
    pub fn category(self) -> Category {
        match self {
            Kind::Announcement => Category::Marketing,
            _ => Category::Transactional,
        }
    }

    /// The channels a message of this kind goes on: everything by email; the tickets and the
    /// reminder also by SMS (to those with a phone number).
    pub fn channels(self) -> &'static [Channel] {
        match self {
            Kind::OrderConfirmed | Kind::Reminder => &[Channel::Email, Channel::Sms],
            _ => &[Channel::Email],
        }
    }
}

/// Transactional messages always go; marketing ones only to a recipient who opted in.
pub fn may_send(category: Category, marketing_opt_in: bool) -> bool {
    match category {
        Category::Transactional => true,
        Category::Marketing => marketing_opt_in,
    }
}

/// How a message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// SMTP.
    Email,
    /// The SMS provider.
    Sms,
}

impl Channel {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// Parses [`Channel::as_str`].
    pub fn parse(s: &str) -> Option<Channel> {
        match s {
            "email" => Some(Channel::Email),
            "sms" => Some(Channel::Sms),
            _ => None,
        }
    }
}

/// A message's language.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Locale {
    /// Korean.
    #[default]
    Ko,
    /// English.
    En,
}

impl Locale {
    /// `ko` or `en`.
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Ko => "ko",
            Locale::En => "en",
        }
    }

    /// A BCP 47 tag's language (`ko`, `ko-KR`, `en-US`, ...); `None` for other languages.
    pub fn from_tag(tag: &str) -> Option<Locale> {
        let lang = tag.split(['-', '_']).next()?.to_ascii_lowercase();
        match lang.as_str() {
            "ko" => Some(Locale::Ko),
            "en" => Some(Locale::En),
            _ => None,
        }
    }
}

/// A delivery's state in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for its (next) try.
    Pending,
    /// Being sent (reserved by a sender until its lease ends).
    Sending,
    /// Accepted by the SMTP server or the SMS provider.
    Sent,
    /// Not sent on purpose (marketing to someone who opted out, SMS to someone without a
    /// number); `last_error` says why.
    Skipped,
    /// Given up: a permanent failure, or temporary ones `retry.max_attempts` times. An admin
    /// can re-drive it.
    Dead,
}

impl Status {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Skipped => "skipped",
            Status::Dead => "dead",
        }
    }

    /// Parses [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Pending,
            Status::Sending,
            Status::Sent,
            Status::Skipped,
            Status::Dead,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
        assert_eq!(Kind::parse("spam"), None);
        for c in [Channel::Email, Channel::Sms] {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        assert_eq!(Status::parse("dead"), Some(Status::Dead));
        assert_eq!(Locale::from_tag("ko-KR"), Some(Locale::Ko));
        assert_eq!(Locale::from_tag("en_US"), Some(Locale::En));
        assert_eq!(Locale::from_tag("ja"), None);
    }

    #[test]
    fn transactional_always_goes_and_marketing_needs_an_opt_in() {
        assert!(may_send(Category::Transactional, false));
        assert!(may_send(Category::Transactional, true));
        assert!(!may_send(Category::Marketing, false));
        assert!(may_send(Category::Marketing, true));
        let marketing: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| k.category() == Category::Marketing)
            .collect();
        assert_eq!(marketing, [Kind::Announcement]);
    }
}
