//! The read path: every replica keeps each performance's seat map in memory — seat states, area
//! counts and a version — applying the hold store's changes strictly in version order. Recent
//! changes stay in a ring buffer (SSE resume). Live subscribers get them over a broadcast channel
//! in batches: every flush (a few times a second) sends one delta covering the versions since the
//! last, rendered once for all subscribers, so thousands of open streams cost thousands of events
//! per flush, not per change. Rendered bodies are cached per version, so a read never touches a
//! database.

use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard},
    time::Duration,
};

use axum::body::Bytes;
use tokio::sync::broadcast;

use crate::{
    domain::{AreaCount, Change, SeatStatus},
    store::Snapshot,
};

pub mod layout;
pub mod registry;
pub mod render;

pub use layout::Layout;

/// Changes kept for clients that reconnect with `Last-Event-ID`.
pub const RING_CAPACITY: usize = 4096;

/// What live subscribers receive.
#[derive(Debug, Clone)]
pub enum Live {
    /// The delta of versions `from..=to` (JSON body).
    Delta {
        /// The epoch the versions count in.
        epoch: Arc<str>,
        /// First version covered.
        from: u64,
        /// Last version covered (the event id).
        to: u64,
        /// The rendered delta.
        body: Arc<str>,
    },
    /// The map was rebuilt from a snapshot at this version: send a snapshot.
    Reset(u64),
}

/// What a subscriber must be sent before the live deltas.
#[derive(Debug, Clone)]
pub enum Backlog {
    /// Nothing: it is up to date.
    None,
    /// One delta covering what it missed.
    Delta(Live),
    /// A snapshot: it is too far behind (or ahead, or new).
    Snapshot,
}

/// What applying a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It was the next version and is applied.
    Yes,
    /// Already applied.
    Stale,
    /// A version is missing before it: the follower fetches the gap.
    Gap,
    /// It changes the inventory: reload the layout.
    Reload,
}

/// The mutable part of a map.
pub struct MapState {
    /// Static inventory.
    pub layout: Arc<Layout>,
    /// The store's epoch of the performance: versions count within it.
    pub epoch: Arc<str>,
    /// Version of the last applied change.
    pub version: u64,
    /// Status per seat, in layout order.
    pub statuses: Vec<SeatStatus>,
    /// Counts per area.
    pub areas: BTreeMap<String, AreaCount>,
    ring: VecDeque<Arc<Change>>,
    flushed: u64,
    json: Option<Rendered>,
    compact: Option<Rendered>,
}

/// A rendered body: its epoch and version, when it was rendered, the bytes.
type Rendered = (Arc<str>, u64, std::time::Instant, Bytes);

/// A body served: the epoch and version it shows, and the bytes.
#[derive(Debug, Clone)]
pub struct Body {
    /// The epoch the version counts in.
    pub epoch: Arc<str>,
    /// The version shown.
    pub version: u64,
    /// The rendered JSON.
    pub bytes: Bytes,
}

/// One performance's live seat map.
pub struct PerfMap {
    state: RwLock<MapState>,
    live: broadcast::Sender<Live>,
    rendering: tokio::sync::Mutex<()>,
}

impl PerfMap {
    /// A map of `layout` at the state of `snapshot`.
    pub fn new(layout: Arc<Layout>, snapshot: &Snapshot) -> Self {
        let state = MapState::from_snapshot(layout, snapshot);
        Self {
            state: RwLock::new(state),
            live: broadcast::channel(1024).0,
            rendering: tokio::sync::Mutex::new(()),
        }
    }

    /// Reads the state.
    pub fn read(&self) -> RwLockReadGuard<'_, MapState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, MapState> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The current version.
    pub fn version(&self) -> u64 {
        self.read().version
    }

    /// The current epoch and version.
    pub fn position(&self) -> (Arc<str>, u64) {
        let st = self.read();
        (st.epoch.clone(), st.version)
    }

    /// Streams open on this map.
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// The layout.
    pub fn layout(&self) -> Arc<Layout> {
        self.read().layout.clone()
    }

    /// Applies `change` if it is the next version of the map's epoch; a change of another
    /// epoch (the store installed the performance afresh) asks for a reload.
    pub fn apply(&self, change: &Change) -> Applied {
        let mut st = self.write();
        if *change.epoch != *st.epoch {
            return Applied::Reload;
        }
        if change.version <= st.version {
            return Applied::Stale;
        }
        if change.version != st.version + 1 {
            return Applied::Gap;
        }
        if change.reload {
            return Applied::Reload;
        }
        for (seat, status) in &change.seats {
            if let Some(&i) = st.layout.index.get(seat)
                && let Some(slot) = st.statuses.get_mut(i)
            {
                *slot = *status;
            }
        }
        for a in &change.areas {
            st.areas.insert(a.0.clone(), a.clone());
        }
        st.version = change.version;
        if st.ring.len() >= RING_CAPACITY {
            st.ring.pop_front();
        }
        st.ring.push_back(Arc::new(change.clone()));
        Applied::Yes
    }

    /// Replaces the whole state (a reload or a follower that fell behind the log).
    pub fn reset(&self, layout: Arc<Layout>, snapshot: &Snapshot) {
        let mut st = self.write();
        if snapshot.version < st.version
            && layout.revision == st.layout.revision
            && *snapshot.epoch == *st.epoch
        {
            return;
        }
        *st = MapState::from_snapshot(layout, snapshot);
        st.flushed = st.version;
        let _ = self.live.send(Live::Reset(st.version));
    }

