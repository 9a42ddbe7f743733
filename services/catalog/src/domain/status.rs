//! Performance lifecycle: what is stored, and the sale status a buyer sees, which also depends on
//! the clock and the sale windows.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How far ahead an opening counts as "opening soon".
pub const OPENING_SOON: Duration = Duration::hours(24);

/// The stored lifecycle of a performance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PerformanceState {
    /// Being prepared; not shown to buyers.
    Draft,
    /// Listed for buyers; its inventory is not yet published to the seat service, so it is never
    /// shown on sale, even once a window opened (its publication is late or failing).
    Announced,
    /// Published: its inventory was sent to the seat service.
    Published,
    /// Every seat sold.
    SoldOut,
    /// Called off.
    Cancelled,
}

impl PerformanceState {
    /// The database name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Announced => "announced",
            Self::Published => "published",
            Self::SoldOut => "sold_out",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the database name (unknown names read as draft, which hides them).
    pub fn parse(s: &str) -> Self {
        match s {
            "announced" => Self::Announced,
            "published" => Self::Published,
            "sold_out" => Self::SoldOut,
            "cancelled" => Self::Cancelled,
            _ => Self::Draft,
        }
    }

    /// Whether the performance may be published now.
    pub fn can_publish(self) -> Result<(), &'static str> {
        match self {
            Self::Draft | Self::Announced => Ok(()),
            Self::Published | Self::SoldOut => Err("the performance is already published"),
            Self::Cancelled => Err("a cancelled performance cannot be published"),
        }
    }

    /// Whether the performance may be cancelled now.
    pub fn can_cancel(self) -> Result<(), &'static str> {
        match self {
            Self::Cancelled => Err("the performance is already cancelled"),
            _ => Ok(()),
        }
    }
}

/// What a buyer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaleStatus {
    /// Not published yet.
    Draft,
    /// Announced; sale not open yet (or open, but the inventory not published yet).
    Scheduled,
    /// A sale window is open.
    OnSale,
    /// Nothing left.
    SoldOut,
    /// Called off.
    Cancelled,
    /// Over: started, or sale closed.
    Ended,
}

impl SaleStatus {
    /// The status at `now` of a performance in `state` starting at `starts_at` whose last sale
    /// window closes at `closes`; `open_now` tells whether one of its windows is open.
    pub fn at(
        state: PerformanceState,
        starts_at: DateTime<Utc>,
        closes: DateTime<Utc>,
        open_now: bool,
        now: DateTime<Utc>,
    ) -> Self {
        match state {
            PerformanceState::Cancelled => Self::Cancelled,
            PerformanceState::Draft => Self::Draft,
            _ if now >= starts_at || now >= closes => Self::Ended,
            PerformanceState::SoldOut => Self::SoldOut,
            // On sale only once the seat service has the inventory (see crate::autopublish).
            PerformanceState::Published if open_now => Self::OnSale,
            PerformanceState::Published | PerformanceState::Announced => Self::Scheduled,
        }
    }
}

/// Whether one of `windows` (`(opens_at, closes_at)`) is open at `now`.
pub fn open_at(
    windows: impl IntoIterator<Item = (DateTime<Utc>, DateTime<Utc>)>,
    now: DateTime<Utc>,
) -> bool {
    windows.into_iter().any(|(o, c)| o <= now && now < c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::hours(h)
    }

    #[test]
    fn status_follows_the_clock() {
        let p = PerformanceState::Published;
        let windows = [(t(2), t(4)), (t(5), t(10))];
        let at = |state, now| SaleStatus::at(state, t(10), t(10), open_at(windows, now), now);
        assert_eq!(at(p, t(1)), SaleStatus::Scheduled);
        assert_eq!(at(p, t(2)), SaleStatus::OnSale);
        assert_eq!(at(p, t(4)), SaleStatus::Scheduled, "between two windows");
        assert_eq!(at(p, t(5)), SaleStatus::OnSale);
        assert_eq!(at(p, t(10)), SaleStatus::Ended);
        // Not published: the seat service has nothing to sell, whatever the windows say.
        assert_eq!(at(PerformanceState::Announced, t(3)), SaleStatus::Scheduled);
        assert_eq!(
            SaleStatus::at(p, t(10), t(8), false, t(9)),
            SaleStatus::Ended
        );
        let s = PerformanceState::SoldOut;
        assert_eq!(at(s, t(3)), SaleStatus::SoldOut);
        assert_eq!(at(s, t(11)), SaleStatus::Ended);
        assert_eq!(at(PerformanceState::Cancelled, t(3)), SaleStatus::Cancelled);
    }

    #[test]
    fn transitions() {
        assert!(PerformanceState::Draft.can_publish().is_ok());
        assert!(PerformanceState::Announced.can_publish().is_ok());
        assert!(PerformanceState::Published.can_publish().is_err());
        assert!(PerformanceState::Cancelled.can_publish().is_err());
        assert!(PerformanceState::Cancelled.can_cancel().is_err());
        assert!(PerformanceState::Published.can_cancel().is_ok());
        for s in ["draft", "announced", "published", "sold_out", "cancelled"] {
            assert_eq!(PerformanceState::parse(s).as_str(), s);
        }
    }
}
