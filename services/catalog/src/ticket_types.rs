//! Ticket types (권종) of an event: a price per (grade, type) besides each grade's standard type
//! (`adult`, the price tier). Checked against the event's tiers, stored in `ticket_type_prices`
//! and published with each grade's [`PriceSpec`].

use std::collections::{BTreeMap, HashSet};

use contracts::{
    events::PriceSpec,
    tickets::{TicketType, TicketTypePrice},
};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::validate::{MAX_GRADES, MAX_PRICE_KRW, Problems},
    model::PriceTier,
};

/// Most (grade, type) prices an event lists: every non-standard type of every grade.
pub const MAX_TYPE_PRICES: usize = MAX_GRADES * 5;

/// The price of one ticket type of one grade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TicketPrice {
    /// Grade code (one of the event's price tiers).
    pub grade: String,
    /// Ticket type code: `adult` (the standard, the tier's price), `youth`, `child`, `senior`,
    /// `disabled`, `national_merit`.
    pub ticket_type: String,
    /// Price per ticket, whole KRW.
    pub price_krw: i64,
    /// Whether the gate checks the holder's proof of the type.
    #[sqlx(skip)]
    #[serde(default)]
    pub proof_required: bool,
}

/// A (grade, type) price as sent.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPriceInput {
    /// Grade code of one of the event's price tiers.
    #[schema(value_type = String, required = true)]
    pub grade: Option<String>,
    /// `youth`, `child`, `senior`, `disabled` or `national_merit` (`adult` is the tier's price).
    #[schema(value_type = String, required = true)]
    pub ticket_type: Option<String>,
    /// Price per ticket, whole KRW, 0–10000000.
    #[schema(value_type = i64, required = true, minimum = 0, maximum = 10_000_000)]
    pub price_krw: Option<i64>,
}

/// Checks `input` against the event's `tiers`: known non-standard types, grades the event
/// prices, each pair once, prices in bounds. Returns what to store.
pub fn check(
    p: &mut Problems,
    input: &[TicketPriceInput],
    tiers: &[PriceTier],
) -> Vec<TicketPrice> {
    if input.len() > MAX_TYPE_PRICES {
        p.add(
            "ticket_prices",
            format!("must list at most {MAX_TYPE_PRICES} prices"),
        );
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, t) in input.iter().enumerate() {
        let f = format!("ticket_prices[{i}]");
        let grade = match &t.grade {
            None => {
                p.add(format!("{f}.grade"), "is required");
                None
            }
            Some(g) if !tiers.iter().any(|tier| &tier.grade == g) => {
                p.add(
                    format!("{f}.grade"),
                    "is not a grade the event has a price tier for",
                );
                None
            }
            Some(g) => Some(g.clone()),
        };
        let kind = match t.ticket_type.as_deref().map(|c| (c, TicketType::parse(c))) {
            None => {
                p.add(format!("{f}.ticket_type"), "is required");
                None
            }
            Some((_, Some(TicketType::Adult))) => {
                p.add(
                    format!("{f}.ticket_type"),
                    "`adult` is the standard type: its price is the grade's price tier",
                );
                None
            }
            Some((_, Some(k))) => Some(k),
            Some((c, None)) => {
                p.add(
                    format!("{f}.ticket_type"),
                    format!(
                        "`{}` is not a ticket type (youth, child, senior, disabled, national_merit)",
                        c.chars().take(40).collect::<String>()
                    ),
                );
                None
            }
        };
        let price = match t.price_krw {
            None => {
                p.add(format!("{f}.price_krw"), "is required");
                None
            }
            Some(v) if !(0..=MAX_PRICE_KRW).contains(&v) => {
                p.add(
                    format!("{f}.price_krw"),
                    format!("must be a whole number of KRW from 0 to {MAX_PRICE_KRW}"),
                );
                None
            }
            Some(v) => Some(v),
        };
        if let (Some(g), Some(k)) = (&grade, kind)
            && !seen.insert((g.clone(), k))
        {
            p.add(format!("{f}.ticket_type"), "is listed twice for this grade");
            continue;
        }
        if let (Some(grade), Some(k), Some(price_krw)) = (grade, kind, price) {
            out.push(TicketPrice {
                grade,
                ticket_type: k.code().to_owned(),
                price_krw,
                proof_required: k.proof_required(),
            });
        }
    }
    out
}

