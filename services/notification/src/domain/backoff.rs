//! The pause before a delivery's next try: exponential (`base · 2^(tries−1)`, capped at `max`)
//! with "equal jitter" — half of it fixed, half random — so retries after an outage spread out
//! instead of arriving together, yet never come sooner than half the schedule.

use std::time::Duration;

/// The pause after `tries` failed tries (1 = the first failed), with `unit` in `[0, 1)` drawn at
/// random by the caller.
pub fn pause(tries: i32, base_ms: u64, max_ms: u64, unit: f64) -> Duration {
    let exp = u32::try_from(tries.saturating_sub(1).clamp(0, 40)).unwrap_or(40);
    let full = base_ms
        .saturating_mul(1u64.checked_shl(exp).unwrap_or(u64::MAX))
        .min(max_ms)
        .max(1);
    let half = full / 2;
    let unit = unit.clamp(0.0, 1.0);
    // `half` is at most `max_ms`; as f64 it is exact up to 2^53 ms (285,000 years).
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let jitter = ((full - half) as f64 * unit) as u64;
    Duration::from_millis(half + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn it_doubles_and_stops_at_the_cap() {
        let ms = |t, u| pause(t, 1_000, 60_000, u).as_millis();
        assert_eq!(ms(1, 0.0), 500);
        assert_eq!(ms(1, 0.999_999), 999);
        assert_eq!(ms(2, 0.0), 1_000);
        assert_eq!(ms(3, 0.0), 2_000);
        assert_eq!(ms(30, 0.0), 30_000);
        assert_eq!(ms(i32::MAX, 1.0), 60_000);
        assert_eq!(ms(0, 0.0), 500);
    }

    proptest! {
        #[test]
        fn it_stays_between_half_and_all_of_the_schedule(tries in 1i32..100, u in 0.0f64..1.0) {
            let full = 1_000u64.saturating_mul(1u64 << (tries - 1).min(40)).min(3_600_000);
            let p = pause(tries, 1_000, 3_600_000, u).as_millis() as u64;
            prop_assert!(p >= full / 2 && p <= full, "{p} of {full}");
        }
    }
}
