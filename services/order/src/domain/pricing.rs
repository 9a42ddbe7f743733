//! What an order costs: the hold's ticket prices (the seat service prices each seat and place by
//! its grade) plus a booking fee per ticket (예매수수료, `order.booking_fee_krw`, shown apart:
//! refunded only when the order is cancelled on its booking day).

use serde::Serialize;

/// An order's price, in integer KRW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Price {
    /// The tickets, at their grades' prices.
    pub tickets_krw: i64,
    /// The booking fee, per ticket times tickets.
    pub booking_fee_krw: i64,
    /// What the buyer pays: both.
    pub total_krw: i64,
    /// How many tickets (seats and general-admission places).
    pub tickets: i64,
}

/// Why an order cannot be priced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// A hold with nothing in it, or negative amounts.
    #[error("the hold has no tickets to price")]
    Empty,
    /// Amounts past what KRW arithmetic here holds.
    #[error("the amount overflows")]
    Overflow,
}

/// Prices `tickets` tickets whose grades cost `tickets_krw` together, with `fee_per_ticket`.
pub fn price(tickets_krw: i64, tickets: i64, fee_per_ticket: i64) -> Result<Price, PriceError> {
    if tickets <= 0 || tickets_krw < 0 || fee_per_ticket < 0 {
        return Err(PriceError::Empty);
    }
    let booking_fee_krw = fee_per_ticket
        .checked_mul(tickets)
        .ok_or(PriceError::Overflow)?;
    let total_krw = tickets_krw
        .checked_add(booking_fee_krw)
        .ok_or(PriceError::Overflow)?;
    if total_krw <= 0 {
        return Err(PriceError::Empty);
    }
    Ok(Price {
        tickets_krw,
        booking_fee_krw,
        total_krw,
        tickets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fee_is_per_ticket_and_shown_apart() {
        let p = price(300_000, 2, 2_000);
        assert_eq!(
            p,
            Ok(Price {
                tickets_krw: 300_000,
                booking_fee_krw: 4_000,
                total_krw: 304_000,
                tickets: 2
            })
        );
        assert_eq!(price(0, 0, 2_000), Err(PriceError::Empty));
        assert_eq!(price(0, 1, 0), Err(PriceError::Empty));
        assert_eq!(price(i64::MAX, 1, 1), Err(PriceError::Overflow));
    }
}
