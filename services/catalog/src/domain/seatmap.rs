//! Laying out seats: an organizer describes an area's rows (label and seat count); we give each
//! seat an id, a number and plan coordinates inside the area's bounding box, row by row from the
//! front, and a rank (lower is better: the grade's rank, then the row). A row may group seats
//! into tables (테이블석, sold whole) and pair wheelchair spaces with companion seats (동반석).

use std::collections::HashMap;

use serde_json::Value;

/// One row as an organizer describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct RowSpec {
    /// Label, e.g. `A` or `12`.
    pub label: String,
    /// How many seats.
    pub seats: i32,
    /// Number of the first seat.
    pub first_number: i32,
    /// Numbers of wheelchair spaces.
    pub wheelchair: Vec<i32>,
    /// Tables: groups of seat numbers sold together (checked by [`group_problems`]).
    pub tables: Vec<Vec<i32>>,
    /// `[wheelchair, companion]` number pairs (checked by [`group_problems`]).
    pub companions: Vec<[i32; 2]>,
}

/// Fewest and most seats at one table.
pub const TABLE_SEATS: std::ops::RangeInclusive<usize> = 2..=8;

/// A laid-out seat.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacedSeat {
    /// `<area>-<row>-<number>`.
    pub seat_id: String,
    /// Row label.
    pub row: String,
    /// Number.
    pub number: i32,
    /// Plan x.
    pub x: f32,
    /// Plan y.
    pub y: f32,
    /// Lower is better.
    pub rank: i32,
    /// Wheelchair space.
    pub wheelchair: bool,
    /// The table's id (its first seat's id) for a table seat.
    pub table: Option<String>,
    /// For a companion seat, the id of its wheelchair seat.
    pub companion_of: Option<String>,
}

/// What is wrong with a row's `tables` and `companions` (`numbers`: the row's seat numbers):
/// each problem as `(field, message)`, the field `tables` or `companions`. A table has 2–8
/// distinct seats of the row and shares none with another table; a pair is a wheelchair space
/// of the row and another seat of the row that is not one, and no seat is in two pairs.
pub fn group_problems(
    numbers: std::ops::Range<i32>,
    wheelchair: &[i32],
    tables: &[Vec<i32>],
    companions: &[[i32; 2]],
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut at_table = std::collections::HashSet::new();
    for (t, table) in tables.iter().enumerate() {
        let problem = if !TABLE_SEATS.contains(&table.len()) {
            Some(format!(
                "table {t} must have {} to {} seats",
                TABLE_SEATS.start(),
                TABLE_SEATS.end()
            ))
        } else if let Some(n) = table.iter().find(|n| !numbers.contains(n)) {
            Some(format!("table {t}: {n} is not a seat number of the row"))
        } else {
            table
                .iter()
                .find(|n| !at_table.insert(**n))
                .map(|n| format!("table {t}: seat {n} is already at a table"))
        };
        if let Some(p) = problem {
            out.push(("tables", p));
            break;
        }
    }
    let mut paired = std::collections::HashSet::new();
    for (i, &[chair, companion]) in companions.iter().enumerate() {
        let problem = if !wheelchair.contains(&chair) {
            Some(format!(
                "pair {i}: {chair} is not one of the row's wheelchair seats"
            ))
        } else if !numbers.contains(&companion) {
            Some(format!(
                "pair {i}: {companion} is not a seat number of the row"
            ))
        } else if wheelchair.contains(&companion) {
            Some(format!(
                "pair {i}: the companion {companion} is a wheelchair seat"
            ))
        } else if !paired.insert(chair) || !paired.insert(companion) {
            Some(format!("pair {i}: a seat is already in a pair"))
        } else {
            None
        };
        if let Some(p) = problem {
            out.push(("companions", p));
            break;
        }
    }
    out
}

/// The bounding box `(min_x, min_y, max_x, max_y)` of a geometry: a `polygon` of at least three
/// `[x, y]` points, or a `position` `{x, y}` (a 10×10 box around it). None when it is neither.
pub fn bounds(geometry: &Value) -> Option<(f64, f64, f64, f64)> {
    if let Some(points) = geometry.get("polygon").and_then(Value::as_array) {
        if points.len() < 3 {
            return None;
        }
        let mut b = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for p in points {
            let xy = p.as_array().filter(|a| a.len() == 2)?;
            let (x, y) = (xy[0].as_f64()?, xy[1].as_f64()?);
            b = (b.0.min(x), b.1.min(y), b.2.max(x), b.3.max(y));
        }
        return Some(b);
    }
    let pos = geometry.get("position")?;
    let (x, y) = (pos.get("x")?.as_f64()?, pos.get("y")?.as_f64()?);
    Some((x - 5.0, y - 5.0, x + 5.0, y + 5.0))
}

