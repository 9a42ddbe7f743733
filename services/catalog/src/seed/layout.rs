//! Generates a stadium's seat map to its capacity: each grade's share of the seats is laid out in
//! its zones of the bowl as sections (annular sectors around home plate, about 220 seats each)
//! of rows and seats with plan coordinates; lawn grades become general-admission areas.
//!
//! Plan coordinates: a 1100 × 1100 frame, home plate at (550, 800), the field upward. An angle θ
//! points from home plate to (cos θ, sin θ) with y growing downward: 90° is behind the plate,
//! 270° is centre field.

use serde_json::{Value, json};
use uuid::Uuid;

use super::stadiums::{Stadium, Zone};
use crate::{
    domain::VenueKind,
    ids,
    model::Grade,
    store::venues::{NewArea, NewSeat, NewVenue},
};

const HOME: (f64, f64) = (550.0, 800.0);
const SEATS_PER_SECTION: f64 = 220.0;

/// A zone's sectors: `(θ from, θ to, inner radius, outer radius)`, and its level (the hundreds
/// of its section numbers).
fn sectors(zone: Zone) -> (&'static [(f64, f64, f64, f64)], u32) {
    match zone {
        Zone::Premium => (&[(75.0, 105.0, 40.0, 75.0)], 1),
        Zone::Table => (&[(55.0, 75.0, 40.0, 80.0), (105.0, 125.0, 40.0, 80.0)], 1),
        Zone::Exciting => (
            &[(-50.0, -38.0, 30.0, 110.0), (218.0, 230.0, 30.0, 110.0)],
            1,
        ),
        Zone::Central => (&[(40.0, 140.0, 85.0, 160.0)], 1),
        Zone::WingNear => (&[(0.0, 40.0, 40.0, 160.0), (140.0, 180.0, 40.0, 160.0)], 2),
        Zone::WingFar => (&[(-36.0, 0.0, 40.0, 160.0), (180.0, 216.0, 40.0, 160.0)], 2),
        Zone::UpperCentral => (&[(50.0, 130.0, 185.0, 260.0)], 3),
        Zone::UpperWing => (
            &[(-30.0, 50.0, 185.0, 260.0), (130.0, 210.0, 185.0, 260.0)],
            3,
        ),
        Zone::Outfield => (&[(228.0, 312.0, 440.0, 510.0)], 4),
        Zone::Lawn => (&[(250.0, 290.0, 410.0, 435.0)], 5),
    }
}

