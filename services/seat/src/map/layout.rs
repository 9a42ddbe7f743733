//! A performance's static inventory as the seat map shows it: seats in a fixed order (by id),
//! areas and prices — built from a performance's publication (its `performance.seats` chunks
//! and `performance.published` header put together) and kept in SeatDB.

use std::collections::HashMap;

use contracts::{
    events::{AreaSpec, PerformanceSpec, SeatSpec},
    tickets::PresaleRules,
};
use uuid::Uuid;

use crate::{
    domain::{
        best_available::RowIndex,
        groups::{self, GroupRefusal, Grouping},
    },
    store::StoreInventory,
};

/// The static part of a performance's seat map.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Performance.
    pub performance_id: Uuid,
    /// Catalog revision.
    pub revision: i64,
    /// Whether a waiting room guards it (admission pass required).
    pub waiting_room: bool,
    /// Most tickets per buyer; 0 = no limit.
    pub ticket_limit: i64,
    /// When holds may start, ms since the epoch.
    pub sale_opens_at_ms: i64,
    /// When holds stop, ms since the epoch.
    pub sale_closes_at_ms: i64,
    /// Seats sorted by id; a seat's index is its place in the compact encoding.
    pub seats: Vec<SeatSpec>,
    /// Seat id → index in `seats`.
    pub index: HashMap<String, usize>,
    /// Table id → its seats by id (tables are sold whole).
    pub tables: HashMap<String, Vec<String>>,
    /// Per seat (as in `seats`): how many seats its table has, 0 for no table.
    pub table_sizes: Vec<usize>,
    /// General-admission areas.
    pub areas: Vec<AreaSpec>,
    /// Price per grade, KRW.
    pub prices: HashMap<String, i64>,
    /// The seats' rows, for best available.
    pub rows: RowIndex,
    /// Who may hold before the general sale (absent: anyone).
    pub presale: Option<PresaleRules>,
}

impl Layout {
    /// The layout of a published performance, from its assembled publication.
    pub fn from_published(p: &PerformanceSpec) -> Self {
        let mut seats = p.seats.clone();
        seats.sort_by(|a, b| a.seat_id.cmp(&b.seat_id));
        seats.dedup_by(|a, b| a.seat_id == b.seat_id);
        let index = seats
            .iter()
            .enumerate()
            .map(|(i, s)| (s.seat_id.clone(), i))
            .collect();
        let mut tables: HashMap<String, Vec<String>> = HashMap::new();
        for s in &seats {
            if let Some(t) = &s.table {
                tables.entry(t.clone()).or_default().push(s.seat_id.clone());
            }
        }
        let table_sizes = seats
            .iter()
            .map(|s| {
                s.table
                    .as_ref()
                    .and_then(|t| tables.get(t))
                    .map_or(0, Vec::len)
            })
            .collect();
        let rows = RowIndex::new(seats.iter().map(|s| {
            (
                s.section.as_str(),
                s.row.as_str(),
                s.number,
                s.grade.as_str(),
            )
        }));
        Self {
            rows,
            performance_id: p.performance_id,
            revision: p.revision,
            waiting_room: p.waiting_room,
            ticket_limit: i64::from(p.ticket_limit.max(0)),
            sale_opens_at_ms: p.sale_opens_at.timestamp_millis(),
            sale_closes_at_ms: p.sale_closes_at.timestamp_millis(),
            seats,
            index,
            tables,
            table_sizes,
            areas: p.areas.clone(),
            prices: p
                .prices
                .iter()
                .map(|pr| (pr.grade.clone(), pr.price_krw))
                .collect(),
            presale: p.presale.clone(),
        }
    }

    /// What the hold store needs of it.
    pub fn inventory(&self) -> StoreInventory {
        StoreInventory {
            performance_id: self.performance_id,
            revision: self.revision,
            seat_ids: self.seats.iter().map(|s| s.seat_id.clone()).collect(),
            areas: self
                .areas
                .iter()
                .map(|a| (a.area_id.clone(), i64::from(a.capacity.max(0))))
                .collect(),
            ticket_limit: self.ticket_limit,
            sale_opens_at_ms: self.sale_opens_at_ms,
            sale_closes_at_ms: self.sale_closes_at_ms,
        }
    }

    /// Whether holds are allowed at `now_ms` (the API's early answer; the store decides).
    pub fn on_sale(&self, now_ms: i64) -> bool {
        (self.sale_opens_at_ms..self.sale_closes_at_ms).contains(&now_ms)
    }

    /// The seat with this id.
    pub fn seat(&self, id: &str) -> Option<&SeatSpec> {
        self.index.get(id).and_then(|&i| self.seats.get(i))
    }

    /// Whether `seat_ids` may be held together: whole tables, companions with their wheelchair
    /// seat (every id a seat of the layout).
    pub fn groups_ok(&self, seat_ids: &[String]) -> Result<(), GroupRefusal> {
        groups::check(
            seat_ids,
            |id| {
                self.seat(id).map_or_else(Grouping::default, |s| Grouping {
                    table: s.table.as_deref(),
                    companion_of: s.companion_of.as_deref(),
                })
            },
            |t| self.tables.get(t).map_or(&[], Vec::as_slice),
        )
    }

    /// The area with this id.
    pub fn area(&self, id: &str) -> Option<&AreaSpec> {
        self.areas.iter().find(|a| a.area_id == id)
    }

    /// Price of one ticket of `grade` (0 when the catalog gave none).
    pub fn price(&self, grade: &str) -> i64 {
        self.prices.get(grade).copied().unwrap_or(0)
    }
}
