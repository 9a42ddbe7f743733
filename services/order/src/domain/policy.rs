//! The cancellation policy: by default the Korean standard schedule for performances
//! (../shared/docs/domain.md), or the event's own when the catalog publishes one with the
//! performance. Dates count in Asia/Seoul.
//!
//! - free within `free_days_after_booking` days of the booking date (the booking day is day 0),
//!   while the performance is at least `flat_fee_from_days` days away;
//! - otherwise, while at least `flat_fee_from_days` days away, `flat_fee_krw` per ticket;
//! - closer, the percentage of the ticket price of the first tier whose `days_before` is at
//!   least the days left (default 9–7 days: 10 %, 6–3: 20 %, 2–1: 30 %);
//! - closed from the cut-off: `cutoff_hour` (17:00) the day before the performance, or
//!   `saturday_cutoff_hour` (11:00) when that day is a Saturday;
//! - the booking fee is refunded only on the booking day.
//!
//! The data is `contracts::policy::CancellationPolicy` (it travels in `performance.published`);
//! this module's [`CancellationPolicy`] wraps it with the schedule's meaning. A policy is frozen
//! onto each order when it is made (OrderDB `orders.policy`), so a later change of
//! configuration or of the event's policy never changes what an existing order's buyer was
//! promised.

use std::ops::Deref;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

pub use contracts::policy::Tier;

/// A cancellation schedule (`order.cancellation.*`, or the event's own) with its meaning: the
/// contracts' data, the same JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CancellationPolicy(pub contracts::policy::CancellationPolicy);

impl Deref for CancellationPolicy {
    type Target = contracts::policy::CancellationPolicy;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl From<contracts::policy::CancellationPolicy> for CancellationPolicy {
    fn from(p: contracts::policy::CancellationPolicy) -> Self {
        Self(p)
    }
}

/// What cancelling an order now would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quote {
    /// Cancelling is possible.
    Allowed {
        /// The fee kept, KRW.
        fee_krw: i64,
        /// What goes back, KRW.
        refund_krw: i64,
        /// Whether the booking fee is part of the refund (booking day only).
        booking_fee_refunded: bool,
        /// Which rule applied: `free`, `flat_fee`, `percent_<n>`.
        rule: String,
    },
    /// Past the cut-off.
    Closed {
        /// When cancelling closed.
        closed_at: DateTime<Utc>,
    },
}

/// What is being cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booking {
    /// When the order was made.
    pub booked_at: DateTime<Utc>,
    /// When the performance starts.
    pub starts_at: DateTime<Utc>,
    /// Ticket prices together.
    pub tickets_krw: i64,
    /// The booking fee.
    pub booking_fee_krw: i64,
    /// How many tickets.
    pub tickets: i64,
}

fn seoul() -> FixedOffset {
    // UTC+9, no daylight saving.
    FixedOffset::east_opt(9 * 3600).expect("UTC+9 is a valid offset")
}

fn seoul_date(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&seoul()).date_naive()
}

impl CancellationPolicy {
    /// When cancelling closes for a performance starting at `starts_at`.
    pub fn cutoff(&self, starts_at: DateTime<Utc>) -> DateTime<Utc> {
        let day_before = seoul_date(starts_at)
            .pred_opt()
            .unwrap_or_else(|| seoul_date(starts_at));
        let hour = if day_before.weekday() == Weekday::Sat {
            self.saturday_cutoff_hour
        } else {
            self.cutoff_hour
        };
        let cutoff = day_before
            .and_hms_opt(hour.min(23), 0, 0)
            .and_then(|t| seoul().from_local_datetime(&t).single())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(starts_at);
        cutoff.min(starts_at)
    }

