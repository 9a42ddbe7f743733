//! A handful of non-baseball events on real Seoul venues (approximate capacities): a concert at
//! the KSPO Dome (floor standing and seated tiers), a musical run at the Charlotte Theater, and
//! hourly timed entry to a special exhibition at the National Museum of Korea. The productions
//! themselves are fictional.

use chrono::{DateTime, Datelike, Duration, DurationRound, NaiveDate, Utc, Weekday};
use serde_json::json;

use super::schedule::seoul;
use crate::{
    domain::{
        VenueKind,
        seatmap::{self, RowSpec},
    },
    ids,
    model::{Grade, PriceTier, SaleWindow},
    store::venues::{NewArea, NewSeat, NewVenue},
};

/// A seeded non-baseball event with its performances.
pub struct Production {
    /// Natural key.
    pub key: &'static str,
    /// Kind name.
    pub kind: &'static str,
    /// Title.
    pub title: &'static str,
    /// Description.
    pub description: &'static str,
    /// Venue slug.
    pub venue: &'static str,
    /// Tickets per buyer.
    pub ticket_limit: i32,
    /// Waiting room.
    pub waiting_room: bool,
    /// Prices.
    pub tiers: Vec<PriceTier>,
    /// Starts and sale windows.
    pub performances: Vec<(DateTime<Utc>, Vec<SaleWindow>)>,
}

fn grade(code: &str, name: &str, name_en: &str, color: &str, rank: i32) -> Grade {
    Grade {
        code: code.into(),
        name: name.into(),
        name_en: name_en.into(),
        color: color.into(),
        rank,
    }
}

fn rect(x: f64, y: f64, w: f64, h: f64) -> serde_json::Value {
    json!({"polygon": [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]})
}

/// A seated rectangular block of `rows` × `per_row` seats.
fn block(
    code: &str,
    name: &str,
    grade: &str,
    rank: i32,
    (x, y, w, h): (f64, f64, f64, f64),
    rows: i32,
    per_row: i32,
) -> NewArea {
    let specs: Vec<RowSpec> = (0..rows)
        .map(|r| RowSpec {
            label: (r + 1).to_string(),
            seats: per_row,
            first_number: 1,
            wheelchair: Vec::new(),
            tables: Vec::new(),
            companions: Vec::new(),
        })
        .collect();
    let seats = seatmap::place(code, (x, y, x + w, y + h), &specs, rank)
        .into_iter()
        .map(|s| NewSeat {
            seat_id: s.seat_id,
            row: s.row,
            number: s.number,
            x: s.x,
            y: s.y,
            rank: s.rank,
            wheelchair: s.wheelchair,
            table: s.table,
            companion_of: s.companion_of,
        })
        .collect();
    NewArea {
        code: code.into(),
        name: name.into(),
        grade: grade.into(),
        standing: false,
        capacity: 0,
        geometry: rect(x, y, w, h),
        seats,
    }
}

fn standing(
    code: &str,
    name: &str,
    grade: &str,
    (x, y, w, h): (f64, f64, f64, f64),
    capacity: i32,
) -> NewArea {
    NewArea {
        code: code.into(),
        name: name.into(),
        grade: grade.into(),
        standing: true,
        capacity,
        geometry: rect(x, y, w, h),
        seats: Vec::new(),
    }
}

/// The seeded id of a non-baseball venue.
pub fn venue_id(slug: &str) -> uuid::Uuid {
    ids::stable("venue", slug)
}

