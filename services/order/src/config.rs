//! The service's settings (`order.*`, env `BOXOFFICE_ORDER__...`).

use serde::Deserialize;

use crate::domain::policy::CancellationPolicy;

/// The ticket key used when none is configured: fine for a laptop, refused nowhere, warned
/// about at start outside standalone. Set `order.ticket_key` in production.
pub const DEV_TICKET_KEY: &str = "boxoffice-dev-ticket-key-not-for-production";

/// Settings (`order.*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Booking fee per ticket, KRW (env `BOXOFFICE_ORDER__BOOKING_FEE_KRW`; default 2,000): added
    /// to the hold's ticket prices and shown apart; refunded only on the booking day.
    pub booking_fee_krw: i64,
    /// How long a buyer has to pay, ms (env `BOXOFFICE_ORDER__PAYMENT_WINDOW_MS`; default 15
    /// minutes). Cut shorter when the seat service's checkout deadline comes sooner.
    pub payment_window_ms: u64,
    /// How long before the seat checkout deadline the payment window ends at the latest, ms
    /// (env `BOXOFFICE_ORDER__CHECKOUT_MARGIN_MS`; default 2 minutes): time to confirm the sale.
    pub checkout_margin_ms: u64,
    /// Longest wait for one seat-service call, ms (env `BOXOFFICE_ORDER__SEAT_TIMEOUT_MS`).
    pub seat_timeout_ms: u64,
    /// Attempts at the seat checkout (it is idempotent) before answering 503 (env
    /// `BOXOFFICE_ORDER__SEAT_ATTEMPTS`).
    pub seat_attempts: u32,
    /// Pause between sweeps for lapsed and stuck orders, ms (env
    /// `BOXOFFICE_ORDER__SWEEP_INTERVAL_MS`).
    pub sweep_interval_ms: u64,
    /// How long an order may sit `paid` or `refunding` before the sweeper drives it on again, ms
    /// (env `BOXOFFICE_ORDER__STUCK_AFTER_MS`).
    pub stuck_after_ms: u64,
    /// The key ticket codes derive from (env `BOXOFFICE_ORDER__TICKET_KEY`; see
    /// [`crate::domain::code`]).
    pub ticket_key: String,
    /// The PG's client key the browser's checkout needs (env `BOXOFFICE_ORDER__PG_CLIENT_KEY`);
    /// shown in an order's `payment`.
    pub pg_client_key: Option<String>,
    /// The default cancellation schedule (`order.cancellation.*`), frozen onto each order.
    pub cancellation: CancellationPolicy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            booking_fee_krw: 2_000,
            payment_window_ms: 900_000,
            checkout_margin_ms: 120_000,
            seat_timeout_ms: 3_000,
            seat_attempts: 3,
            sweep_interval_ms: 500,
            stuck_after_ms: 30_000,
            ticket_key: DEV_TICKET_KEY.to_owned(),
            pg_client_key: None,
            cancellation: CancellationPolicy::default(),
        }
    }
}
