//! A season-shaped KBO schedule: 10 clubs, 48 three-game series each (144 games a club, 720 in
//! all), five games a day, Tuesday–Thursday and Friday–Sunday series, no games on Mondays.
//! Pairings come from the circle method (every club meets every other within nine series), home
//! and away swapping each cycle. Starts: 18:30 on weekdays, 17:00 on Saturdays, 14:00 on
//! Sundays (Seoul time). The season opens on the Tuesday two weeks before the anchor date's
//! week, so a fresh seed has past games, games on sale and games still to open.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};

use crate::domain::teams::{TEAMS, Team};

/// Series each club plays.
pub const SERIES: usize = 48;
/// Games per series.
pub const GAMES_PER_SERIES: usize = 3;
/// Weeks of past games before the anchor date's week.
pub const WEEKS_BEFORE: i64 = 2;

/// One game.
#[derive(Debug, Clone, Copy)]
pub struct Game {
    /// Date in Seoul.
    pub date: NaiveDate,
    /// First pitch (UTC).
    pub starts_at: DateTime<Utc>,
    /// Home club (its stadium hosts).
    pub home: &'static Team,
    /// Visiting club.
    pub away: &'static Team,
    /// Weekend (Friday–Sunday) prices apply.
    pub weekend: bool,
}

/// The Tuesday the season opens for an anchor date.
pub fn opening_day(anchor: NaiveDate) -> NaiveDate {
    let since_tuesday = (i64::from(anchor.weekday().num_days_from_monday()) + 6) % 7;
    anchor - Duration::days(since_tuesday + 7 * WEEKS_BEFORE)
}

/// Seoul local time → UTC (Korea keeps no daylight saving: UTC+9 all year).
pub fn seoul(date: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    let local = date.and_time(NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or_default());
    Utc.from_utc_datetime(&(local - Duration::hours(9)))
}

/// The pairings of round `k` (0-based) of the circle method: five (home, away) index pairs.
fn round(k: usize) -> Vec<(usize, usize)> {
    let n = TEAMS.len();
    let mut ring: Vec<usize> = (1..n).collect();
    ring.rotate_left(k % (n - 1));
    let mut order = vec![0];
    order.extend(ring);
    let cycle = k / (n - 1);
    (0..n / 2)
        .map(|i| {
            let (a, b) = (order[i], order[n - 1 - i]);
            let flip = (i == 0 && k % 2 == 1) || (i > 0 && i % 2 == 1);
            if flip ^ (cycle % 2 == 1) {
                (b, a)
            } else {
                (a, b)
            }
        })
        .collect()
}

/// The whole season around `anchor`.
pub fn season(anchor: NaiveDate) -> Vec<Game> {
    let opening = opening_day(anchor);
    let mut games = Vec::with_capacity(SERIES * TEAMS.len() / 2 * GAMES_PER_SERIES);
    for slot in 0..SERIES {
        let week_start = opening + Duration::weeks(i64::try_from(slot / 2).unwrap_or(0));
        let first_day = if slot % 2 == 0 { 0 } else { 3 };
        for (h, a) in round(slot) {
            for d in 0..GAMES_PER_SERIES {
                let date = week_start + Duration::days(first_day + i64::try_from(d).unwrap_or(0));
                let (hour, minute) = match date.weekday() {
                    Weekday::Sat => (17, 0),
                    Weekday::Sun => (14, 0),
                    _ => (18, 30),
                };
                games.push(Game {
                    date,
                    starts_at: seoul(date, hour, minute),
                    home: &TEAMS[h],
                    away: &TEAMS[a],
                    weekend: matches!(date.weekday(), Weekday::Fri | Weekday::Sat | Weekday::Sun),
                });
            }
        }
    }
    games.sort_by_key(|g| (g.starts_at, g.home.code));
    games
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn a_season_is_720_games_144_a_club_none_on_mondays() {
        let anchor = NaiveDate::from_ymd_opt(2026, 4, 15).unwrap();
        let games = season(anchor);
        assert_eq!(games.len(), 720);
        let mut per_team: HashMap<&str, usize> = HashMap::new();
        let mut per_day: HashMap<NaiveDate, Vec<&str>> = HashMap::new();
        for g in &games {
            assert_ne!(g.home.code, g.away.code);
            assert_ne!(g.date.weekday(), Weekday::Mon);
            *per_team.entry(g.home.code).or_default() += 1;
            *per_team.entry(g.away.code).or_default() += 1;
            per_day
                .entry(g.date)
                .or_default()
                .extend([g.home.code, g.away.code]);
        }
        assert_eq!(per_team.len(), 10);
        assert!(per_team.values().all(|n| *n == 144), "{per_team:?}");
        for (day, clubs) in per_day {
            let mut c = clubs.clone();
            c.sort_unstable();
            c.dedup();
            assert_eq!(c.len(), 10, "every club plays once on {day}");
        }
        assert!(games[0].date < anchor && games[719].date > anchor);
    }

    #[test]
    fn every_club_meets_every_other_and_hosts_about_half() {
        let games = season(NaiveDate::from_ymd_opt(2026, 4, 15).unwrap());
        let mut meetings: HashMap<(&str, &str), usize> = HashMap::new();
        let mut home: HashMap<&str, usize> = HashMap::new();
        for g in &games {
            let key = if g.home.code < g.away.code {
                (g.home.code, g.away.code)
            } else {
                (g.away.code, g.home.code)
            };
            *meetings.entry(key).or_default() += 1;
            *home.entry(g.home.code).or_default() += 1;
        }
        assert_eq!(meetings.len(), 45);
        assert!(
            meetings.values().all(|n| (15..=18).contains(n)),
            "{meetings:?}"
        );
        assert_eq!(home.len(), 10, "every club hosts");
        assert!(home.values().all(|n| (60..=84).contains(n)), "{home:?}");
    }

    #[test]
    fn start_times_follow_the_weekday() {
        let tue = NaiveDate::from_ymd_opt(2026, 4, 14).unwrap();
        assert_eq!(opening_day(tue), tue - Duration::weeks(2));
        let mon = NaiveDate::from_ymd_opt(2026, 4, 13).unwrap();
        assert_eq!(opening_day(mon).weekday(), Weekday::Tue);
        assert_eq!(seoul(tue, 18, 30).to_rfc3339(), "2026-04-14T09:30:00+00:00");
        assert_eq!(seoul(tue, 0, 0).to_rfc3339(), "2026-04-13T15:00:00+00:00");
        // Seeded on any day of a week, the season opens on a Tuesday two or three weeks before,
        // the anchor's Tuesday-to-Sunday week has its 30 games, and games remain ahead.
        for d in 0..7 {
            let anchor = mon + Duration::days(d);
            let opening = opening_day(anchor);
            assert_eq!(opening.weekday(), Weekday::Tue, "{anchor}");
            assert!(
                (14..21).contains(&(anchor - opening).num_days()),
                "{anchor}"
            );
            let week = opening + Duration::weeks(WEEKS_BEFORE);
            let games = season(anchor);
            let in_week = games
                .iter()
                .filter(|g| g.date >= week && g.date < week + Duration::days(6))
                .count();
            assert_eq!(in_week, 30, "{anchor}");
            assert!(
                games.iter().filter(|g| g.date > anchor).count() > 500,
                "{anchor}"
            );
        }
    }
}
