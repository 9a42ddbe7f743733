//! The expiry sweeper: releases lapsed holds one at a time, each through the store's atomic
//! release path (the same as a buyer's release), as soon as it lapses. Every replica sweeps; the
//! scripts make sure each hold ends once. The pause between sweeps is jittered, so seats come
//! back when their holds lapse, not on a schedule a bot could learn.

use std::{sync::Arc, time::Duration};

use contracts::events::{HoldEndReason, HoldEnded};
use rand::Rng;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{events::Outbox, map::registry::SeatMaps, store::HoldStore};

/// Starts the sweeper; `interval_ms` is the mean pause between sweeps.
pub fn spawn(
    maps: SeatMaps,
    store: Arc<dyn HoldStore>,
    outbox: Outbox,
    interval_ms: u64,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for perf in maps.ids() {
                sweep(&maps, store.as_ref(), &outbox, perf).await;
            }
            let pause = {
                let mut rng = rand::rng();
                interval_ms / 2 + rng.random_range(0..=interval_ms.max(1))
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(pause)) => {}
            }
        }
    })
}

/// Expires the lapsed holds of one performance, one per store call.
async fn sweep(maps: &SeatMaps, store: &dyn HoldStore, outbox: &Outbox, perf: uuid::Uuid) {
    loop {
        let now = chrono::Utc::now().timestamp_millis();
        match store.expire_next(perf, now).await {
            Ok(Some((hold, change))) => {
                maps.apply(perf, &change);
                metrics::counter!("boxoffice_holds_ended_total", "reason" => "expired")
                    .increment(1);
                outbox
                    .emit(&HoldEnded {
                        hold_id: hold.hold_id,
                        performance_id: perf,
                        seat_ids: hold.seat_ids,
                        reason: HoldEndReason::Expired,
                    })
                    .await;
            }
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(performance_id = %perf, error = %e, "expiry sweep failed");
                return;
            }
        }
    }
}