/// Places the seats of `rows` inside `bounds`, front row first.
pub fn place(
    area: &str,
    bounds: (f64, f64, f64, f64),
    rows: &[RowSpec],
    grade_rank: i32,
) -> Vec<PlacedSeat> {
    let (x0, y0, x1, y1) = bounds;
    let row_h = (y1 - y0) / rows.len().max(1) as f64;
    let mut out = Vec::new();
    for (r, row) in rows.iter().enumerate() {
        let count = row.seats.max(0);
        let seat_w = (x1 - x0) / f64::from(count.max(1));
        let id = |number: i32| format!("{area}-{}-{number}", row.label);
        // A table is named after its lowest-numbered seat.
        let tables: HashMap<i32, String> = row
            .tables
            .iter()
            .filter_map(|t| t.iter().min().map(|&first| (t, id(first))))
            .flat_map(|(t, name)| t.iter().map(move |&n| (n, name.clone())))
            .collect();
        let companions: HashMap<i32, String> = row
            .companions
            .iter()
            .map(|&[chair, companion]| (companion, id(chair)))
            .collect();
        for i in 0..count {
            let number = row.first_number + i;
            out.push(PlacedSeat {
                seat_id: id(number),
                row: row.label.clone(),
                number,
                x: (x0 + seat_w * (f64::from(i) + 0.5)) as f32,
                y: (y0 + row_h * (r as f64 + 0.5)) as f32,
                rank: grade_rank * 1000 + i32::try_from(r).unwrap_or(999).min(999),
                wheelchair: row.wheelchair.contains(&number),
                table: tables.get(&number).cloned(),
                companion_of: companions.get(&number).cloned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn polygons_and_positions_have_bounds() {
        let poly = json!({"polygon": [[0, 0], [100, 0], [100, 50], [0, 50]]});
        assert_eq!(bounds(&poly), Some((0.0, 0.0, 100.0, 50.0)));
        assert_eq!(
            bounds(&json!({"position": {"x": 10, "y": 20}})),
            Some((5.0, 15.0, 15.0, 25.0))
        );
        assert_eq!(bounds(&json!({"polygon": [[0, 0], [1, 1]]})), None);
        assert_eq!(
            bounds(&json!({"polygon": [[0, "a"], [1, 1], [2, 2]]})),
            None
        );
        assert_eq!(bounds(&json!("square")), None);
    }

    #[test]
    fn seats_fill_rows_front_first() {
        let rows = vec![
            RowSpec {
                label: "A".into(),
                seats: 2,
                first_number: 1,
                wheelchair: vec![2],
                tables: vec![],
                companions: vec![[2, 1]],
            },
            RowSpec {
                label: "B".into(),
                seats: 3,
                first_number: 1,
                wheelchair: vec![],
                tables: vec![vec![3, 1, 2]],
                companions: vec![],
            },
        ];
        let seats = place("101", (0.0, 0.0, 60.0, 20.0), &rows, 2);
        assert_eq!(seats.len(), 5);
        assert_eq!(seats[0].seat_id, "101-A-1");
        assert!(seats[1].wheelchair);
        assert_eq!(seats[0].companion_of.as_deref(), Some("101-A-2"));
        assert_eq!(seats[1].companion_of, None);
        assert_eq!(seats[0].table, None);
        assert!(
            seats[2..]
                .iter()
                .all(|s| s.table.as_deref() == Some("101-B-1"))
        );
        assert!(seats[0].y < seats[2].y);
        assert!(seats[0].rank < seats[2].rank);
        assert!(
            seats
                .iter()
                .all(|s| (0.0..=60.0).contains(&s.x) && (0.0..=20.0).contains(&s.y))
        );
    }

    #[test]
    fn tables_and_pairs_are_checked() {
        let ok = group_problems(1..9, &[1], &[vec![2, 3], vec![4, 5, 6, 7]], &[[1, 8]]);
        assert!(ok.is_empty(), "{ok:?}");
        let bad = |tables: &[Vec<i32>], pairs: &[[i32; 2]]| {
            let p = group_problems(1..11, &[1, 2], tables, pairs);
            assert_eq!(p.len(), 1, "{tables:?} {pairs:?}: {p:?}");
            p[0].0
        };
        assert_eq!(bad(&[vec![3]], &[]), "tables");
        assert_eq!(bad(&[(1..=9).collect()], &[]), "tables");
        assert_eq!(bad(&[vec![3, 11]], &[]), "tables");
        assert_eq!(bad(&[vec![3, 4], vec![4, 5]], &[]), "tables");
        assert_eq!(bad(&[vec![3, 3]], &[]), "tables");
        assert_eq!(bad(&[], &[[3, 4]]), "companions");
        assert_eq!(bad(&[], &[[1, 2]]), "companions");
        assert_eq!(bad(&[], &[[1, 1]]), "companions");
        assert_eq!(bad(&[], &[[1, 11]]), "companions");
        assert_eq!(bad(&[], &[[1, 3], [2, 3]]), "companions");
        assert_eq!(bad(&[], &[[1, 3], [1, 4]]), "companions");
    }
}
