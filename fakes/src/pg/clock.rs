//! The sandbox PG's clock: the system time plus an offset that tests (and the sandbox's
//! `POST /v1/sandbox/clock`) move forward, so the confirm window and the idempotency keys'
//! lifetime can be crossed without waiting.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use chrono::{DateTime, Utc};

/// A clock that can be moved forward. Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The PG's current time.
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: std::time::Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_add(ms))
            })
            .ok();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_move_together() {
        let a = Clock::new();
        let b = a.clone();
        let before = a.now();
        b.advance(std::time::Duration::from_secs(600));
        assert!(a.now() - before >= chrono::Duration::seconds(600));
    }
}
