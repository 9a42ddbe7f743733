//! Waiting rooms, kept in AdmissionDB and cached by every replica: one per published
//! performance, from `performance.published` (whether it has a waiting room, when sale opens and
//! closes), with its admission settings (rate, active cap, paused) that operators change, and its
//! draw (the seed, and once it ran, the references it ordered).

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use chrono::{DateTime, Utc};
use contracts::events::PerformancePublished;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::draw;

/// One waiting room.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Room {
    /// The performance.
    pub performance_id: Uuid,
    /// Whether a waiting room guards it (false: queue calls answer `no_waiting_room`).
    pub waiting_room: bool,
    /// When sale opens: the pre-queue is drawn then.
    pub opens_at: DateTime<Utc>,
    /// When sale closes: no more joins.
    pub closes_at: DateTime<Utc>,
    /// The publication's revision.
    pub revision: i64,
    /// The draw's seed (secret until `drawn_at`).
    pub seed: Vec<u8>,
    /// Fans admitted per second.
    pub rate_per_sec: f64,
    /// Most active buyers at once (`None`: no cap).
    pub max_active: Option<i64>,
    /// No one is admitted while paused.
    pub paused: bool,
    /// When the draw was recorded.
    pub drawn_at: Option<DateTime<Utc>>,
    /// The organizer who owns the performance's event (`None`: administrators only).
    pub organizer_id: Option<Uuid>,
    /// Automatic mode: the admitter moves `rate_per_sec` after the seat service's health.
    pub auto_rate: bool,
}

impl Room {
    /// `SHA-256(seed)` in hex: the published commitment.
    pub fn commitment(&self) -> String {
        hex::encode(draw::commitment(&self.seed))
    }

    /// Whether sale has opened at `now`.
    pub fn open_at(&self, now: DateTime<Utc>) -> bool {
        now >= self.opens_at
    }
}

const COLUMNS: &str = "performance_id, waiting_room, opens_at, closes_at, revision, seed, \
                       rate_per_sec, max_active, paused, drawn_at, organizer_id, auto_rate";

/// A change of a room's admission settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Change {
    /// Pause or resume.
    pub paused: Option<bool>,
    /// A hand-set rate (fans/s).
    pub rate_per_sec: Option<f64>,
    /// The active cap (`Some(None)` removes it).
    pub max_active: Option<Option<i64>>,
    /// Automatic mode on or off.
    pub auto_rate: Option<bool>,
}

/// The rooms, from AdmissionDB, with a cache.
#[derive(Clone)]
pub struct Rooms {
    pool: PgPool,
    cache: Arc<RwLock<HashMap<Uuid, Arc<Room>>>>,
}

/// The admission settings a new room starts with.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// Fans admitted per second.
    pub rate_per_sec: f64,
    /// Most active buyers (`None`: no cap).
    pub max_active: Option<i64>,
}