    /// The delta of the changes after `after` up to now, if the ring still has them all.
    fn delta_since(st: &MapState, after: u64) -> Option<Live> {
        let first = st.ring.front()?.version;
        if first > after + 1 {
            return None;
        }
        let changes = st.ring.iter().filter(|c| c.version > after);
        let body = render::delta(after + 1, st.version, changes);
        Some(Live::Delta {
            epoch: st.epoch.clone(),
            from: after + 1,
            to: st.version,
            body: Arc::from(body.as_str()),
        })
    }

    /// Sends one delta covering every version since the last flush to live subscribers.
    pub fn flush(&self) {
        let mut st = self.write();
        if st.version <= st.flushed {
            return;
        }
        let live = Self::delta_since(&st, st.flushed).unwrap_or(Live::Reset(st.version));
        st.flushed = st.version;
        // Sent under the lock, so batches reach subscribers in order and without gaps.
        let _ = self.live.send(live);
    }

    /// Subscribes to live deltas, with what the subscriber missed after `last` (its
    /// `Last-Event-ID`: an epoch and a version), and the version it will be at once that is
    /// sent. A position in another epoch gets a snapshot: its state no longer exists.
    pub fn subscribe(
        &self,
        last: Option<(&str, u64)>,
    ) -> (broadcast::Receiver<Live>, Backlog, u64) {
        let st = self.read();
        let rx = self.live.subscribe();
        let backlog = match last {
            Some((epoch, _)) if epoch != &*st.epoch => Backlog::Snapshot,
            Some((_, last)) if last == st.version => Backlog::None,
            Some((_, last)) if last < st.version => {
                Self::delta_since(&st, last).map_or(Backlog::Snapshot, Backlog::Delta)
            }
            _ => Backlog::Snapshot,
        };
        (rx, backlog, st.version)
    }

    /// The plain JSON body and its version. See [`PerfMap::compact`] for freshness.
    pub async fn json(&self, max_stale: Duration) -> Body {
        self.cached(false, max_stale).await
    }

    /// The compact body and its version: rendered at most once per version, and when the map
    /// changes faster than that, a body rendered less than `max_stale` ago is served as is (with
    /// its own version), so the read path costs the same at any change rate. Live changes reach
    /// clients through the stream.
    pub async fn compact(&self, max_stale: Duration) -> Body {
        self.cached(true, max_stale).await
    }

    fn hit(&self, compact: bool, max_stale: Duration) -> Option<Body> {
        let st = self.read();
        let slot = if compact { &st.compact } else { &st.json };
        slot.as_ref()
            .filter(|(e, v, at, _)| {
                (*v == st.version && *e == st.epoch) || at.elapsed() < max_stale
            })
            .map(|(e, v, _, body)| Body {
                epoch: e.clone(),
                version: *v,
                bytes: body.clone(),
            })
    }

    async fn cached(&self, compact: bool, max_stale: Duration) -> Body {
        if let Some(hit) = self.hit(compact, max_stale) {
            return hit;
        }
        // One rendering at a time however many readers miss at once; it runs on a copy, so
        // changes keep being applied meanwhile.
        let _rendering = self.rendering.lock().await;
        if let Some(hit) = self.hit(compact, max_stale) {
            return hit;
        }
        let frame = {
            let st = self.read();
            Frame {
                layout: st.layout.clone(),
                epoch: st.epoch.clone(),
                version: st.version,
                statuses: st.statuses.clone(),
                areas: st.areas.clone(),
            }
        };
        let body = Bytes::from(if compact {
            render::compact(&frame)
        } else {
            render::json(&frame)
        });
        let mut st = self.write();
        if Arc::ptr_eq(&st.layout, &frame.layout) {
            let slot = if compact {
                &mut st.compact
            } else {
                &mut st.json
            };
            *slot = Some((
                frame.epoch.clone(),
                frame.version,
                std::time::Instant::now(),
                body.clone(),
            ));
        }
        Body {
            epoch: frame.epoch,
            version: frame.version,
            bytes: body,
        }
    }
}

/// A copy of a map's state at one version, to render without holding its lock.
pub struct Frame {
    /// Static inventory.
    pub layout: Arc<Layout>,
    /// The epoch the version counts in.
    pub epoch: Arc<str>,
    /// Version.
    pub version: u64,
    /// Status per seat, in layout order.
    pub statuses: Vec<SeatStatus>,
    /// Counts per area.
    pub areas: BTreeMap<String, AreaCount>,
}

impl MapState {
    fn from_snapshot(layout: Arc<Layout>, snapshot: &Snapshot) -> Self {
        let mut statuses = vec![SeatStatus::Available; layout.seats.len()];
        for (seat, status) in &snapshot.taken {
            if let Some(&i) = layout.index.get(seat)
                && let Some(slot) = statuses.get_mut(i)
            {
                *slot = *status;
            }
        }
        let mut areas: BTreeMap<String, AreaCount> = layout
            .areas
            .iter()
            .map(|a| {
                let count = AreaCount(a.area_id.clone(), i64::from(a.capacity), 0, 0);
                (a.area_id.clone(), count)
            })
            .collect();
        for a in &snapshot.areas {
            areas.insert(a.0.clone(), a.clone());
        }
        Self {
            layout,
            epoch: Arc::from(snapshot.epoch.as_str()),
            version: snapshot.version,
            statuses,
            areas,
            ring: VecDeque::new(),
            flushed: snapshot.version,
            json: None,
            compact: None,
        }
    }
}