    /// What cancelling `b` at `now` keeps and refunds.
    pub fn quote(&self, b: &Booking, now: DateTime<Utc>) -> Quote {
        let closed_at = self.cutoff(b.starts_at);
        if now >= closed_at {
            return Quote::Closed { closed_at };
        }
        let today = seoul_date(now);
        let days_left = (seoul_date(b.starts_at) - today).num_days();
        let since_booking = (today - seoul_date(b.booked_at)).num_days();
        let (fee, rule) = if days_left >= self.flat_fee_from_days {
            if since_booking <= self.free_days_after_booking {
                (0, "free".to_owned())
            } else {
                (
                    self.flat_fee_krw.saturating_mul(b.tickets),
                    "flat_fee".to_owned(),
                )
            }
        } else {
            let mut tiers = self.tiers.clone();
            tiers.sort_by_key(|t| t.days_before);
            let percent = tiers
                .iter()
                .find(|t| t.days_before >= days_left)
                .or(tiers.last())
                .map_or(0, |t| t.percent.clamp(0, 100));
            (
                b.tickets_krw.saturating_mul(percent) / 100,
                format!("percent_{percent}"),
            )
        };
        let fee = fee.clamp(0, b.tickets_krw);
        let booking_fee_refunded = since_booking == 0;
        let refund = b.tickets_krw - fee
            + if booking_fee_refunded {
                b.booking_fee_krw
            } else {
                0
            };
        Quote::Allowed {
            fee_krw: fee
                + if booking_fee_refunded {
                    0
                } else {
                    b.booking_fee_krw
                },
            refund_krw: refund,
            booking_fee_refunded,
            rule,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// 2025-06-20 (a Friday) 19:00 in Seoul.
    fn show() -> DateTime<Utc> {
        seoul()
            .with_ymd_and_hms(2025, 6, 20, 19, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        seoul()
            .with_ymd_and_hms(y, m, d, h, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn booking(booked_at: DateTime<Utc>) -> Booking {
        Booking {
            booked_at,
            starts_at: show(),
            tickets_krw: 200_000,
            booking_fee_krw: 4_000,
            tickets: 2,
        }
    }

    fn refund(q: &Quote) -> (i64, String) {
        match q {
            Quote::Allowed {
                refund_krw, rule, ..
            } => (*refund_krw, rule.clone()),
            Quote::Closed { .. } => (-1, "closed".into()),
        }
    }

    #[test]
    fn the_standard_schedule() {
        let p = CancellationPolicy::default();
        let early = booking(at(2025, 5, 1, 10));
        // Booking day: everything back, booking fee too.
        assert_eq!(
            refund(&p.quote(&early, at(2025, 5, 1, 20))),
            (204_000, "free".into())
        );
        // Within 7 days: free, but the booking fee stays.
        assert_eq!(
            refund(&p.quote(&early, at(2025, 5, 8, 12))),
            (200_000, "free".into())
        );
        // After 7 days, 10+ days before: ₩4,000 a ticket.
        assert_eq!(
            refund(&p.quote(&early, at(2025, 5, 9, 12))),
            (192_000, "flat_fee".into())
        );
        assert_eq!(
            refund(&p.quote(&early, at(2025, 6, 10, 12))),
            (192_000, "flat_fee".into())
        );
        // 9 to 7 days: 10 %; 6 to 3: 20 %; 2 to 1: 30 %.
        assert_eq!(
            refund(&p.quote(&early, at(2025, 6, 11, 12))),
            (180_000, "percent_10".into())
        );
        assert_eq!(
            refund(&p.quote(&early, at(2025, 6, 13, 12))),
            (180_000, "percent_10".into())
        );
        assert_eq!(
            refund(&p.quote(&early, at(2025, 6, 14, 12))),
            (160_000, "percent_20".into())
        );
        assert_eq!(
            refund(&p.quote(&early, at(2025, 6, 17, 12))),
            (160_000, "percent_20".into())
        );
        assert_eq!(
            refund(&p.quote(&early, at(2025, 6, 18, 12))),
            (140_000, "percent_30".into())
        );
        assert_eq!(
            refund(&p.quote(&early, at(2025, 6, 19, 16))),
            (140_000, "percent_30".into())
        );
        // Cut-off: 17:00 the day before.
        assert_eq!(refund(&p.quote(&early, at(2025, 6, 19, 17))).1, "closed");
        assert_eq!(refund(&p.quote(&early, show())).1, "closed");
    }

    #[test]
    fn booking_late_still_pays_the_near_schedule() {
        let p = CancellationPolicy::default();
        // Booked 5 days before: the free week does not apply that close.
        let late = booking(at(2025, 6, 15, 10));
        assert_eq!(
            refund(&p.quote(&late, at(2025, 6, 15, 12))),
            (164_000, "percent_20".into())
        );
    }

    #[test]
    fn saturday_cut_off_is_eleven() {
        let p = CancellationPolicy::default();
        // A Sunday show: the day before is a Saturday.
        let sunday = at(2025, 6, 22, 14);
        assert_eq!(p.cutoff(sunday), at(2025, 6, 21, 11));
        assert_eq!(p.cutoff(show()), at(2025, 6, 19, 17));
    }

    #[test]
    fn the_policy_freezes_as_json() {
        let p = CancellationPolicy::default();
        let json = serde_json::to_value(&p).unwrap();
        let back: CancellationPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(back, p);
        let partial: CancellationPolicy =
            serde_json::from_value(serde_json::json!({"flat_fee_krw": 2000})).unwrap();
        assert_eq!(partial.flat_fee_krw, 2_000);
        assert_eq!(partial.tiers, p.tiers);
    }
}
