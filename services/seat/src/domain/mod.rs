//! Seat rules without I/O: seat states, the change records every replica applies in version
//! order, best-available selection, and the seats sold together (tables, companion seats).

use serde::{Deserialize, Deserializer, Serialize};

pub mod best_available;
pub mod groups;

/// Where a seat stands for buyers.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SeatStatus {
    /// On sale.
    Available,
    /// In someone's hold.
    Held,
    /// Bought.
    Sold,
    /// Held back from sale by the organizer (season tickets, club, media, obstructed view):
    /// no buyer can hold it until it is released. Buyers see it as [`SeatStatus::Sold`]
    /// ([`SeatStatus::shown`]): the public map and its clients know three states, and why a
    /// seat is not for sale is the organizer's business.
    Withheld,
}

impl SeatStatus {
    /// The status buyers see: a withheld seat shows as sold (not for sale), every other as is.
    pub fn shown(self) -> Self {
        match self {
            Self::Withheld => Self::Sold,
            other => other,
        }
    }

    /// One letter for the compact encoding: `a`, `h` or `s` (of [`SeatStatus::shown`]).
    pub fn letter(self) -> char {
        match self.shown() {
            Self::Available => 'a',
            Self::Held => 'h',
            Self::Sold | Self::Withheld => 's',
        }
    }
}

/// Counts of one general-admission area after a change: `[area_id, capacity, held, sold]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AreaCount(pub String, pub i64, pub i64, pub i64);

impl AreaCount {
    /// Places still on sale.
    pub fn available(&self) -> i64 {
        (self.1 - self.2 - self.3).max(0)
    }
}

/// One versioned change of a performance's inventory, as the hold store records it. Applying the
/// changes of a performance in version order rebuilds its seat map exactly. Versions count within
/// an epoch: a store that lost the performance (flushed, restarted empty) installs it again in a
/// new epoch, from version 1, so a reader never applies a change to a state that no longer exists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The performance's version after this change (1, 2, 3, ... without gaps).
    #[serde(rename = "v")]
    pub version: u64,
    /// Seats whose status changed, with their new status.
    #[serde(rename = "s", default, deserialize_with = "seq_or_empty")]
    pub seats: Vec<(String, SeatStatus)>,
    /// Areas whose counts changed, with their new counts.
    #[serde(rename = "a", default, deserialize_with = "seq_or_empty")]
    pub areas: Vec<AreaCount>,
    /// The inventory itself changed (a re-publication): readers reload it.
    #[serde(rename = "r", default)]
    pub reload: bool,
    /// The store's epoch of the performance this change belongs to (see [`Change`]).
    #[serde(rename = "e", default)]
    pub epoch: String,
}

/// Reads a JSON array, or `{}` as an empty one (Lua's cjson encodes an empty table as `{}`).
pub fn seq_or_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SeqOrMap<T> {
        Seq(Vec<T>),
        Map(serde_json::Map<String, serde_json::Value>),
    }
    match SeqOrMap::<T>::deserialize(d)? {
        SeqOrMap::Seq(v) => Ok(v),
        SeqOrMap::Map(m) if m.is_empty() => Ok(Vec::new()),
        SeqOrMap::Map(_) => Err(serde::de::Error::custom("expected an array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_reads_lua_empty_tables() {
        let c: Change = serde_json::from_str(r#"{"v":3,"s":{},"a":{}}"#).unwrap();
        assert_eq!(c.version, 3);
        assert!(c.seats.is_empty() && c.areas.is_empty() && !c.reload);
        let c: Change =
            serde_json::from_str(r#"{"v":4,"s":[["A-1","held"]],"a":[["GA",10,2,1]],"r":true}"#)
                .unwrap();
        assert_eq!(c.seats[0].1, SeatStatus::Held);
        assert_eq!(c.areas[0].available(), 7);
    }
}
