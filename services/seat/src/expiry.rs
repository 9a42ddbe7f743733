//! The expiry sweeper: releases lapsed holds one at a time, each through the store's atomic
//! release path (the same as a buyer's release), as soon as it lapses — a hold in checkout only
//! at its checkout deadline. Every replica sweeps; the scripts make sure each hold ends once.
//! The pause between sweeps is jittered, so seats come back when their holds lapse, not on a
//! schedule a bot could learn. One sweep is [`HoldService::sweep_all`].

use std::time::Duration;

use rand::Rng;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::holds::HoldService;

/// Starts the sweeper; `interval_ms` is the mean pause between sweeps.
pub fn spawn(holds: HoldService, interval_ms: u64, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            holds.sweep_all().await;
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
