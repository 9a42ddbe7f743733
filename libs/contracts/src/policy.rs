//! The cancellation schedule as it travels: set per event in the catalog, carried by
//! `performance.published` ([`crate::events::PerformancePublished::cancellation_policy`]) and
//! frozen by the order service onto each order when it is made. Data only: what the schedule
//! means (the fee on a given day, the cut-off) is the order service's (`order::domain::policy`).
//!
//! The default is the Korean standard schedule for performances (../shared/docs/domain.md):
//! free within 7 days of booking; ₩4,000 a ticket (musical/concert; ₩2,000 theatre) up to 10
//! days before; 10 % from 9 to 7 days before, 20 % from 6 to 3, 30 % from 2 to 1; closed from
//! 17:00 the day before (11:00 when that day is a Saturday).
//!
//! Unknown fields are refused rather than ignored: a consumer that skipped a rule it does not
//! know would promise buyers another schedule than the organizer set. So a field added here is a
//! new version of the events that carry it, not a compatible change.
//!
//! ```
//! use contracts::policy::CancellationPolicy;
//! // Missing fields take the standard schedule.
//! let theatre: CancellationPolicy = serde_json::from_str(r#"{"flat_fee_krw": 2000}"#).unwrap();
//! assert_eq!(theatre, CancellationPolicy::standard(2_000));
//! assert!(serde_json::from_str::<CancellationPolicy>(r#"{"flat_fee": 1}"#).is_err());
//! ```

use serde::{Deserialize, Serialize};

/// One step of the schedule near the performance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Applies when this many days or fewer are left (and more than the next tier's).
    pub days_before: i64,
    /// Percent of the ticket price kept.
    pub percent: i64,
}

/// A cancellation schedule. Missing fields take the standard schedule's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CancellationPolicy {
    /// Days after the booking date during which cancelling is free (7; the booking day is day 0).
    pub free_days_after_booking: i64,
    /// The fee per ticket past the free days, KRW (₩4,000 musical/concert, ₩2,000 theatre).
    pub flat_fee_krw: i64,
    /// The free days and the flat fee apply only while at least this many days are left (10).
    pub flat_fee_from_days: i64,
    /// Percentages closer to the performance (9 days: 10 %, 6: 20 %, 2: 30 %).
    pub tiers: Vec<Tier>,
    /// The cut-off hour (Seoul) of the day before the performance (17).
    pub cutoff_hour: u32,
    /// The cut-off hour when that day is a Saturday (11).
    pub saturday_cutoff_hour: u32,
}

impl CancellationPolicy {
    /// The standard schedule with a flat fee of `flat_fee_krw` a ticket.
    pub fn standard(flat_fee_krw: i64) -> Self {
        Self {
            free_days_after_booking: 7,
            flat_fee_krw,
            flat_fee_from_days: 10,
            tiers: vec![
                Tier {
                    days_before: 9,
                    percent: 10,
                },
                Tier {
                    days_before: 6,
                    percent: 20,
                },
                Tier {
                    days_before: 2,
                    percent: 30,
                },
            ],
            cutoff_hour: 17,
            saturday_cutoff_hour: 11,
        }
    }
}

impl Default for CancellationPolicy {
    /// The standard schedule for musicals and concerts (₩4,000 flat fee).
    fn default() -> Self {
        Self::standard(4_000)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_and_fills_the_standard_schedule() {
        let p = CancellationPolicy::default();
        let back: CancellationPolicy =
            serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        let partial: CancellationPolicy =
            serde_json::from_value(serde_json::json!({"tiers": []})).unwrap();
        assert!(partial.tiers.is_empty());
        assert_eq!(partial.flat_fee_krw, 4_000);
        assert_eq!(partial.cutoff_hour, 17);
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            serde_json::from_value::<CancellationPolicy>(serde_json::json!({"refund_all": true}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<CancellationPolicy>(
                serde_json::json!({"tiers": [{"days_before": 1, "percent": 5, "x": 1}]})
            )
            .is_err()
        );
    }
}
