//! The catalog's clock. Sale statuses, the listing's `on_sale` / `opening_soon` filters, the
//! seed's schedule and the publication of announced performances all depend on the time; they
//! read it from a [`Clock`] so that a test can pin it (to Saturday noon in Seoul, say) instead of
//! passing or failing with the day and hour it runs. The default, and the only clock production
//! uses, is the real one ([`Utc::now`]).

use chrono::{DateTime, Utc};

/// Where the time comes from: the real clock unless pinned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock(Option<DateTime<Utc>>);

impl Clock {
    /// The real clock (the default).
    pub fn real() -> Self {
        Self(None)
    }

    /// A clock that always says `at` (for tests).
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self(Some(at))
    }

    /// The time now.
    pub fn now(&self) -> DateTime<Utc> {
        self.0.unwrap_or_else(Utc::now)
    }
}

/// The times every clock-dependent unit test runs at: 00:00, 11:00 (when KBO sales open) and
/// 17:00 Seoul time on each of the seven days from `first`.
#[cfg(test)]
pub(crate) fn test_week(first: chrono::NaiveDate) -> Vec<DateTime<Utc>> {
    (0..7)
        .flat_map(|d| {
            [0, 11, 17]
                .map(|h| crate::seed::schedule::seoul(first + chrono::Duration::days(d), h, 0))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_by_default_fixed_when_pinned() {
        let before = Utc::now();
        let now = Clock::default().now();
        assert!(before <= now && now <= Utc::now());
        let at = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(Clock::fixed(at).now(), at);
    }
}
