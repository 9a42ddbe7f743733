//! The payment ledger: append-only, and it replays to every payment's live state.

use fakes::pg::{Fault, Operation};
use uuid::Uuid;

use crate::helpers::spawn;

#[tokio::test]
async fn the_ledger_replays_to_every_payments_live_state_and_cannot_be_rewritten() {
    let app = spawn().await;
    // Approved; approved then refunded in part and in full; declined; unknown then reconciled.
    let (_, approved, _) = app.paid(10_000).await;
    let (_, refunded, _) = app.paid(20_000).await;
    let part = app.request_refund(refunded, Some(5_000)).await;
    app.wait_refund(part, "done").await;
    let rest = app.request_refund(refunded, None).await;
    app.wait_refund(rest, "done").await;
    let buyer = Uuid::now_v7();
    let declined = app.order(buyer, 30_000).await;
    let key = app.checkout(declined, 30_000).await;
    app.fault(Fault::Decline, Operation::Confirm, declined);
    assert_eq!(
        app.confirm(buyer, "k1", &key, declined, 30_000)
            .await
            .status,
        402
    );
    let lost = app.order(buyer, 40_000).await;
    let key = app.checkout(lost, 40_000).await;
    app.fault(Fault::TimeoutAfterApply, Operation::Confirm, lost);
    assert_eq!(
        app.confirm(buyer, "k2", &key, lost, 40_000).await.status,
        202
    );
    app.wait_status(lost, "approved").await;

    let entries = payment::store::ledger(&app.pool).await.unwrap();
    let rebuilt = payment::domain::replay(entries.iter().map(|(s, o, e)| (*s, *o, e))).unwrap();
    let live = payment::store::payments(&app.pool).await.unwrap();
    assert_eq!(live.len(), 4);
    assert_eq!(rebuilt.len(), live.len());
    for p in &live {
        assert_eq!(rebuilt.get(&p.order_id), Some(p), "order {}", p.order_id);
    }
    let kinds = |order: Uuid| -> Vec<&'static str> {
        entries
            .iter()
            .filter(|(_, o, _)| *o == order)
            .map(|(_, _, e)| e.kind())
            .collect()
    };
    assert_eq!(kinds(approved), ["confirm_started", "approved"]);
    assert_eq!(
        kinds(refunded),
        ["confirm_started", "approved", "refunded", "refunded"]
    );
    assert_eq!(kinds(declined), ["confirm_started", "failed"]);
    assert_eq!(
        kinds(lost),
        ["confirm_started", "outcome_unknown", "approved"]
    );
    // The live row names the last entry it folded.
    let seq: i64 = sqlx::query_scalar("SELECT ledger_seq FROM payments WHERE order_id = $1")
        .bind(refunded)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let last = entries
        .iter()
        .rev()
        .find(|(_, o, _)| *o == refunded)
        .unwrap()
        .0;
    assert_eq!(seq, last);

    // Append-only: no update, no delete, no truncate.
    for sql in [
        "UPDATE payment_ledger SET status = 'approved'",
        "DELETE FROM payment_ledger",
        "TRUNCATE payment_ledger",
    ] {
        let e = sqlx::query(sql).execute(&app.pool).await.unwrap_err();
        assert!(e.to_string().contains("append-only"), "{sql}: {e}");
    }
    assert_eq!(
        payment::store::ledger(&app.pool).await.unwrap().len(),
        entries.len()
    );
}