/// The event's prices of every type of every priced grade, the standard (`adult`, the tier)
/// first, in tier order; a type price of a grade without a tier is left out.
pub async fn prices(
    conn: &mut PgConnection,
    event_id: Uuid,
) -> Result<Vec<TicketPrice>, sqlx::Error> {
    let tiers = crate::store::events::tiers(conn, event_id).await?;
    let stored = stored(conn, event_id).await?;
    let mut out = Vec::new();
    for tier in &tiers {
        out.push(TicketPrice {
            grade: tier.grade.clone(),
            ticket_type: TicketType::STANDARD.code().to_owned(),
            price_krw: tier.price_krw,
            proof_required: false,
        });
        let mut of_grade: Vec<&TicketPrice> =
            stored.iter().filter(|t| t.grade == tier.grade).collect();
        of_grade.sort_by_key(|t| TicketType::parse(&t.ticket_type));
        out.extend(of_grade.into_iter().cloned());
    }
    Ok(out)
}

async fn stored(conn: &mut PgConnection, event_id: Uuid) -> Result<Vec<TicketPrice>, sqlx::Error> {
    let rows: Vec<TicketPrice> = sqlx::query_as(
        "SELECT grade, ticket_type, price_krw FROM ticket_type_prices WHERE event_id = $1
         ORDER BY grade, ticket_type",
    )
    .bind(event_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|mut t| {
            t.proof_required =
                TicketType::parse(&t.ticket_type).is_some_and(TicketType::proof_required);
            t
        })
        .collect())
}

/// Replaces the event's non-standard type prices.
pub async fn replace(
    conn: &mut PgConnection,
    event_id: Uuid,
    prices: &[TicketPrice],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ticket_type_prices WHERE event_id = $1")
        .bind(event_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO ticket_type_prices (event_id, grade, ticket_type, price_krw)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[], $4::bigint[])",
    )
    .bind(event_id)
    .bind(prices.iter().map(|t| t.grade.clone()).collect::<Vec<_>>())
    .bind(
        prices
            .iter()
            .map(|t| t.ticket_type.clone())
            .collect::<Vec<_>>(),
    )
    .bind(prices.iter().map(|t| t.price_krw).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// `prices` with each grade's non-standard type prices of the event attached (to publish).
pub async fn attach(
    conn: &mut PgConnection,
    event_id: Uuid,
    mut prices: Vec<PriceSpec>,
) -> Result<Vec<PriceSpec>, sqlx::Error> {
    let mut by_grade: BTreeMap<String, Vec<TicketTypePrice>> = BTreeMap::new();
    for t in stored(conn, event_id).await? {
        by_grade.entry(t.grade).or_default().push(TicketTypePrice {
            ticket_type: t.ticket_type,
            price_krw: t.price_krw,
        });
    }
    for p in &mut prices {
        p.ticket_types = by_grade.remove(&p.grade).unwrap_or_default();
    }
    Ok(prices)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(grade: &str) -> PriceTier {
        PriceTier {
            grade: grade.into(),
            name: grade.into(),
            price_krw: 100_000,
        }
    }

    fn input(grade: &str, kind: &str, price: i64) -> TicketPriceInput {
        TicketPriceInput {
            grade: Some(grade.into()),
            ticket_type: Some(kind.into()),
            price_krw: Some(price),
        }
    }

    #[test]
    fn a_type_is_priced_only_for_a_priced_grade_once_within_bounds() {
        let tiers = [tier("vip"), tier("r")];
        let mut p = Problems::new();
        let ok = check(
            &mut p,
            &[input("vip", "youth", 80_000), input("r", "child", 0)],
            &tiers,
        );
        assert!(p.finish().is_ok());
        assert_eq!(ok.len(), 2);
        assert!(ok[0].proof_required);
        for bad in [
            input("s", "youth", 1),
            input("vip", "adult", 1),
            input("vip", "student", 1),
            input("vip", "youth", -1),
            input("vip", "youth", MAX_PRICE_KRW + 1),
        ] {
            let mut p = Problems::new();
            assert!(check(&mut p, &[bad], &tiers).is_empty());
            assert!(p.finish().is_err());
        }
        let mut p = Problems::new();
        check(
            &mut p,
            &[input("vip", "youth", 1), input("vip", "youth", 2)],
            &tiers,
        );
        assert!(p.finish().is_err());
    }
}