/// KSPO Dome: 5,000 standing on the floor, 1,000 floor seats, 4,000 on the first tier, 5,000 on
/// the second (15,000 in all, about its concert capacity).
fn kspo_dome() -> NewVenue {
    let mut areas = vec![
        standing(
            "FA",
            "플로어 스탠딩 A",
            "standing",
            (250.0, 150.0, 240.0, 200.0),
            2_500,
        ),
        standing(
            "FB",
            "플로어 스탠딩 B",
            "standing",
            (510.0, 150.0, 240.0, 200.0),
            2_500,
        ),
    ];
    for i in 0..4 {
        let code = format!("F{}", i + 1);
        areas.push(block(
            &code,
            &format!("플로어 {code}구역"),
            "vip",
            0,
            (250.0 + 125.0 * f64::from(i), 370.0, 115.0, 90.0),
            10,
            25,
        ));
    }
    for i in 0..16 {
        let code = format!("1{:02}", i + 1);
        let (x, y) = match i {
            0..4 => (150.0, 150.0 + 90.0 * f64::from(i)),
            4..12 => (150.0 + 90.0 * f64::from(i - 4), 510.0),
            _ => (780.0, 150.0 + 90.0 * f64::from(15 - i)),
        };
        areas.push(block(
            &code,
            &format!("1층 {code}구역"),
            "r",
            1,
            (x, y, 80.0, 80.0),
            10,
            25,
        ));
    }
    for i in 0..20 {
        let code = format!("2{:02}", i + 1);
        let (x, y) = match i {
            0..5 => (40.0, 120.0 + 100.0 * f64::from(i)),
            5..15 => (40.0 + 92.0 * f64::from(i - 5), 640.0),
            _ => (890.0, 120.0 + 100.0 * f64::from(19 - i)),
        };
        areas.push(block(
            &code,
            &format!("2층 {code}구역"),
            "s",
            2,
            (x, y, 85.0, 90.0),
            10,
            25,
        ));
    }
    NewVenue {
        id: venue_id("kspo-dome"),
        name: "KSPO DOME (올림픽체조경기장)".into(),
        name_en: "KSPO Dome (Olympic Gymnastics Arena)".into(),
        kind: VenueKind::Arena,
        city: "서울 Seoul".into(),
        address: "서울특별시 송파구 올림픽로 424".into(),
        plan: json!({"width": 1000, "height": 760, "shape": "arena", "stage": [[300, 20], [700, 20], [700, 120], [300, 120]]}),
        organizer_id: None,
        grades: vec![
            grade("vip", "VIP석", "VIP", "#8e44ad", 0),
            grade("standing", "스탠딩석", "Standing", "#e67e22", 0),
            grade("r", "R석", "R", "#2980b9", 1),
            grade("s", "S석", "S", "#27ae60", 2),
        ],
        areas,
    }
}

/// Charlotte Theater: 1,241 seats (820 on the first floor, 421 on the second).
fn charlotte() -> NewVenue {
    NewVenue {
        id: venue_id("charlotte-theater"),
        name: "샤롯데씨어터".into(),
        name_en: "Charlotte Theater".into(),
        kind: VenueKind::Theatre,
        city: "서울 Seoul".into(),
        address: "서울특별시 송파구 올림픽로 240".into(),
        plan: json!({"width": 800, "height": 700, "shape": "proscenium", "stage": [[150, 20], [650, 20], [650, 100], [150, 100]]}),
        organizer_id: None,
        grades: vec![
            grade("vip", "VIP석", "VIP", "#8e44ad", 0),
            grade("r", "R석", "R", "#c0392b", 1),
            grade("s", "S석", "S", "#2980b9", 2),
            grade("a", "A석", "A", "#27ae60", 3),
        ],
        areas: vec![
            block(
                "1C",
                "1층 중앙",
                "vip",
                0,
                (230.0, 130.0, 340.0, 180.0),
                12,
                22,
            ),
            block(
                "1CB",
                "1층 중앙 후방",
                "r",
                1,
                (230.0, 320.0, 340.0, 110.0),
                8,
                22,
            ),
            block(
                "1L",
                "1층 좌측",
                "r",
                1,
                (60.0, 130.0, 160.0, 300.0),
                19,
                10,
            ),
            block(
                "1R",
                "1층 우측",
                "r",
                1,
                (580.0, 130.0, 160.0, 300.0),
                19,
                10,
            ),
            block(
                "2C",
                "2층 중앙",
                "s",
                2,
                (200.0, 470.0, 400.0, 140.0),
                9,
                25,
            ),
            block("2L", "2층 좌측", "a", 3, (40.0, 470.0, 150.0, 140.0), 7, 14),
            block(
                "2R",
                "2층 우측",
                "a",
                3,
                (610.0, 470.0, 150.0, 140.0),
                7,
                14,
            ),
        ],
    }
}

