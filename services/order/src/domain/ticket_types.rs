//! Ticket types on an order (권종): which type each seat and general-admission place is sold
//! as, and at what price. A seat or place the buyer names no type for is the standard type
//! (`adult`) at the grade's price, as the seat service priced the hold; another type costs what
//! the catalog published for the (grade, type), and a type the grade is not sold as is refused.

use std::collections::{BTreeMap, HashSet};

use contracts::{events::PriceSpec, tickets::TicketType};
use serde::{Deserialize, Serialize};

/// A seat or places of an order, sold as one ticket type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OrderLine {
    /// The seat, for a reserved seat.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seat_id: Option<String>,
    /// The area, for general-admission places.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area_id: Option<String>,
    /// How many tickets (1 for a seat).
    pub quantity: i64,
    /// The grade.
    pub grade: String,
    /// The ticket type code.
    pub ticket_type: String,
    /// Price per ticket, KRW.
    pub unit_krw: i64,
    /// Whether the gate checks proof of the type.
    pub proof_required: bool,
}

/// What the buyer asked for one seat or some places.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketChoice {
    /// A seat of the hold.
    #[serde(default)]
    pub seat_id: Option<String>,
    /// An area of the hold.
    #[serde(default)]
    pub area_id: Option<String>,
    /// For an area: how many of its places (default 1).
    #[serde(default)]
    pub quantity: Option<i64>,
    /// `adult`, `youth`, `child`, `senior`, `disabled` or `national_merit`.
    pub ticket_type: String,
}

/// A held seat: its grade and that grade's standard price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSeat {
    /// Seat id.
    pub seat_id: String,
    /// Grade.
    pub grade: String,
    /// The grade's standard price, KRW.
    pub price_krw: i64,
}

/// Held places of an area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldArea {
    /// Area id.
    pub area_id: String,
    /// Its grade.
    pub grade: String,
    /// How many places.
    pub quantity: i64,
}

/// Why the choice cannot be sold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    /// `tickets[index]` names no seat or area of the hold, both, or one twice / too many places.
    #[error("tickets[{index}]: {why}")]
    NotInHold {
        /// Index in `tickets`.
        index: usize,
        /// What is wrong.
        why: String,
    },
    /// The type is unknown, or not sold for the grade.
    #[error("tickets[{index}]: ticket type `{ticket_type}` is not sold for {what}")]
    Unavailable {
        /// Index in `tickets`.
        index: usize,
        /// The type asked for.
        ticket_type: String,
        /// The seat or area.
        what: String,
    },
}

/// The type codes of `choices` that are none of [`TicketType`]: checked before anything else.
pub fn unknown_type(choices: &[TicketChoice]) -> Option<(usize, String)> {
    choices
        .iter()
        .enumerate()
        .find(|(_, c)| TicketType::parse(&c.ticket_type).is_none())
        .map(|(i, c)| (i, c.ticket_type.chars().take(40).collect()))
}

fn type_price(prices: &[PriceSpec], grade: &str, standard: i64, t: TicketType) -> Option<i64> {
    if t == TicketType::STANDARD {
        return Some(standard);
    }
    prices
        .iter()
        .find(|p| p.grade == grade)
        .and_then(|p| p.price_of(t))
}

