//! Seats held back per performance: season-ticket, club, media and obstructed-view seats the
//! organizer withholds from sale without editing the venue, and releases later. Each is one
//! hold-store step that checks and sets every seat (all or nothing, against buyers' holds and
//! sales), recorded in SeatDB (`withheld_seats`) in the same transaction path as a sale: the rows
//! are written, the store changes, then the transaction commits — so a store that loses its state
//! is rebuilt with them ([`crate::map::registry::SeatMaps::install`]).

use sqlx::PgPool;
use uuid::Uuid;

use super::HoldService;
use crate::{db, domain::Change, store::StoreError};

/// Why a seat is withheld (stable codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WithholdReason {
    /// Season-ticket holders' seats.
    SeasonTicket,
    /// The club's own seats.
    Club,
    /// Press and broadcast.
    Media,
    /// The view is obstructed.
    Obstructed,
    /// Anything else.
    Other,
}

impl WithholdReason {
    /// Every reason, in the order the API lists them.
    pub const ALL: [Self; 5] = [
        Self::SeasonTicket,
        Self::Club,
        Self::Media,
        Self::Obstructed,
        Self::Other,
    ];

    /// The stable code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SeasonTicket => "season_ticket",
            Self::Club => "club",
            Self::Media => "media",
            Self::Obstructed => "obstructed",
            Self::Other => "other",
        }
    }

    /// The reason a code names.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

/// Why withholding or releasing failed.
#[derive(Debug, thiserror::Error)]
pub enum WithholdError {
    /// SeatDB failed: nothing changed (or the store change was undone).
    #[error("seat database: {0}")]
    Db(#[from] sqlx::Error),
    /// The store refused (seats held or sold: [`StoreError::Unavailable`]) or failed.
    #[error(transparent)]
    Store(StoreError),
}

fn count(result: &'static str, n: usize) {
    metrics::counter!("boxoffice_seat_withheld_total", "result" => result).increment(n as u64);
}

impl HoldService {
    /// Withholds `seat_ids` of `perf` from sale for `reason`, all or none: refused with
    /// [`StoreError::Unavailable`] (nothing changed) when one is held, sold or unknown. Seats
    /// withheld already take the new reason.
    pub async fn withhold(
        &self,
        pool: &PgPool,
        perf: Uuid,
        seat_ids: &[String],
        reason: WithholdReason,
        by: Uuid,
    ) -> Result<Change, WithholdError> {
        let mut tx = pool.begin().await?;
        db::lock_withheld(&mut tx, perf).await?;
        db::record_withheld(&mut tx, perf, seat_ids, reason.as_str(), by).await?;
        let change = match self
            .recovering(perf, || self.store.withhold(perf, seat_ids))
            .await
        {
            Ok(change) => change,
            Err(e) => {
                count("refused", 1);
                return Err(WithholdError::Store(e)); // the rows roll back with `tx`
            }
        };
        self.maps.apply(perf, &change);
        if let Err(e) = tx.commit().await {
            // SeatDB has no record of them: the seats this call withheld go back on sale.
            let newly: Vec<String> = change.seats.iter().map(|(s, _)| s.clone()).collect();
            self.undo(perf, &newly, false).await;
            return Err(e.into());
        }
        count("withheld", change.seats.len());
        Ok(change)
    }

    /// Puts `seat_ids` of `perf` back on sale (those withheld; others are left as they are),
    /// in one store step.
    pub async fn release_withheld(
        &self,
        pool: &PgPool,
        perf: Uuid,
        seat_ids: &[String],
    ) -> Result<Change, WithholdError> {
        let mut tx = pool.begin().await?;
        db::lock_withheld(&mut tx, perf).await?;
        db::remove_withheld(&mut tx, perf, seat_ids).await?;
        let change = self
            .recovering(perf, || self.store.unwithhold(perf, seat_ids))
            .await
            .map_err(WithholdError::Store)?;
        self.maps.apply(perf, &change);
        if let Err(e) = tx.commit().await {
            // SeatDB still has them withheld: so does the store again.
            let freed: Vec<String> = change.seats.iter().map(|(s, _)| s.clone()).collect();
            self.undo(perf, &freed, true).await;
            return Err(e.into());
        }
        count("released", change.seats.len());
        Ok(change)
    }

    /// Undoes a store change whose SeatDB transaction failed to commit: withholds `seats` again
    /// (`rewithhold`) or releases them. A seat a buyer took meanwhile stays theirs (withholding
    /// refuses it), and the maintenance pass reports what still differs.
    async fn undo(&self, perf: Uuid, seats: &[String], rewithhold: bool) {
        if seats.is_empty() {
            return;
        }
        let undone = if rewithhold {
            self.store.withhold(perf, seats).await
        } else {
            self.store.unwithhold(perf, seats).await
        };
        match undone {
            Ok(change) => self.maps.apply(perf, &change),
            Err(e) => tracing::error!(performance_id = %perf, error = %e, rewithhold,
                "could not undo a withholding change SeatDB did not commit"),
        }
    }
}