impl Rooms {
    /// The rooms of AdmissionDB `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cache: Arc::default(),
        }
    }

    /// Creates or updates the room of a publication (a newer revision only); the seed, the
    /// admission settings and the draw are kept.
    pub async fn published(
        conn: &mut PgConnection,
        p: &PerformancePublished,
        defaults: Defaults,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO rooms (performance_id, waiting_room, opens_at, closes_at, revision, seed,
                                rate_per_sec, max_active, organizer_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (performance_id) DO UPDATE
             SET waiting_room = excluded.waiting_room, organizer_id = excluded.organizer_id,
                 opens_at = CASE WHEN rooms.drawn_at IS NULL THEN excluded.opens_at
                                 ELSE rooms.opens_at END,
                 closes_at = excluded.closes_at, revision = excluded.revision, updated_at = now()
             WHERE rooms.revision < excluded.revision",
        )
        .bind(p.performance_id)
        .bind(p.waiting_room)
        .bind(p.sale_opens_at)
        .bind(p.sale_closes_at)
        .bind(p.revision)
        .bind(draw::new_seed().to_vec())
        .bind(defaults.rate_per_sec)
        .bind(defaults.max_active)
        .bind(p.organizer_id)
        .execute(conn)
        .await
        .map(drop)
    }

    /// The room of `perf`: from the cache, else from AdmissionDB (then cached).
    pub async fn get(&self, perf: Uuid) -> Result<Option<Arc<Room>>, sqlx::Error> {
        if let Some(room) = self.read().get(&perf) {
            return Ok(Some(room.clone()));
        }
        self.fetch(perf).await
    }

    /// The room of `perf` from AdmissionDB (and into the cache).
    pub async fn fetch(&self, perf: Uuid) -> Result<Option<Arc<Room>>, sqlx::Error> {
        let room: Option<Room> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rooms WHERE performance_id = $1"
        )))
        .bind(perf)
        .fetch_optional(&self.pool)
        .await?;
        Ok(room.map(|r| self.put(r)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Arc<Room>>> {
        self.cache.read().unwrap_or_else(|p| p.into_inner())
    }

    fn put(&self, room: Room) -> Arc<Room> {
        let room = Arc::new(room);
        self.cache
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(room.performance_id, room.clone());
        room
    }

    /// Rereads every waiting room whose sale has not long closed (`linger` after its close);
    /// answers them.
    pub async fn reload(&self, linger: chrono::Duration) -> Result<Vec<Arc<Room>>, sqlx::Error> {
        let rooms: Vec<Room> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM rooms WHERE waiting_room AND closes_at > $1"
        )))
        .bind(Utc::now() - linger)
        .fetch_all(&self.pool)
        .await?;
        let rooms: HashMap<Uuid, Arc<Room>> = rooms
            .into_iter()
            .map(|r| (r.performance_id, Arc::new(r)))
            .collect();
        let list = rooms.values().cloned().collect();
        *self.cache.write().unwrap_or_else(|p| p.into_inner()) = rooms;
        Ok(list)
    }

    /// Rooms whose sale closed more than `linger` ago and whose queues are not forgotten yet,
    /// marked forgotten now (their rows, with the draw, stay for checking).
    pub async fn finished(&self, linger: chrono::Duration) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE rooms SET forgotten_at = now()
             WHERE waiting_room AND closes_at <= $1 AND forgotten_at IS NULL
             RETURNING performance_id",
        )
        .bind(Utc::now() - linger)
        .fetch_all(&self.pool)
        .await
    }

    /// Changes the admission settings of `perf` (each `None` field is left as it is): answers
    /// the room, or `None` when there is none.
    pub async fn configure(
        &self,
        perf: Uuid,
        change: Change,
    ) -> Result<Option<Arc<Room>>, sqlx::Error> {
        let room: Option<Room> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE rooms SET paused = COALESCE($2, paused),
                              rate_per_sec = COALESCE($3, rate_per_sec),
                              max_active = CASE WHEN $4 THEN $5 ELSE max_active END,
                              auto_rate = COALESCE($6, auto_rate),
                              updated_at = now()
             WHERE performance_id = $1 RETURNING {COLUMNS}"
        )))
        .bind(perf)
        .bind(change.paused)
        .bind(change.rate_per_sec)
        .bind(change.max_active.is_some())
        .bind(change.max_active.flatten())
        .bind(change.auto_rate)
        .fetch_optional(&self.pool)
        .await?;
        Ok(room.map(|r| self.put(r)))
    }

    /// Sets the rate of `perf` that its automatic mode chose — only while the room is still in
    /// automatic mode, so an operator who switched to a hand-set rate a moment ago wins.
    /// Answers the room as it is now (`None`: no such room).
    pub async fn set_auto_rate(
        &self,
        perf: Uuid,
        rate_per_sec: f64,
    ) -> Result<Option<Arc<Room>>, sqlx::Error> {
        let room: Option<Room> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE rooms SET rate_per_sec = CASE WHEN auto_rate THEN $2 ELSE rate_per_sec END,
                              updated_at = now()
             WHERE performance_id = $1 RETURNING {COLUMNS}"
        )))
        .bind(perf)
        .bind(rate_per_sec)
        .fetch_optional(&self.pool)
        .await?;
        Ok(room.map(|r| self.put(r)))
    }

    /// Records the draw of `perf` with its references (ascending) unless one is recorded;
    /// answers the references recorded (these, or the earlier ones).
    pub async fn record_draw(
        &self,
        perf: Uuid,
        refs: &[draw::Digest32],
    ) -> Result<Vec<draw::Digest32>, sqlx::Error> {
        let bytes: Vec<u8> = refs.concat();
        let stored: Option<Vec<u8>> = sqlx::query_scalar(
            "WITH done AS (
                 UPDATE rooms SET drawn_at = now(), draw_refs = $2, updated_at = now()
                 WHERE performance_id = $1 AND drawn_at IS NULL RETURNING draw_refs)
             SELECT draw_refs FROM done
             UNION ALL SELECT draw_refs FROM rooms WHERE performance_id = $1
             LIMIT 1",
        )
        .bind(perf)
        .bind(bytes)
        .fetch_optional(&self.pool)
        .await?
        .flatten();
        let _ = self.fetch(perf).await?;
        Ok(split_refs(&stored.unwrap_or_default()))
    }

    /// The references the draw of `perf` ordered (ascending), once it ran.
    pub async fn draw_refs(&self, perf: Uuid) -> Result<Option<Vec<draw::Digest32>>, sqlx::Error> {
        let stored: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT draw_refs FROM rooms WHERE performance_id = $1")
                .bind(perf)
                .fetch_optional(&self.pool)
                .await?;
        Ok(stored.flatten().map(|b| split_refs(&b)))
    }
}

fn split_refs(bytes: &[u8]) -> Vec<draw::Digest32> {
    bytes
        .chunks_exact(32)
        .filter_map(|c| c.try_into().ok())
        .collect()
}
