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
        domain::{SaleStatus, status::open_at},
        seed::schedule::season,
    };
    use chrono::NaiveDate;

    #[test]
    fn a_fresh_seed_has_every_status() {
        let anchor = NaiveDate::from_ymd_opt(2026, 5, 13).unwrap();
        let now = seoul(anchor, 13, 7);
        let games = season(anchor);
        let sales = plan(&games, now);
        let status = |g: &Game, s: &Sale| {
            let open = open_at(s.windows.iter().map(|w| (w.opens_at, w.closes_at)), now);
            let closes = s.windows.iter().map(|w| w.closes_at).max().unwrap();
            SaleStatus::at(s.state, g.starts_at, closes, open, now)
        };
        let count = |want: SaleStatus| {
            games
                .iter()
                .zip(&sales)
                .filter(|(g, s)| status(g, s) == want)
                .count()
        };
        assert!(count(SaleStatus::Ended) > 50);
        assert!(count(SaleStatus::OnSale) >= 20);
        assert!(count(SaleStatus::SoldOut) >= 5);
        assert!(count(SaleStatus::Scheduled) > 400);
        let soon: Vec<_> = sales.iter().filter(|s| s.windows.len() == 1).collect();
        assert_eq!(soon.len(), 5, "one date of five games opens soon");
        for s in soon {
            assert!(s.waiting_room && s.publish);
            assert_eq!(s.windows[0].opens_at, seoul(anchor, 13, 17));
        }
        let published = sales.iter().filter(|s| s.publish).count();
        assert!((20..=45).contains(&published), "{published}");
    }
}