/// National Museum of Korea: one special-exhibition hall admitting 150 visitors per hourly slot.
fn museum() -> NewVenue {
    NewVenue {
        id: venue_id("national-museum-of-korea"),
        name: "국립중앙박물관".into(),
        name_en: "National Museum of Korea".into(),
        kind: VenueKind::Museum,
        city: "서울 Seoul".into(),
        address: "서울특별시 용산구 서빙고로 137".into(),
        plan: json!({"width": 600, "height": 400, "shape": "hall"}),
        organizer_id: None,
        grades: vec![grade("general", "일반", "General admission", "#34495e", 0)],
        areas: vec![standing(
            "hall",
            "기획전시실",
            "general",
            (50.0, 50.0, 500.0, 300.0),
            150,
        )],
    }
}

/// The venues of the non-baseball events.
pub fn venues() -> Vec<NewVenue> {
    vec![kspo_dome(), charlotte(), museum()]
}

fn tier(grade: &str, name: &str, price_krw: i64) -> PriceTier {
    PriceTier {
        grade: grade.into(),
        name: name.into(),
        price_krw,
    }
}

fn window(kind: &str, name: &str, opens_at: DateTime<Utc>, closes_at: DateTime<Utc>) -> SaleWindow {
    SaleWindow {
        kind: kind.into(),
        name: name.into(),
        opens_at,
        closes_at,
    }
}

