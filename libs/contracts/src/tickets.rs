//! Ticket types (권종) and presale audiences (선예매): the vocabulary the catalog publishes and
//! the seat and order services sell by.
//!
//! ```
//! use contracts::tickets::TicketType;
//! assert_eq!(TicketType::parse("youth"), Some(TicketType::Youth));
//! assert_eq!(TicketType::STANDARD, TicketType::Adult);
//! assert!(TicketType::Child.proof_required());
//! assert!(!TicketType::Adult.proof_required());
//! ```

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// A ticket type. Codes are stable snake_case; `adult` is every grade's standard type, priced at
/// the grade's tier price. Every other type needs proof at the gate (an ID, a student card, a
/// disability or national-merit certificate) — [`TicketType::proof_required`].
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TicketType {
    /// 일반 (adult): the standard type, no proof.
    Adult,
    /// 청소년 (youth, 13–18): student card or ID at the gate.
    Youth,
    /// 어린이 (child): proof of age at the gate.
    Child,
    /// 경로 (senior, 65+): ID at the gate.
    Senior,
    /// 장애인 (disabled): disability certificate at the gate.
    Disabled,
    /// 국가유공자 (national merit): certificate at the gate.
    NationalMerit,
}

impl TicketType {
    /// Every type, in display order.
    pub const ALL: [TicketType; 6] = [
        TicketType::Adult,
        TicketType::Youth,
        TicketType::Child,
        TicketType::Senior,
        TicketType::Disabled,
        TicketType::NationalMerit,
    ];

    /// The type a seat is sold as when the buyer names none.
    pub const STANDARD: TicketType = TicketType::Adult;

    /// Its stable code.
    pub fn code(self) -> &'static str {
        match self {
            TicketType::Adult => "adult",
            TicketType::Youth => "youth",
            TicketType::Child => "child",
            TicketType::Senior => "senior",
            TicketType::Disabled => "disabled",
            TicketType::NationalMerit => "national_merit",
        }
    }

    /// The type of a code; `None` for an unknown one.
    pub fn parse(code: &str) -> Option<TicketType> {
        TicketType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// Whether the gate checks the holder's proof of the type (every type but `adult`).
    pub fn proof_required(self) -> bool {
        self != TicketType::Adult
    }
}

/// Price of one non-standard ticket type of a grade, KRW (the standard type, `adult`, costs the
/// grade's [`crate::events::PriceSpec::price_krw`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketTypePrice {
    /// Ticket type code ([`TicketType::code`]).
    pub ticket_type: String,
    /// Price per ticket, integer KRW.
    pub price_krw: i64,
}

/// One presale window of a performance (a sale window of kind `presale`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresaleWindow {
    /// Opening (UTC).
    pub opens_at: DateTime<Utc>,
    /// Closing (UTC).
    pub closes_at: DateTime<Utc>,
}

/// Who may hold seats of a performance before its general sale opens, and how many. Published
/// with the performance when its organizer restricted its presale windows; absent: every window
/// is open to everyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresaleRules {
    /// The presale windows.
    pub windows: Vec<PresaleWindow>,
    /// When the general sale opens (absent: there is none, the performance sells only in
    /// presale).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub general_opens_at: Option<DateTime<Utc>>,
    /// Most tickets one buyer may hold and buy in presale.
    pub ticket_limit: i32,
    /// The member group let in, if the presale is a members' one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<Uuid>,
    /// The group's accounts at publication.
    #[serde(default)]
    pub members: Vec<Uuid>,
    /// Whether holders of an access code are let in.
    #[serde(default)]
    pub codes: bool,
    /// [`presale_code_hash`] of every access code of the performance.
    #[serde(default)]
    pub code_hashes: Vec<String>,
}

impl PresaleRules {
    /// Whether `now` is before the general sale (when only the presale audience may hold).
    pub fn restricted_at(&self, now: DateTime<Utc>) -> bool {
        self.general_opens_at.is_none_or(|g| now < g)
    }
}

/// An access code as typed: upper case, without spaces or dashes.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// SHA-256 (lower-case hex) of `performance_id:` and the normalized code: what the catalog
/// stores and publishes instead of the code, so a code of one performance opens no other.
pub fn presale_code_hash(performance_id: Uuid, code: &str) -> String {
    let digest = Sha256::digest(format!("{performance_id}:{}", normalize_code(code)));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two hashes in time independent of where they differ.
pub fn same_hash(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_and_round_trip() {
        for t in TicketType::ALL {
            assert_eq!(TicketType::parse(t.code()), Some(t));
            assert_eq!(serde_json::to_value(t).unwrap(), t.code());
        }
        assert_eq!(TicketType::parse("student"), None);
    }

    #[test]
    fn a_code_hash_ignores_case_and_dashes_but_not_the_performance() {
        let p = Uuid::now_v7();
        assert_eq!(
            presale_code_hash(p, "abcd-efgh"),
            presale_code_hash(p, "ABCDEFGH")
        );
        assert_ne!(
            presale_code_hash(p, "ABCDEFGH"),
            presale_code_hash(Uuid::now_v7(), "ABCDEFGH")
        );
        assert!(same_hash("ab", "ab"));
        assert!(!same_hash("ab", "ac"));
        assert!(!same_hash("ab", "abc"));
    }

    #[test]
    fn before_the_general_sale_is_restricted() {
        let now = Utc::now();
        let mut rules = PresaleRules {
            windows: vec![],
            general_opens_at: Some(now + chrono::Duration::hours(1)),
            ticket_limit: 2,
            group_id: None,
            members: vec![],
            codes: true,
            code_hashes: vec![],
        };
        assert!(rules.restricted_at(now));
        assert!(!rules.restricted_at(now + chrono::Duration::hours(2)));
        rules.general_opens_at = None;
        assert!(rules.restricted_at(now + chrono::Duration::hours(2)));
    }
}
