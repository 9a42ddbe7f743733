//! Turns the schedule into sellable games with sale statuses relative to `now`:
//!
//! - a club-member presale opens eight days before the game and the general sale seven days
//!   before, both at 11:00 Seoul time, both closing at first pitch (the common KBO pattern);
//! - games already started are past (ended);
//! - games whose presale has opened are on sale, except every fifth of them, which is sold out;
//! - the games of the next date whose sale has not opened yet open ten minutes after `now`
//!   (rounded to the minute) behind a waiting room;
//! - later games are announced; the catalog publishes them as their opening nears.
//!
//! Weekend (Friday–Sunday) games have a waiting room and weekend prices.

use chrono::{DateTime, Duration, DurationRound, Utc};

use super::schedule::{Game, seoul};
use crate::{domain::PerformanceState, model::SaleWindow};

/// How long after the seed the "opening soon" games open.
pub const OPENS_AFTER: Duration = Duration::minutes(10);
/// Tickets one buyer may take for one game.
pub const TICKET_LIMIT: i32 = 4;

/// A game's sale setup.
#[derive(Debug, Clone)]
pub struct Sale {
    /// Stored state.
    pub state: PerformanceState,
    /// Windows.
    pub windows: Vec<SaleWindow>,
    /// Waiting room at the opening.
    pub waiting_room: bool,
    /// Publish to the seat service now.
    pub publish: bool,
}

fn regular_windows(g: &Game) -> Vec<SaleWindow> {
    vec![
        SaleWindow {
            kind: "presale".into(),
            name: "회원 선예매 Members' presale".into(),
            opens_at: seoul(g.date - Duration::days(8), 11, 0),
            closes_at: g.starts_at,
        },
        SaleWindow {
            kind: "general".into(),
            name: "일반 예매 General sale".into(),
            opens_at: seoul(g.date - Duration::days(7), 11, 0),
            closes_at: g.starts_at,
        },
    ]
}

/// The sale setup of every game (same order as `games`, which is sorted by start).
pub fn plan(games: &[Game], now: DateTime<Utc>) -> Vec<Sale> {
    let opens_at = now.duration_trunc(Duration::minutes(1)).unwrap_or(now) + OPENS_AFTER;
    let next_opening_date = games
        .iter()
        .filter(|g| g.starts_at > now && regular_windows(g)[0].opens_at > now)
        .map(|g| g.date)
        .min();
    let mut on_sale_seen = 0usize;
    games
        .iter()
        .map(|g| {
            let windows = regular_windows(g);
            if g.starts_at <= now {
                return Sale {
                    state: PerformanceState::Published,
                    windows,
                    waiting_room: g.weekend,
                    publish: false,
                };
            }
            if windows[0].opens_at <= now {
                on_sale_seen += 1;
                let sold_out = on_sale_seen % 5 == 3;
                return Sale {
                    state: if sold_out {
                        PerformanceState::SoldOut
                    } else {
                        PerformanceState::Published
                    },
                    windows,
                    waiting_room: g.weekend,
                    publish: !sold_out,
                };
            }
            if Some(g.date) == next_opening_date && opens_at < g.starts_at {
                let windows = vec![SaleWindow {
                    kind: "general".into(),
                    name: "일반 예매 General sale".into(),
                    opens_at,
                    closes_at: g.starts_at,
                }];
                return Sale {
                    state: PerformanceState::Published,
                    windows,
                    waiting_room: true,
                    publish: true,
                };
            }
            Sale {
                state: PerformanceState::Announced,
                windows,
                waiting_room: g.weekend,
                publish: false,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        clock::test_week,
        domain::{SaleStatus, status::open_at},
        seed::schedule::season,
    };
    use chrono::NaiveDate;

    /// Plans the season seeded on `now`'s date in Seoul, as production does.
    fn seeded_at(now: DateTime<Utc>) -> (Vec<Game>, Vec<Sale>) {
        let games = season(crate::seed::today_in_seoul(now));
        let sales = plan(&games, now);
        (games, sales)
    }

    fn status(g: &Game, s: &Sale, now: DateTime<Utc>) -> SaleStatus {
        let open = open_at(s.windows.iter().map(|w| (w.opens_at, w.closes_at)), now);
        let closes = s.windows.iter().map(|w| w.closes_at).max().unwrap();
        SaleStatus::at(s.state, g.starts_at, closes, open, now)
    }

    #[test]
    fn a_fresh_seed_has_every_status_on_any_day_at_any_hour() {
        // A Monday to a Sunday, at midnight, 11:00 (when sales open) and 17:00 in Seoul.
        let week = test_week(NaiveDate::from_ymd_opt(2026, 5, 11).unwrap());
        assert_eq!(week.len(), 21);
        for now in week {
            let (games, sales) = seeded_at(now);
            let count = |want: SaleStatus| {
                games
                    .iter()
                    .zip(&sales)
                    .filter(|(g, s)| status(g, s, now) == want)
                    .count()
            };
            assert!(count(SaleStatus::Ended) >= 60, "{now}");
            assert!(count(SaleStatus::OnSale) >= 20, "{now}");
            assert!(count(SaleStatus::SoldOut) >= 5, "{now}");
            assert!(count(SaleStatus::Scheduled) > 400, "{now}");
            let soon: Vec<_> = sales.iter().filter(|s| s.windows.len() == 1).collect();
            assert_eq!(soon.len(), 5, "one date of five games opens soon: {now}");
            for s in soon {
                assert!(s.waiting_room && s.publish, "{now}");
                assert_eq!(s.windows[0].opens_at, now + OPENS_AFTER, "{now}");
            }
            let published = sales.iter().filter(|s| s.publish).count();
            assert!((20..=45).contains(&published), "{now}: {published}");
        }
    }

    #[test]
    fn sales_follow_the_presale_at_every_hour() {
        // The awkward minutes too: just before and at 11:00, when the next date's presale opens.
        let mut nows = test_week(NaiveDate::from_ymd_opt(2026, 5, 11).unwrap());
        let friday = NaiveDate::from_ymd_opt(2026, 5, 15).unwrap();
        nows.extend([
            seoul(friday, 10, 59),
            seoul(friday, 10, 50),
            seoul(friday, 23, 59),
        ]);
        for now in nows {
            let (games, sales) = seeded_at(now);
            let soon_date = games
                .iter()
                .zip(&sales)
                .find(|(_, s)| s.windows.len() == 1)
                .map(|(g, _)| g.date)
                .unwrap();
            for (g, s) in games.iter().zip(&sales) {
                let presale = seoul(g.date - Duration::days(8), 11, 0);
                let got = status(g, s, now);
                if g.starts_at <= now {
                    assert_eq!(got, SaleStatus::Ended, "{now} {}", g.date);
                } else if presale <= now {
                    assert!(
                        matches!(got, SaleStatus::OnSale | SaleStatus::SoldOut),
                        "{now} {}: {got:?}",
                        g.date
                    );
                } else {
                    assert_eq!(got, SaleStatus::Scheduled, "{now} {}", g.date);
                    if g.date != soon_date {
                        assert_eq!(s.state, PerformanceState::Announced, "{now} {}", g.date);
                        assert!(!s.publish && g.date > soon_date, "{now} {}", g.date);
                    }
                }
            }
            // The games opening soon are those of the first date whose presale has not opened.
            let first_unopened = games
                .iter()
                .filter(|g| seoul(g.date - Duration::days(8), 11, 0) > now)
                .map(|g| g.date)
                .min();
            assert_eq!(Some(soon_date), first_unopened, "{now}");
        }
    }
}
