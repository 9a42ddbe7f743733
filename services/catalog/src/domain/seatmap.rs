//! Laying out seats: an organizer describes an area's rows (label and seat count); we give each
//! seat an id, a number and plan coordinates inside the area's bounding box, row by row from the
//! front, and a rank (lower is better: the grade's rank, then the row).

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
}

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
        for i in 0..count {
            let number = row.first_number + i;
            out.push(PlacedSeat {
                seat_id: format!("{area}-{}-{number}", row.label),
                row: row.label.clone(),
                number,
                x: (x0 + seat_w * (f64::from(i) + 0.5)) as f32,
                y: (y0 + row_h * (r as f64 + 0.5)) as f32,
                rank: grade_rank * 1000 + i32::try_from(r).unwrap_or(999).min(999),
                wheelchair: row.wheelchair.contains(&number),
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
            },
            RowSpec {
                label: "B".into(),
                seats: 3,
                first_number: 1,
                wheelchair: vec![],
            },
        ];
        let seats = place("101", (0.0, 0.0, 60.0, 20.0), &rows, 2);
        assert_eq!(seats.len(), 5);
        assert_eq!(seats[0].seat_id, "101-A-1");
        assert!(seats[1].wheelchair);
        assert!(seats[0].y < seats[2].y);
        assert!(seats[0].rank < seats[2].rank);
        assert!(
            seats
                .iter()
                .all(|s| (0.0..=60.0).contains(&s.x) && (0.0..=20.0).contains(&s.y))
        );
    }
}
