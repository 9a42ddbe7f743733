//! What the service consumes: `order.created` once (a redelivery or a republication with other
//! figures changes nothing), nonsense dead-lettered, `order.cancelled` closing the order.

use contracts::{Event, events::OrderCreated};
use uuid::Uuid;

use crate::helpers::{spawn, until};

#[tokio::test]
async fn an_order_is_learned_once_and_nonsense_is_dead_lettered() {
    let app = spawn().await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 50_000).await;
    // Republished with another amount and buyer (a bug or a forgery upstream): the first stands.
    let other = OrderCreated {
        order_id: order,
        buyer_id: Uuid::now_v7(),
        hold_id: Uuid::now_v7(),
        performance_id: Uuid::now_v7(),
        amount_krw: 1,
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(10),
    };
    let again = app.publish(&other).await;
    // And delivered twice by the transport.
    app.infra
        .bus
        .publish(OrderCreated::TOPIC, &again)
        .await
        .unwrap();
    // A free order is refused for good.
    let free = app
        .publish(&OrderCreated {
            order_id: Uuid::now_v7(),
            amount_krw: 0,
            ..other.clone()
        })
        .await;
    let pool = app.pool.clone();
    until("the free order to be dead-lettered", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM bus_dead_letters WHERE event_id = $1",
            )
            .bind(free.id)
            .fetch_one(&pool)
            .await
            .unwrap()
                == 1
        }
    })
    .await;
    until("the republication to be handled", || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM bus_inbox WHERE event_id = $1")
                .bind(again.id)
                .fetch_one(&pool)
                .await
                .unwrap()
                == 1
        }
    })
    .await;
    let (amount, owner): (i64, Uuid) =
        sqlx::query_as("SELECT amount_krw, buyer_id FROM orders WHERE order_id = $1")
            .bind(order)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((amount, owner), (50_000, buyer));
    // The buyer pays the real amount; the republication's 1 KRW is refused.
    let key = app.checkout(order, 50_000).await;
    assert_eq!(
        app.confirm(buyer, "k", &key, order, 1).await.body["code"],
        "amount_mismatch"
    );
    assert_eq!(
        app.confirm(buyer, "k2", &key, order, 50_000).await.status,
        200
    );
}
