//! HTTP caching for public reads: a strong `ETag` (a hash of the body) with `If-None-Match` →
//! 304, a short `Cache-Control`, and a small in-process cache of recent listing bodies so a burst
//! of identical listings costs one query a second: concurrent requests for a missing or expired
//! listing wait for one computation (single flight) instead of each querying the database.
//! Admin writes clear it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};

/// How long a cached listing body is served.
pub const TTL: Duration = Duration::from_secs(1);
/// Most cached bodies; the cache is emptied when it is full.
const MAX_ENTRIES: usize = 2_000;

/// A body with its entity tag.
#[derive(Clone)]
pub struct Cached {
    body: Bytes,
    etag: String,
}

impl Cached {
    /// Wraps a JSON body, computing its tag.
    pub fn new(body: Vec<u8>) -> Self {
        let digest = Sha256::digest(&body);
        let etag = format!("\"{}\"", hex(&digest[..12]));
        Self {
            body: Bytes::from(body),
            etag,
        }
    }

    /// The response: 304 when the client has this version, else the body, with caching headers.
    pub fn respond(&self, request: &HeaderMap, max_age: u32) -> Response {
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|t| t.trim() == self.etag || t.trim() == "*")
            });
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                self.body.clone(),
            )
                .into_response()
        };
        let headers = response.headers_mut();
        if let Ok(v) = HeaderValue::from_str(&self.etag) {
            headers.insert(header::ETAG, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
            headers.insert(header::CACHE_CONTROL, v);
        }
        response
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How long the search vocabulary is reused.
pub const VOCABULARY_TTL: Duration = Duration::from_secs(30);

/// The search vocabulary and when it was loaded.
type Vocabulary = (Instant, Arc<Vec<String>>);

/// One cached listing: filled once by whoever asked first.
struct Slot {
    at: Instant,
    cell: Arc<tokio::sync::OnceCell<Cached>>,
}

/// Most cached venue details (a stadium's with its seats is about 2.5 MB); the venue cache is
/// emptied when it is full.
const MAX_VENUES: usize = 32;

/// A venue's detail with or without its seats, as of one revision of the venue.
type VenueEntry = (i64, Cached);

/// Recently answered listings by query string, the search vocabulary, and venue details by
/// venue and revision.
#[derive(Clone, Default)]
pub struct ResponseCache {
    entries: Arc<Mutex<HashMap<String, Slot>>>,
    vocabulary: Arc<Mutex<Option<Vocabulary>>>,
    venues: Arc<Mutex<HashMap<(uuid::Uuid, bool), VenueEntry>>>,
}

impl ResponseCache {
    /// The body for `key`: the one computed less than [`TTL`] ago, else the one `compute`
    /// makes — once, however many requests ask at the same time.
    pub async fn get_or_compute<F, Fut, E>(&self, key: &str, compute: F) -> Result<Cached, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, E>>,
    {
        let cell = {
            let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
            match entries.get(key) {
                Some(slot) if slot.at.elapsed() < TTL => slot.cell.clone(),
                _ => {
                    if entries.len() >= MAX_ENTRIES {
                        entries.clear();
                    }
                    let cell = Arc::new(tokio::sync::OnceCell::new());
                    entries.insert(
                        key.to_owned(),
                        Slot {
                            at: Instant::now(),
                            cell: cell.clone(),
                        },
                    );
                    cell
                }
            }
        };
        cell.get_or_try_init(compute).await.cloned()
    }

    /// The search vocabulary loaded less than [`VOCABULARY_TTL`] ago.
    pub fn vocabulary(&self) -> Option<Arc<Vec<String>>> {
        let v = self.vocabulary.lock().unwrap_or_else(|p| p.into_inner());
        v.as_ref()
            .filter(|(at, _)| at.elapsed() < VOCABULARY_TTL)
            .map(|(_, w)| w.clone())
    }

    /// Remembers the search vocabulary.
    pub fn put_vocabulary(&self, words: Arc<Vec<String>>) {
        *self.vocabulary.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), words));
    }

    /// The detail of `venue` (`seats`: with its seats) at `revision`, if it was cached at that
    /// revision: a venue written since has a higher one, so its old detail is never served.
    pub fn venue(&self, venue: uuid::Uuid, seats: bool, revision: i64) -> Option<Cached> {
        let venues = self.venues.lock().unwrap_or_else(|p| p.into_inner());
        venues
            .get(&(venue, seats))
            .filter(|(r, _)| *r == revision)
            .map(|(_, c)| c.clone())
    }

    /// Remembers the detail of `venue` at `revision` (replacing an older revision's; a newer one
    /// already kept stays).
    pub fn put_venue(&self, venue: uuid::Uuid, seats: bool, revision: i64, body: Cached) {
        let mut venues = self.venues.lock().unwrap_or_else(|p| p.into_inner());
        if venues
            .get(&(venue, seats))
            .is_some_and(|(r, _)| *r > revision)
        {
            return;
        }
        if venues.len() >= MAX_VENUES && !venues.contains_key(&(venue, seats)) {
            venues.clear();
        }
        venues.insert((venue, seats), (revision, body));
    }

    /// Forgets everything (after a change).
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        *self.vocabulary.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_misses_compute_once() {
        let cache = ResponseCache::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_compute("kind=baseball", || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        Ok::<_, ()>(Cached::new(b"{}".to_vec()))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_ok());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache.clear();
        let again = cache
            .get_or_compute("kind=baseball", || async { Err::<Cached, _>("down") })
            .await;
        assert_eq!(again.err(), Some("down"), "a failure is not cached");
    }
}
