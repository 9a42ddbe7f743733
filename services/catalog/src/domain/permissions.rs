//! Who may do what beyond "organizers change what they created": the KBO team codes on an
//! event, and the changes that become an admin's once a sale opened (prices, ticket limit, start
//! time). Plain rules; the API asks the database for their inputs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::PerformanceState;
use crate::model::PriceTier;

/// Whether an organizer who is the account of the clubs `mine` may name `home` and `away` on an
/// event: a club sells its home games, naming any visitor; without a home team, the one team
/// named must be theirs. Naming no team is always allowed; admins are not asked.
pub fn may_name_teams(mine: &[String], home: Option<&str>, away: Option<&str>) -> bool {
    let ours = |code: &str| mine.iter().any(|m| m == code);
    match (home, away) {
        (Some(h), _) => ours(h),
        (None, Some(a)) => ours(a),
        (None, None) => true,
    }
}

/// Whether a performance's sale has opened: it was published (the seat service can sell it)
/// and its first window opened by `now`. Before that no ticket can have been sold.
pub fn sale_opened(
    state: PerformanceState,
    sale_opens_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    matches!(
        state,
        PerformanceState::Published | PerformanceState::SoldOut
    ) && sale_opens_at <= now
}

/// The prices by grade (what a buyer pays; tier names are not prices).
pub fn prices(tiers: &[PriceTier]) -> BTreeMap<String, i64> {
    tiers
        .iter()
        .map(|t| (t.grade.clone(), t.price_krw))
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn tier(grade: &str, name: &str, price_krw: i64) -> PriceTier {
        PriceTier {
            grade: grade.into(),
            name: name.into(),
            price_krw,
        }
    }

    #[test]
    fn a_club_names_its_home_games_and_any_visitor() {
        let lg = vec!["lg".to_owned()];
        assert!(may_name_teams(&lg, Some("lg"), Some("doosan")));
        assert!(may_name_teams(&lg, Some("lg"), None));
        assert!(!may_name_teams(&lg, Some("doosan"), Some("lg")));
        assert!(!may_name_teams(&lg, Some("doosan"), None));
        assert!(may_name_teams(&lg, None, Some("lg")));
        assert!(!may_name_teams(&lg, None, Some("kia")));
        assert!(may_name_teams(&[], None, None));
        assert!(!may_name_teams(&[], Some("lg"), None));
    }

    #[test]
    fn a_sale_opens_with_a_published_performance_and_its_first_window() {
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::days(100);
        let before = now - Duration::minutes(1);
        let after = now + Duration::minutes(1);
        assert!(sale_opened(PerformanceState::Published, before, now));
        assert!(sale_opened(PerformanceState::Published, now, now));
        assert!(sale_opened(PerformanceState::SoldOut, before, now));
        assert!(!sale_opened(PerformanceState::Published, after, now));
        for s in [
            PerformanceState::Draft,
            PerformanceState::Announced,
            PerformanceState::Cancelled,
        ] {
            assert!(!sale_opened(s, before, now), "{s:?}");
        }
    }

    #[test]
    fn a_renamed_tier_is_not_a_price_change() {
        let a = [tier("r", "R석", 1000), tier("s", "S석", 500)];
        let renamed = [tier("s", "S", 500), tier("r", "R", 1000)];
        assert_eq!(prices(&a), prices(&renamed));
        assert_ne!(prices(&a), prices(&[tier("r", "R석", 1000)]));
        assert_ne!(
            prices(&a),
            prices(&[tier("r", "R석", 1001), tier("s", "S석", 500)])
        );
    }
}