/// The lines of an order of `seats` and `areas` with `choices`; whatever they leave out is the
/// standard type (an area's at its grade's published price).
pub fn lines(
    seats: &[HeldSeat],
    areas: &[HeldArea],
    prices: &[PriceSpec],
    choices: &[TicketChoice],
) -> Result<Vec<OrderLine>, ChoiceError> {
    let mut chosen: BTreeMap<&str, TicketType> = BTreeMap::new();
    let mut area_left: BTreeMap<&str, i64> = areas
        .iter()
        .map(|a| (a.area_id.as_str(), a.quantity))
        .collect();
    let mut area_lines: Vec<OrderLine> = Vec::new();
    let mut seen = HashSet::new();
    let standard_of = |grade: &str| {
        prices
            .iter()
            .find(|p| p.grade == grade)
            .map_or(0, |p| p.price_krw)
    };
    for (index, c) in choices.iter().enumerate() {
        let not_in = |why: &str| ChoiceError::NotInHold {
            index,
            why: why.to_owned(),
        };
        let kind = TicketType::parse(&c.ticket_type).ok_or_else(|| ChoiceError::Unavailable {
            index,
            ticket_type: c.ticket_type.chars().take(40).collect(),
            what: "any grade".to_owned(),
        })?;
        match (&c.seat_id, &c.area_id) {
            (Some(seat), None) => {
                if c.quantity.is_some_and(|q| q != 1) {
                    return Err(not_in("a seat is one ticket"));
                }
                let held = seats
                    .iter()
                    .find(|s| &s.seat_id == seat)
                    .ok_or_else(|| not_in("the seat is not in the hold"))?;
                if !seen.insert(seat.clone()) {
                    return Err(not_in("the seat is listed twice"));
                }
                if type_price(prices, &held.grade, held.price_krw, kind).is_none() {
                    return Err(ChoiceError::Unavailable {
                        index,
                        ticket_type: c.ticket_type.clone(),
                        what: format!("seat `{seat}` (grade `{}`)", held.grade),
                    });
                }
                chosen.insert(held.seat_id.as_str(), kind);
            }
            (None, Some(area)) => {
                let quantity = c.quantity.unwrap_or(1);
                let held = areas
                    .iter()
                    .find(|a| &a.area_id == area)
                    .ok_or_else(|| not_in("the area is not in the hold"))?;
                let left = area_left.entry(held.area_id.as_str()).or_insert(0);
                if quantity < 1 || quantity > *left {
                    return Err(not_in("more places than the hold has left in the area"));
                }
                let standard = standard_of(&held.grade);
                let unit = type_price(prices, &held.grade, standard, kind).ok_or_else(|| {
                    ChoiceError::Unavailable {
                        index,
                        ticket_type: c.ticket_type.clone(),
                        what: format!("area `{area}` (grade `{}`)", held.grade),
                    }
                })?;
                *left -= quantity;
                area_lines.push(OrderLine {
                    seat_id: None,
                    area_id: Some(held.area_id.clone()),
                    quantity,
                    grade: held.grade.clone(),
                    ticket_type: kind.code().to_owned(),
                    unit_krw: unit,
                    proof_required: kind.proof_required(),
                });
            }
            _ => return Err(not_in("give a `seat_id` or an `area_id`")),
        }
    }
    let mut out: Vec<OrderLine> = seats
        .iter()
        .map(|s| {
            let kind = chosen
                .get(s.seat_id.as_str())
                .copied()
                .unwrap_or(TicketType::STANDARD);
            OrderLine {
                seat_id: Some(s.seat_id.clone()),
                area_id: None,
                quantity: 1,
                grade: s.grade.clone(),
                ticket_type: kind.code().to_owned(),
                unit_krw: type_price(prices, &s.grade, s.price_krw, kind).unwrap_or(s.price_krw),
                proof_required: kind.proof_required(),
            }
        })
        .collect();
    out.extend(area_lines);
    for a in areas {
        let left = area_left.get(a.area_id.as_str()).copied().unwrap_or(0);
        if left > 0 {
            out.push(OrderLine {
                seat_id: None,
                area_id: Some(a.area_id.clone()),
                quantity: left,
                grade: a.grade.clone(),
                ticket_type: TicketType::STANDARD.code().to_owned(),
                unit_krw: standard_of(&a.grade),
                proof_required: false,
            });
        }
    }
    Ok(out)
}

/// What the lines cost together, KRW (`None` on overflow).
pub fn total(lines: &[OrderLine]) -> Option<i64> {
    lines.iter().try_fold(0i64, |sum, l| {
        l.unit_krw
            .checked_mul(l.quantity)
            .and_then(|x| sum.checked_add(x))
    })
}

