//! The seat map's wire shapes: the plain JSON of the public API, the compact encoding (one
//! letter per seat in layout order) and the delta of one change.

use std::{collections::BTreeMap, sync::Arc};

use serde::Serialize;
use serde_json::{Value, json};

use super::Frame;
use crate::domain::{AreaCount, Change, SeatStatus};

#[derive(Default, Serialize, Clone, Copy)]
struct Counts {
    available: i64,
    held: i64,
    sold: i64,
}

impl Counts {
    fn add(&mut self, status: SeatStatus, n: i64) {
        match status.shown() {
            SeatStatus::Available => self.available += n,
            SeatStatus::Held => self.held += n,
            SeatStatus::Sold | SeatStatus::Withheld => self.sold += n,
        }
    }
}

fn area_json(a: &AreaCount) -> Value {
    json!({"area_id": a.0, "capacity": a.1, "held": a.2, "sold": a.3, "available": a.available()})
}

/// Counts for the whole performance and by grade, and `remaining` (available) by grade.
fn summary(st: &Frame) -> Value {
    let mut total = Counts::default();
    let mut by_grade: BTreeMap<&str, Counts> = BTreeMap::new();
    for (seat, status) in st.layout.seats.iter().zip(&st.statuses) {
        total.add(*status, 1);
        by_grade.entry(&seat.grade).or_default().add(*status, 1);
    }
    let mut areas = Vec::new();
    for spec in &st.layout.areas {
        let Some(a) = st.areas.get(&spec.area_id) else {
            continue;
        };
        let g = by_grade.entry(&spec.grade).or_default();
        for c in [&mut total, g] {
            c.add(SeatStatus::Available, a.available());
            c.add(SeatStatus::Held, a.2);
            c.add(SeatStatus::Sold, a.3);
        }
        let mut body = area_json(a);
        body["grade"] = json!(spec.grade);
        areas.push(body);
    }
    let remaining: BTreeMap<&str, i64> = by_grade.iter().map(|(g, c)| (*g, c.available)).collect();
    json!({
        "performance_id": st.layout.performance_id,
        "revision": st.layout.revision,
        "epoch": &*st.epoch,
        "version": st.version,
        "remaining": remaining,
        "counts": total,
        "counts_by_grade": by_grade,
        "areas": areas,
    })
}

/// `GET .../seats`: every seat with its status, grade and place.
pub fn json(st: &Frame) -> Vec<u8> {
    let mut body = summary(st);
    let seats: Vec<Value> = st
        .layout
        .seats
        .iter()
        .zip(&st.statuses)
        .map(|(s, status)| {
            let mut seat = json!({
                "id": s.seat_id, "status": status.shown(), "grade": s.grade, "section": s.section,
                "row": s.row, "number": s.number, "wheelchair": s.wheelchair,
            });
            // Only on table and companion seats, so a plain stadium's map does not grow.
            if let Some(table) = &s.table {
                seat["table"] = json!(table);
            }
            if let Some(chair) = &s.companion_of {
                seat["companion_of"] = json!(chair);
            }
            seat
        })
        .collect();
    body["seats"] = Value::Array(seats);
    serde_json::to_vec(&body).unwrap_or_default()
}

/// `GET .../seats?format=compact`: `status` holds one letter per seat (`a`vailable, `h`eld,
/// `s`old, withheld seats too) in the order of `seats` in the plain JSON (by seat id) for this `revision`.
pub fn compact(st: &Frame) -> Vec<u8> {
    let mut body = summary(st);
    let status: String = st.statuses.iter().map(|s| s.letter()).collect();
    body["format"] = json!("compact");
    body["status"] = json!(status);
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The SSE `delta` event body covering versions `from..=to`: each seat and area touched, with
/// its state after the last of those changes.
pub fn delta<'a>(from: u64, to: u64, changes: impl Iterator<Item = &'a Arc<Change>>) -> String {
    let mut seats: BTreeMap<&str, SeatStatus> = BTreeMap::new();
    let mut areas: BTreeMap<&str, &AreaCount> = BTreeMap::new();
    for change in changes {
        for (id, status) in &change.seats {
            seats.insert(id, *status);
        }
        for a in &change.areas {
            areas.insert(&a.0, a);
        }
    }
    let seats: Vec<Value> = seats
        .iter()
        .map(|(id, status)| json!({"id": id, "status": status.shown()}))
        .collect();
    let areas: Vec<Value> = areas.values().map(|a| area_json(a)).collect();
    json!({"from": from, "version": to, "seats": seats, "areas": areas}).to_string()
}
