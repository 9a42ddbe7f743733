//! The invariant checker, reusable by tests and the load simulation: reads OrderDB, SeatDB and
//! PayDB and reports every breach of
//! 1. no seat in two confirmed orders (OrderDB, and SeatDB's sales agree with the orders);
//! 2. every approved payment has a confirmed order or a refund;
//! 3. no order left non-final past its deadline (a grace for the sweeper).

use sqlx::PgPool;

/// What the checker found wrong, for people.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Each breach.
    pub breaches: Vec<String>,
}

impl Report {
    /// Whether everything holds.
    pub fn ok(&self) -> bool {
        self.breaches.is_empty()
    }
}

/// Checks the three invariants; `grace_secs` is how long past a deadline an order may still be
/// on its way to a final state (the sweeper's interval, the bus's latency).
pub async fn check(
    orders: &PgPool,
    seats: &PgPool,
    payments: &PgPool,
    grace_secs: i64,
) -> Result<Report, sqlx::Error> {
    let mut report = Report::default();
    // 1. A seat of a performance in two live (confirmed or being confirmed) orders.
    let doubles: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(
        "SELECT performance_id, seat, count(*) FROM orders, jsonb_array_elements_text(seat_ids) AS seat \
         WHERE status IN ('paid', 'confirmed') GROUP BY performance_id, seat HAVING count(*) > 1",
    )
    .fetch_all(orders)
    .await?;
    for (perf, seat, n) in doubles {
        report
            .breaches
            .push(format!("seat {seat} of {perf} in {n} confirmed orders"));
    }
    // ...and SeatDB sells a seat only to a confirmed order that names it.
    let sold: Vec<(uuid::Uuid, uuid::Uuid, String)> =
        sqlx::query_as("SELECT order_id, performance_id, seat_id FROM sold_seats")
            .fetch_all(seats)
            .await?;
    for (order_id, perf, seat) in sold {
        let ok: Option<bool> = sqlx::query_scalar(
            "SELECT status = 'confirmed' AND seat_ids ? $3 FROM orders WHERE order_id = $1 AND performance_id = $2",
        )
        .bind(order_id)
        .bind(perf)
        .bind(&seat)
        .fetch_optional(orders)
        .await?;
        if ok != Some(true) {
            report.breaches.push(format!(
                "seat {seat} of {perf} sold to order {order_id}, which is not confirmed with it"
            ));
        }
    }
    // 2. Approved payments.
    let approved: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(
        "SELECT order_id, status, refunded_krw FROM payments WHERE status IN ('approved', 'partially_refunded', 'refunded')",
    )
    .fetch_all(payments)
    .await?;
    for (order_id, pay_status, refunded) in approved {
        let status: Option<(String, Option<uuid::Uuid>)> =
            sqlx::query_as("SELECT status, refund_id FROM orders WHERE order_id = $1")
                .bind(order_id)
                .fetch_optional(orders)
                .await?;
        let fine = match &status {
            Some((s, _)) if s == "confirmed" => true,
            Some((_, Some(_))) => true, // a refund was asked for
            _ => pay_status == "refunded" || refunded > 0,
        };
        if !fine {
            report.breaches.push(format!(
                "payment of order {order_id} is {pay_status} but the order is {:?} with no refund",
                status.map(|s| s.0)
            ));
        }
    }
    // 3. Non-final orders past their deadline.
    let late: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "SELECT order_id, status FROM orders WHERE \
         (status = 'pending_payment' AND expires_at < now() - make_interval(secs => $1)) \
         OR (status IN ('paid', 'refunding') AND updated_at < now() - make_interval(secs => $1) \
             AND hold_expires_at < now())",
    )
    .bind(grace_secs as f64)
    .fetch_all(orders)
    .await?;
    for (order_id, status) in late {
        report
            .breaches
            .push(format!("order {order_id} still {status} past its deadline"));
    }
    Ok(report)
}