/// The ticket type of each of an order's tickets by item (`seat id`, or `area#n` for the n-th
/// place of an area, from 1): places take their area lines' types in line order.
pub fn type_of_item(lines: &[OrderLine], item: &str) -> Option<String> {
    if let Some(l) = lines.iter().find(|l| l.seat_id.as_deref() == Some(item)) {
        return Some(l.ticket_type.clone());
    }
    let (area, n) = item.rsplit_once('#')?;
    let mut n: i64 = n.parse().ok()?;
    for l in lines.iter().filter(|l| l.area_id.as_deref() == Some(area)) {
        if n <= l.quantity {
            return Some(l.ticket_type.clone());
        }
        n -= l.quantity;
    }
    None
}

#[cfg(test)]
mod tests {
    use contracts::tickets::TicketTypePrice;

    use super::*;

    fn prices() -> Vec<PriceSpec> {
        vec![
            PriceSpec {
                grade: "vip".into(),
                name: "VIP".into(),
                price_krw: 150_000,
                ticket_types: vec![TicketTypePrice {
                    ticket_type: "youth".into(),
                    price_krw: 120_000,
                }],
            },
            PriceSpec {
                grade: "lawn".into(),
                name: "Lawn".into(),
                price_krw: 10_000,
                ticket_types: vec![TicketTypePrice {
                    ticket_type: "child".into(),
                    price_krw: 5_000,
                }],
            },
        ]
    }

    fn seat(id: &str) -> HeldSeat {
        HeldSeat {
            seat_id: id.into(),
            grade: "vip".into(),
            price_krw: 150_000,
        }
    }

    fn choice(seat: &str, t: &str) -> TicketChoice {
        TicketChoice {
            seat_id: Some(seat.into()),
            area_id: None,
            quantity: None,
            ticket_type: t.into(),
        }
    }

    #[test]
    fn one_adult_one_youth_are_priced_by_type_and_the_rest_is_standard() {
        let seats = [seat("a"), seat("b")];
        let got = lines(&seats, &[], &prices(), &[choice("b", "youth")]).unwrap();
        assert_eq!(got[0].ticket_type, "adult");
        assert_eq!(got[1].ticket_type, "youth");
        assert!(got[1].proof_required && !got[0].proof_required);
        assert_eq!(total(&got), Some(270_000));
    }

    #[test]
    fn a_type_not_sold_for_the_grade_or_a_seat_not_held_is_refused() {
        let seats = [seat("a")];
        assert!(matches!(
            lines(&seats, &[], &prices(), &[choice("a", "senior")]),
            Err(ChoiceError::Unavailable { .. })
        ));
        assert!(matches!(
            lines(&seats, &[], &prices(), &[choice("z", "youth")]),
            Err(ChoiceError::NotInHold { .. })
        ));
        assert!(matches!(
            lines(
                &seats,
                &[],
                &prices(),
                &[choice("a", "youth"), choice("a", "adult")]
            ),
            Err(ChoiceError::NotInHold { .. })
        ));
        assert_eq!(
            unknown_type(&[choice("a", "student")]),
            Some((0, "student".into()))
        );
    }

    #[test]
    fn places_take_their_types_in_line_order() {
        let areas = [HeldArea {
            area_id: "lawn".into(),
            grade: "lawn".into(),
            quantity: 3,
        }];
        let c = TicketChoice {
            seat_id: None,
            area_id: Some("lawn".into()),
            quantity: Some(2),
            ticket_type: "child".into(),
        };
        let got = lines(&[], &areas, &prices(), std::slice::from_ref(&c)).unwrap();
        assert_eq!(total(&got), Some(20_000));
        assert_eq!(type_of_item(&got, "lawn#2").as_deref(), Some("child"));
        assert_eq!(type_of_item(&got, "lawn#3").as_deref(), Some("adult"));
        let too_many = TicketChoice {
            quantity: Some(4),
            ..c
        };
        assert!(lines(&[], &areas, &prices(), &[too_many]).is_err());
    }
}