/// The productions around `anchor`, with sale windows relative to `now`.
pub fn productions(anchor: NaiveDate, now: DateTime<Utc>) -> Vec<Production> {
    let minute = now.duration_trunc(Duration::minutes(1)).unwrap_or(now);
    // The concert: fan-club presale running now, general sale opening in 30 minutes.
    let sat =
        anchor + Duration::days(i64::from((12 - anchor.weekday().num_days_from_monday()) % 7) + 7);
    let concert_starts = [seoul(sat, 18, 0), seoul(sat + Duration::days(1), 17, 0)];
    let concert = Production {
        key: "concert/boxoffice-live-2026",
        kind: "concert",
        title: "Boxoffice Live 2026 in Seoul (가상 콘서트)",
        description: "A fictional arena concert for the demo: floor standing, floor seats and two tiers.",
        venue: "kspo-dome",
        ticket_limit: 2,
        waiting_room: true,
        tiers: vec![
            tier("vip", "VIP석", 198_000),
            tier("standing", "스탠딩석", 154_000),
            tier("r", "R석", 154_000),
            tier("s", "S석", 132_000),
        ],
        performances: concert_starts
            .iter()
            .map(|&s| {
                // Around `now` when the concert is ahead (presale open, general sale in 30
                // minutes); anchored on the concert itself when seeding a past date.
                let windows = if s - Duration::hours(2) > minute + Duration::minutes(30) {
                    vec![
                        window(
                            "presale",
                            "팬클럽 선예매 Fan-club presale",
                            minute - Duration::days(1),
                            minute + Duration::minutes(25),
                        ),
                        window(
                            "general",
                            "일반 예매 General sale",
                            minute + Duration::minutes(30),
                            s - Duration::hours(2),
                        ),
                    ]
                } else {
                    vec![
                        window(
                            "presale",
                            "팬클럽 선예매 Fan-club presale",
                            s - Duration::days(14),
                            s - Duration::days(13),
                        ),
                        window(
                            "general",
                            "일반 예매 General sale",
                            s - Duration::days(13),
                            s - Duration::hours(2),
                        ),
                    ]
                };
                (s, windows)
            })
            .collect(),
    };
    // The musical: eight shows a week, dark on Mondays, one general window open since a month ago.
    let mut shows = Vec::new();
    for d in -7..21 {
        let date = anchor + Duration::days(d);
        let times: &[(u32, u32)] = match date.weekday() {
            Weekday::Mon => &[],
            Weekday::Sat => &[(14, 0), (19, 0)],
            Weekday::Sun => &[(14, 0), (18, 30)],
            _ => &[(19, 30)],
        };
        for &(h, m) in times {
            let s = seoul(date, h, m);
            shows.push((
                s,
                vec![window(
                    "general",
                    "일반 예매 General sale",
                    seoul(anchor - Duration::days(30), 14, 0),
                    s - Duration::hours(3),
                )],
            ));
        }
    }
    let musical = Production {
        key: "musical/midsummer-2026",
        kind: "musical",
        title: "뮤지컬 〈한여름 밤의 꿈〉 A Midsummer Night's Dream",
        description: "A fictional musical run after Shakespeare's comedy, for the demo.",
        venue: "charlotte-theater",
        ticket_limit: 4,
        waiting_room: false,
        tiers: vec![
            tier("vip", "VIP석", 170_000),
            tier("r", "R석", 140_000),
            tier("s", "S석", 110_000),
            tier("a", "A석", 80_000),
        ],
        performances: shows,
    };
    // The exhibition: timed entry every hour from 10:00 to 17:00, daily.
    let mut slots = Vec::new();
    for d in -3..18 {
        let date = anchor + Duration::days(d);
        for h in 10..18 {
            let s = seoul(date, h, 0);
            slots.push((
                s,
                vec![window(
                    "general",
                    "관람 예약 Timed-entry booking",
                    seoul(anchor - Duration::days(30), 10, 0),
                    s + Duration::minutes(30),
                )],
            ));
        }
    }
    let exhibition = Production {
        key: "exhibition/joseon-court-painting",
        kind: "exhibition",
        title: "특별전 〈조선의 궁중 회화〉 Joseon Court Painting",
        description: "A fictional special exhibition with hourly timed entry, for the demo.",
        venue: "national-museum-of-korea",
        ticket_limit: 6,
        waiting_room: false,
        tiers: vec![tier("general", "일반 관람권", 18_000)],
        performances: slots,
    };
    vec![concert, musical, exhibition]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacities_are_the_real_ones_approximately() {
        let caps: Vec<i32> = venues()
            .iter()
            .map(|v| v.areas.iter().map(NewArea::places).sum())
            .collect();
        assert_eq!(caps, vec![15_000, 1_241, 150]);
    }

    #[test]
    fn productions_have_windows_before_their_start() {
        let anchor = NaiveDate::from_ymd_opt(2026, 5, 13).unwrap();
        let now = seoul(anchor, 13, 7);
        let ps = productions(anchor, now);
        assert_eq!(ps.len(), 3);
        for p in &ps {
            assert!(!p.performances.is_empty());
            for (_, windows) in &p.performances {
                assert!(!windows.is_empty(), "{}", p.key);
                assert!(windows.iter().all(|w| w.opens_at < w.closes_at));
            }
        }
        assert_eq!(ps[2].performances.len(), 21 * 8);
        // Whatever the day and hour of the seed, every production has a performance on sale
        // and the concert's general sale opens within the day.
        for now in crate::clock::test_week(NaiveDate::from_ymd_opt(2026, 5, 11).unwrap()) {
            let ps = productions(crate::seed::today_in_seoul(now), now);
            for p in &ps {
                let on_sale = p.performances.iter().filter(|(s, windows)| {
                    *s > now
                        && windows
                            .iter()
                            .any(|w| w.opens_at <= now && now < w.closes_at)
                });
                assert!(on_sale.count() > 0, "{} at {now}", p.key);
                for (s, windows) in &p.performances {
                    assert!(!windows.is_empty(), "{} at {now}", p.key);
                    assert!(
                        windows
                            .iter()
                            .all(|w| w.opens_at < w.closes_at
                                && w.closes_at <= *s + Duration::hours(1)),
                        "{} at {now}",
                        p.key
                    );
                }
            }
            let general = ps[0]
                .performances
                .iter()
                .flat_map(|(_, w)| w)
                .filter(|w| w.kind == "general");
            assert!(
                general.clone().count() == 2
                    && general
                        .clone()
                        .all(|w| w.opens_at > now && w.opens_at <= now + Duration::hours(24)),
                "{now}"
            );
        }
        // Seeding a date months ago still gives well-formed windows.
        for p in productions(anchor, now + Duration::days(200)) {
            assert!(!p.performances.is_empty(), "{}", p.key);
            for (_, windows) in &p.performances {
                assert!(
                    !windows.is_empty() && windows.iter().all(|w| w.opens_at < w.closes_at),
                    "{}",
                    p.key
                );
            }
        }
    }
}