fn point(theta_deg: f64, r: f64) -> (f64, f64) {
    let t = theta_deg.to_radians();
    (HOME.0 + r * t.cos(), HOME.1 + r * t.sin())
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn sector_polygon(a0: f64, a1: f64, r0: f64, r1: f64) -> Value {
    let steps = 4;
    let mut pts = Vec::new();
    for i in 0..=steps {
        let (x, y) = point(a0 + (a1 - a0) * f64::from(i) / f64::from(steps), r1);
        pts.push(json!([round1(x), round1(y)]));
    }
    for i in (0..=steps).rev() {
        let (x, y) = point(a0 + (a1 - a0) * f64::from(i) / f64::from(steps), r0);
        pts.push(json!([round1(x), round1(y)]));
    }
    json!({ "polygon": pts })
}

/// Splits `total` into parts proportional to `weights` (the last part takes the rounding).
fn split(total: i64, weights: &[f64]) -> Vec<i64> {
    let sum: f64 = weights.iter().sum();
    let mut out: Vec<i64> = weights
        .iter()
        .map(|w| (total as f64 * w / sum).floor() as i64)
        .collect();
    let given: i64 = out.iter().sum();
    if let Some(last) = out.last_mut() {
        *last += total - given;
    }
    out
}

/// The seeded id of a stadium.
pub fn venue_id(slug: &str) -> Uuid {
    ids::stable("venue", slug)
}

/// The stadium with its generated seat map.
pub fn venue(stadium: &Stadium) -> NewVenue {
    let shares: Vec<f64> = stadium.grades.iter().map(|g| f64::from(g.share)).collect();
    let per_grade = split(i64::from(stadium.capacity), &shares);
    let mut counters = [0u32; 6];
    let mut areas = Vec::new();
    for (rank, (grade, seats)) in stadium.grades.iter().zip(per_grade).enumerate() {
        let rank = i32::try_from(rank).unwrap_or(0);
        let secs: Vec<(f64, f64, f64, f64, u32)> = grade
            .zones
            .iter()
            .flat_map(|z| {
                let (s, level) = sectors(*z);
                s.iter()
                    .map(move |&(a0, a1, r0, r1)| (a0, a1, r0, r1, level))
            })
            .collect();
        // The table zone behind the plate is sold by tables of four (테이블석).
        let tables = grade.zones.contains(&Zone::Table);
        let weights: Vec<f64> = secs
            .iter()
            .map(|s| (s.1 - s.0) * (s.3 * s.3 - s.2 * s.2))
            .collect();
        for (&(a0, a1, r0, r1, level), n) in secs.iter().zip(split(seats, &weights)) {
            let standing = level == 5;
            let k = if standing {
                1
            } else {
                ((n as f64 / SEATS_PER_SECTION).round() as i64).max(1)
            };
            let per_section = split(n, &vec![1.0; usize::try_from(k).unwrap_or(1)]);
            for (j, count) in per_section.into_iter().enumerate() {
                let lv = usize::try_from(level).unwrap_or(0).min(5);
                counters[lv] += 1;
                let code = if standing {
                    format!("L{}", counters[lv])
                } else {
                    format!("{}{:02}", level, counters[lv])
                };
                let span = (a1 - a0) / k as f64;
                let (s0, s1) = (a0 + span * j as f64, a0 + span * (j as f64 + 1.0));
                let name = if standing {
                    grade.name.to_owned()
                } else {
                    format!("{} {code}구역", grade.name)
                };
                areas.push(NewArea {
                    seats: if standing {
                        Vec::new()
                    } else {
                        section_seats(&code, count, (s0, s1, r0, r1), rank, j, tables)
                    },
                    code,
                    name,
                    grade: grade.code.to_owned(),
                    standing,
                    capacity: i32::try_from(count).unwrap_or(0),
                    geometry: sector_polygon(s0, s1, r0, r1),
                });
            }
        }
    }
    NewVenue {
        id: venue_id(stadium.slug),
        name: stadium.name.to_owned(),
        name_en: stadium.name_en.to_owned(),
        kind: VenueKind::Stadium,
        city: stadium.city.to_owned(),
        address: stadium.address.to_owned(),
        plan: json!({
            "width": 1100, "height": 1100, "shape": "baseball",
            "home_plate": [HOME.0, HOME.1],
            "field": sector_polygon(225.0, 315.0, 0.0, 400.0)["polygon"],
        }),
        organizer_id: None,
        grades: stadium
            .grades
            .iter()
            .enumerate()
            .map(|(i, g)| Grade {
                code: g.code.to_owned(),
                name: g.name.to_owned(),
                name_en: g.name_en.to_owned(),
                color: g.color.to_owned(),
                rank: i32::try_from(i).unwrap_or(0),
            })
            .collect(),
        areas,
    }
}

/// Rows of about twice as many seats as there are rows, front row nearest the field. With
/// `tables`, the rows without wheelchair spaces are tables of four (seats 1–4, 5–8, …; a
/// remainder under four stays single seats); a wheelchair space's companion (동반석) is the
/// seat beside the pair of wheelchair spaces (seat 3, with seat 2).
fn section_seats(
    code: &str,
    count: i64,
    (a0, a1, r0, r1): (f64, f64, f64, f64),
    rank: i32,
    index: usize,
    tables: bool,
) -> Vec<NewSeat> {
    if count <= 0 {
        return Vec::new();
    }
    let rows = ((count as f64 / 2.0).sqrt().round() as i64).clamp(1, 40);
    let per_row = (count + rows - 1) / rows;
    let rows = (count + per_row - 1) / per_row;
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    for row in 0..rows {
        let in_row = per_row.min(count - row * per_row);
        let r = r0 + (r1 - r0) * (row as f64 + 0.5) / rows as f64;
        for i in 0..in_row {
            let (x, y) = point(a0 + (a1 - a0) * (i as f64 + 0.5) / in_row as f64, r);
            let number = i32::try_from(i + 1).unwrap_or(0);
            let label = (row + 1).to_string();
            let id = |n: i64| format!("{code}-{label}-{n}");
            // Wheelchair spaces: the first two seats of the back row of every fourth section.
            let wheelchair_row = index.is_multiple_of(4) && row == rows - 1;
            let table =
                (tables && !wheelchair_row && i < in_row - in_row % 4).then(|| id(i - i % 4 + 1));
            let companion_of = (wheelchair_row && i == 2).then(|| id(2));
            out.push(NewSeat {
                seat_id: id(i + 1),
                row: label,
                number,
                x: round1(x) as f32,
                y: round1(y) as f32,
                rank: rank * 1000 + i32::try_from(row).unwrap_or(0),
                wheelchair: wheelchair_row && i < 2,
                table,
                companion_of,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::stadiums::STADIUMS;

    #[test]
    fn every_stadium_is_generated_to_its_capacity() {
        let mut total = 0;
        for s in STADIUMS {
            let v = venue(s);
            let places: i32 = v.areas.iter().map(NewArea::places).sum();
            assert_eq!(places, s.capacity, "{}", s.slug);
            let mut ids = std::collections::HashSet::new();
            for a in &v.areas {
                assert!(ids.insert(a.code.clone()), "{} {}", s.slug, a.code);
                for seat in &a.seats {
                    assert!((0.0..=1100.0).contains(&seat.x) && (0.0..=1100.0).contains(&seat.y));
                }
            }
            total += places;
        }
        assert!(total > 180_000, "{total}");
    }

    #[test]
    fn table_zones_sell_tables_of_four_and_wheelchair_spaces_have_companions() {
        let jamsil = venue(&STADIUMS[0]);
        let seats: Vec<&NewSeat> = jamsil.areas.iter().flat_map(|a| &a.seats).collect();
        let by_id: std::collections::HashMap<&str, &NewSeat> =
            seats.iter().map(|s| (s.seat_id.as_str(), *s)).collect();
        let mut tables: std::collections::HashMap<&str, Vec<&NewSeat>> = Default::default();
        for s in &seats {
            if let Some(t) = &s.table {
                tables.entry(t.as_str()).or_default().push(s);
            }
        }
        assert!(tables.len() > 100, "{} tables", tables.len());
        for (id, at) in &tables {
            assert_eq!(at.len(), 4, "{id}");
            assert!(
                at.iter().all(|s| s.row == at[0].row && !s.wheelchair),
                "{id}"
            );
            assert!(by_id.contains_key(id));
        }
        let companions: Vec<&&NewSeat> =
            seats.iter().filter(|s| s.companion_of.is_some()).collect();
        assert!(!companions.is_empty());
        for c in companions {
            let chair = by_id[c.companion_of.as_deref().unwrap()];
            assert!(chair.wheelchair && !c.wheelchair && chair.row == c.row);
            assert_eq!(chair.number + 1, c.number, "beside it");
        }
    }

    #[test]
    fn split_keeps_the_total() {
        assert_eq!(split(10, &[1.0, 1.0, 1.0]), vec![3, 3, 4]);
        assert_eq!(split(0, &[1.0]), vec![0]);
    }
}
