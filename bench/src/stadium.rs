//! The benchmarks' performance: one stadium of 25,000 seats (20 sections × 25 rows × 50), and
//! what a buyer asks for in it.

use contracts::events::{PerformanceSpec, PriceSpec, SeatSpec};
use rand::Rng;
use uuid::Uuid;

/// Sections of the stadium.
pub const SECTIONS: usize = 20;
/// Rows per section.
pub const ROWS: usize = 25;
/// Seats per row.
pub const PER_ROW: usize = 50;

/// A seat's id.
pub fn seat_id(section: usize, row: usize, n: usize) -> String {
    format!("S{section:02}-{row:02}-{n:02}")
}

/// 25,000 seats under a fresh performance id, on sale now, no ticket limit, no waiting room.
pub fn stadium() -> PerformanceSpec {
    let mut seats = Vec::with_capacity(SECTIONS * ROWS * PER_ROW);
    for s in 1..=SECTIONS {
        for r in 1..=ROWS {
            for n in 1..=PER_ROW {
                seats.push(SeatSpec {
                    seat_id: seat_id(s, r, n),
                    section: format!("S{s:02}"),
                    row: format!("{r:02}"),
                    number: n as i32,
                    grade: if r <= 5 { "vip".into() } else { "r".into() },
                    rank: r as i32,
                    wheelchair: false,
                    table: None,
                    companion_of: None,
                });
            }
        }
    }
    let now = chrono::Utc::now();
    PerformanceSpec {
        performance_id: Uuid::now_v7(),
        event_id: Uuid::now_v7(),
        venue_id: Uuid::now_v7(),
        starts_at: now + chrono::Duration::days(30),
        ticket_limit: 0,
        waiting_room: false,
        sale_opens_at: now - chrono::Duration::hours(1),
        sale_closes_at: now + chrono::Duration::days(29),
        seats,
        areas: Vec::new(),
        prices: vec![
            PriceSpec {
                grade: "vip".into(),
                name: "VIP".into(),
                price_krw: 2,
                ticket_types: vec![],
            },
            PriceSpec {
                grade: "r".into(),
                name: "R".into(),
                price_krw: 1,
                ticket_types: vec![],
            },
        ],
        revision: 1,
        presale: None,
    }
}

/// 2–4 adjacent seats in a random row.
pub fn wish() -> Vec<String> {
    let mut rng = rand::rng();
    let (s, r) = (rng.random_range(1..=SECTIONS), rng.random_range(1..=ROWS));
    let n = rng.random_range(2..=4);
    let start = rng.random_range(1..=PER_ROW - n + 1);
    (start..start + n).map(|i| seat_id(s, r, i)).collect()
}
