//! What a consumer's handler says about an event it could not apply: [`HandleError::Transient`]
//! (try again: the database blinked, a dependency is down) or [`HandleError::Rejected`] (this event
//! will never apply: dead-letter it now and go on). Database errors are classified once, here, by
//! SQLSTATE class, so a handler can use `?` on sqlx and get the right answer.

use std::fmt;

use super::envelope::{DecodeError, Envelope};
use async_trait::async_trait;
use sqlx::PgConnection;

/// Applies events of the topics a [`super::consumer::Consumer`] reads.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Applies one event on `tx`: the transaction that wrote the event's inbox row. A rejection
    /// rolls it back, handler's writes and all, and the consumer writes the inbox row and the
    /// dead letter in a new one.
    async fn handle(&self, tx: &mut PgConnection, envelope: &Envelope) -> Result<(), HandleError>;

    /// Whether [`Handler::handle`] acts on events of `event_type` at all. The consumer
    /// acknowledges one it does not want without a transaction or an inbox row: applying it
    /// would change nothing, so there is nothing to deduplicate. Default: every type. A handler
    /// that narrows it should prove the two agree with [`crate::testing::types_handled`].
    fn wants(&self, event_type: &str) -> bool {
        let _ = event_type;
        true
    }
}

/// Why an event can never be applied: the dead letter's `reason` and the alert metric's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// The envelope or its payload does not decode (malformed, wrong type, newer version).
    Decode,
    /// SQLSTATE class 22, data exception (a value out of range, invalid text for a type).
    InvalidData,
    /// SQLSTATE class 23, integrity constraint violation (unique, check, foreign key, not null).
    Constraint,
    /// SQLSTATE class 42 (syntax error or access rule violation) and result shapes that do not
    /// match the query (a missing column, an undecodable value): the schema and the code disagree.
    Schema,
    /// A rule of the consuming service refuses the event; the code names the rule and should be
    /// one of a handful of stable, lower-case words (it becomes a metric label).
    Domain(&'static str),
    /// Transient failures went on past the consumer's attempt or time cap.
    RetriesExhausted,
}

impl RejectCode {
    /// The stable name: `decode`, `invalid_data`, `constraint`, `schema`, the domain code, or
    /// `retries_exhausted`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Decode => "decode",
            Self::InvalidData => "invalid_data",
            Self::Constraint => "constraint",
            Self::Schema => "schema",
            Self::Domain(code) => code,
            Self::RetriesExhausted => "retries_exhausted",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Transient (a lock timeout, a lost connection, a dependency down): the transaction is
    /// rolled back and the event tried again after a backoff, within the consumer's caps.
    #[error("transient: {0}")]
    Transient(String),
    /// Permanent: the handler's writes are undone, the event goes to `bus_dead_letters` with its
    /// inbox row in the same transaction, and the consumer moves on.
    #[error("rejected ({code}): {reason}")]
    Rejected {
        /// What kind of refusal.
        code: RejectCode,
        /// Details for the dead letter and the log.
        reason: String,
    },
}

impl HandleError {
    /// A transient failure described by `reason`.
    pub fn transient(reason: impl fmt::Display) -> Self {
        Self::Transient(reason.to_string())
    }

    /// A permanent refusal of kind `code`.
    pub fn rejected(code: RejectCode, reason: impl fmt::Display) -> Self {
        Self::Rejected {
            code,
            reason: reason.to_string(),
        }
    }

    /// A refusal by the service's rule `code` (see [`RejectCode::Domain`]).
    pub fn domain(code: &'static str, reason: impl fmt::Display) -> Self {
        Self::rejected(RejectCode::Domain(code), reason)
    }

    /// The rejection's code, or `None` for a transient failure.
    pub fn reject_code(&self) -> Option<RejectCode> {
        match self {
            Self::Transient(_) => None,
            Self::Rejected { code, .. } => Some(*code),
        }
    }
}

/// The rejection an SQLSTATE stands for, or `None` when retrying may help. Classes 22, 23 and 42
/// are deterministic: the same statement on the same data fails the same way every time.
pub fn classify_sqlstate(code: &str) -> Option<RejectCode> {
    match code.get(..2) {
        Some("22") => Some(RejectCode::InvalidData),
        Some("23") => Some(RejectCode::Constraint),
        Some("42") => Some(RejectCode::Schema),
        _ => None,
    }
}

impl From<sqlx::Error> for HandleError {
    /// Classifies by SQLSTATE class (22, 23, 42: rejected); results that do not fit the query are
    /// rejected as `schema`; everything else (connections, pool timeouts, serialization failures,
    /// deadlocks, lock and statement timeouts) is transient.
    fn from(e: sqlx::Error) -> Self {
        let code = match &e {
            sqlx::Error::Database(db) => db.code().as_deref().and_then(classify_sqlstate),
            sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::TypeNotFound { .. } => Some(RejectCode::Schema),
            _ => None,
        };
        match code {
            Some(code) => Self::rejected(code, e),
            None => Self::transient(e),
        }
    }
}

impl From<DecodeError> for HandleError {
    /// An envelope that does not decode never will.
    fn from(e: DecodeError) -> Self {
        Self::rejected(RejectCode::Decode, e)
    }
}

impl From<serde_json::Error> for HandleError {
    /// A payload that does not decode never will.
    fn from(e: serde_json::Error) -> Self {
        Self::rejected(RejectCode::Decode, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstate_classes_22_23_42_are_rejections_the_rest_transient() {
        let cases = [
            ("22003", Some(RejectCode::InvalidData)), // numeric_value_out_of_range
            ("22P02", Some(RejectCode::InvalidData)), // invalid_text_representation
            ("23505", Some(RejectCode::Constraint)),  // unique_violation
            ("23514", Some(RejectCode::Constraint)),  // check_violation
            ("42P01", Some(RejectCode::Schema)),      // undefined_table
            ("42703", Some(RejectCode::Schema)),      // undefined_column
            ("40001", None),                          // serialization_failure
            ("40P01", None),                          // deadlock_detected
            ("55P03", None),                          // lock_not_available (lock_timeout)
            ("57014", None),                          // query_canceled (statement_timeout)
            ("25P03", None),                          // idle_in_transaction_session_timeout
            ("08006", None),                          // connection_failure
            ("53300", None),                          // too_many_connections
            ("", None),
        ];
        for (state, expected) in cases {
            assert_eq!(classify_sqlstate(state), expected, "{state}");
        }
    }

    #[test]
    fn sqlx_errors_without_a_server_code_are_classified_by_kind() {
        let pool = HandleError::from(sqlx::Error::PoolTimedOut);
        assert!(matches!(pool, HandleError::Transient(_)), "{pool:?}");
        let missing = HandleError::from(sqlx::Error::ColumnNotFound("seat".into()));
        assert_eq!(missing.reject_code(), Some(RejectCode::Schema));
        let json = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        assert_eq!(
            HandleError::from(json).reject_code(),
            Some(RejectCode::Decode)
        );
    }

    #[test]
    fn codes_have_stable_names() {
        assert_eq!(RejectCode::Domain("seat_taken").as_str(), "seat_taken");
        assert_eq!(
            RejectCode::RetriesExhausted.to_string(),
            "retries_exhausted"
        );
        let e = HandleError::domain("seat_taken", "seat A-1 is sold");
        assert_eq!(e.to_string(), "rejected (seat_taken): seat A-1 is sold");
    }
}
