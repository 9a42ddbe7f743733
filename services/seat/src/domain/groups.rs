//! Seats sold together: a table (테이블석) is held whole or not at all, and a companion seat
//! (동반석) only with the wheelchair seat it accompanies (the wheelchair seat alone is fine).
//!
//! The rule looks at the set of seats one hold asks for and at the layout, never at seat
//! states: a hold is placed all or nothing in one atomic store step, so a set that passes gives
//! the buyer whole tables and paired companions or nothing, whoever else is holding at the same
//! moment, and two buyers asking for the halves of one table are both refused before the store.

use std::collections::HashSet;

/// Why a set of seats cannot be held as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRefusal {
    /// Part of a table: `missing` are its seats the set lacks.
    TableSoldWhole {
        /// The table's id.
        table: String,
        /// Its seats not asked for, by id.
        missing: Vec<String>,
    },
    /// A companion seat without its wheelchair seat.
    CompanionRequiresWheelchair {
        /// The companion seat.
        seat_id: String,
        /// The wheelchair seat it goes with.
        wheelchair_seat_id: String,
    },
}

/// What the rule needs to know of a seat.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grouping<'a> {
    /// Its table's id, for a table seat.
    pub table: Option<&'a str>,
    /// For a companion seat, its wheelchair seat's id.
    pub companion_of: Option<&'a str>,
}

/// Checks the seats of one hold: `seat(id)` tells a seat's grouping, `table_seats(table)` every
/// seat of a table. The first refusal in the order of `asked`.
pub fn check<'a>(
    asked: &[String],
    seat: impl Fn(&str) -> Grouping<'a>,
    table_seats: impl Fn(&str) -> &'a [String],
) -> Result<(), GroupRefusal> {
    let set: HashSet<&str> = asked.iter().map(String::as_str).collect();
    for id in asked {
        let g = seat(id);
        if let Some(table) = g.table {
            let missing: Vec<String> = table_seats(table)
                .iter()
                .filter(|s| !set.contains(s.as_str()))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(GroupRefusal::TableSoldWhole {
                    table: table.to_owned(),
                    missing,
                });
            }
        }
        if let Some(chair) = g.companion_of
            && !set.contains(chair)
        {
            return Err(GroupRefusal::CompanionRequiresWheelchair {
                seat_id: id.clone(),
                wheelchair_seat_id: chair.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A row: table `t1` = 1–4, wheelchair seat 5 with companion 6, plain seat 7.
    fn check_ids(ids: &[&str]) -> Result<(), GroupRefusal> {
        let table: Vec<String> = (1..=4).map(|n| n.to_string()).collect();
        let tables: HashMap<&str, &[String]> = HashMap::from([("t1", table.as_slice())]);
        let asked: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
        check(
            &asked,
            |id| match id.parse::<i32>() {
                Ok(1..=4) => Grouping {
                    table: Some("t1"),
                    companion_of: None,
                },
                Ok(6) => Grouping {
                    table: None,
                    companion_of: Some("5"),
                },
                _ => Grouping::default(),
            },
            |t| tables.get(t).copied().unwrap_or_default(),
        )
    }

    #[test]
    fn tables_go_whole_and_companions_with_their_wheelchair_seat() {
        assert_eq!(check_ids(&["4", "2", "3", "1"]), Ok(()));
        assert_eq!(check_ids(&["1", "2", "3", "4", "7"]), Ok(()));
        assert_eq!(
            check_ids(&["7", "3", "1"]),
            Err(GroupRefusal::TableSoldWhole {
                table: "t1".into(),
                missing: vec!["2".into(), "4".into()],
            })
        );
        assert_eq!(check_ids(&["5"]), Ok(()), "the wheelchair seat alone");
        assert_eq!(check_ids(&["6", "5"]), Ok(()));
        assert_eq!(
            check_ids(&["7", "6"]),
            Err(GroupRefusal::CompanionRequiresWheelchair {
                seat_id: "6".into(),
                wheelchair_seat_id: "5".into(),
            })
        );
    }
}
