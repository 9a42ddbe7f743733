//! How a remote [`Verifier`](super::Verifier) keeps its copy of the JWKS current: it refetches
//! when the copy's `max-age` has passed (so a key the issuer stops publishing stops verifying
//! within that time) and when a token names an unknown key id (a rotation), never more often than
//! the bounds of [`JwksRefresh`], one fetch at a time however many requests are waiting. A failed
//! refetch keeps the last copy for a bounded grace; past it, every token is refused.

use std::{
    sync::RwLock,
    time::{Duration, Instant},
};

use http::{HeaderMap, header};
use jsonwebtoken::jwk::JwkSet;

use super::{KeySet, key_map};

/// When a remote verifier refetches the JWKS and how long it trusts its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JwksRefresh {
    /// How long a copy is fresh when the response names no `max-age`: 60 s.
    pub default_max_age: Duration,
    /// The shortest freshness honoured (a smaller `max-age`, `no-cache` or `no-store` counts as
    /// this), so a misconfigured issuer cannot make every request fetch: 5 s.
    pub min_max_age: Duration,
    /// The longest freshness honoured, so a retired key is dropped within it whatever the
    /// issuer said: 10 min.
    pub max_max_age: Duration,
    /// A token with an unknown key id makes a fresh copy refetch at most this often: 10 s.
    pub unknown_kid_interval: Duration,
    /// After a failed refetch, the next is tried no sooner than this: 5 s.
    pub retry_interval: Duration,
    /// How long past its freshness a copy is still trusted while refetches fail (an issuer
    /// restarting, a network blip): 5 min. Past that the verifier refuses every token with
    /// [`AuthError::Unavailable`](super::AuthError::Unavailable) until a fetch succeeds.
    pub stale_grace: Duration,
}

impl Default for JwksRefresh {
    fn default() -> Self {
        Self {
            default_max_age: Duration::from_secs(60),
            min_max_age: Duration::from_secs(5),
            max_max_age: Duration::from_secs(600),
            unknown_kid_interval: Duration::from_secs(10),
            retry_interval: Duration::from_secs(5),
            stale_grace: Duration::from_secs(300),
        }
    }
}

impl JwksRefresh {
    /// How long a copy fetched with these response headers stays fresh: its `max-age` less its
    /// `Age` (or the default without one), within the bounds.
    pub fn freshness(&self, headers: &HeaderMap) -> Duration {
        let cache_control = headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        let age = headers
            .get(header::AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(Duration::ZERO, Duration::from_secs);
        max_age(&cache_control)
            .map_or(self.default_max_age, |m| m.saturating_sub(age))
            .clamp(self.min_max_age, self.max_max_age.max(self.min_max_age))
    }
}

/// The freshness a `Cache-Control` value gives: its `max-age` (`no-cache` and `no-store`: zero),
/// `None` when it names none or only an unreadable one.
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut found = None;
    for directive in cache_control.split(',') {
        let (name, value) = match directive.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (directive.trim(), None),
        };
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            return Some(Duration::ZERO);
        }
        if name.eq_ignore_ascii_case("max-age")
            && found.is_none()
            && let Some(secs) = value.and_then(|v| v.parse::<u64>().ok())
        {
            found = Some(Duration::from_secs(secs));
        }
    }
    found
}

/// The attempts so far, behind the single-flight lock.
#[derive(Default)]
struct Attempts {
    /// The last fetch started, successful or not.
    last: Option<Instant>,
    /// After a failure: no new attempt before this.
    not_before: Option<Instant>,
}

/// A JWKS URL, its client and its fetch history.
pub(super) struct Remote {
    url: String,
    client: reqwest::Client,
    refresh: JwksRefresh,
    attempts: tokio::sync::Mutex<Attempts>,
}

impl Remote {
    pub(super) fn new(url: String, refresh: JwksRefresh) -> Self {
        Self {
            url,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(3))
                .build()
                .unwrap_or_default(),
            refresh,
            attempts: tokio::sync::Mutex::new(Attempts::default()),
        }
    }

    /// Refetches into `keys` when the copy is stale (never fetched or past its max-age) or
    /// `kid` is unknown, within the limits. One caller fetches; the others wait for it and then
    /// find the copy fresh.
    pub(super) async fn refresh_if_due(&self, keys: &RwLock<KeySet>, kid: &str) {
        let peek = |now| {
            keys.read()
                .unwrap_or_else(|p| p.into_inner())
                .stale_and_known(kid, now)
        };
        if let (false, true) = peek(Instant::now()) {
            return;
        }
        let mut attempts = self.attempts.lock().await;
        // Whoever held the lock before may have fetched what we need.
        let now = Instant::now();
        let due = match peek(now) {
            (true, _) => attempts.not_before.is_none_or(|t| now >= t),
            (false, known) => {
                !known
                    && attempts
                        .last
                        .is_none_or(|t| now.duration_since(t) >= self.refresh.unknown_kid_interval)
            }
        };
        if !due {
            return;
        }
        attempts.last = Some(now);
        match self.fetch().await {
            Ok((set, fresh)) => {
                let map = key_map(&set.keys);
                let fetched = Instant::now();
                let mut keys = keys.write().unwrap_or_else(|p| p.into_inner());
                keys.keys = map;
                keys.fresh_until = Some(fetched + fresh);
                keys.trusted_until = Some(fetched + fresh + self.refresh.stale_grace);
                attempts.not_before = None;
                tracing::debug!(url = %self.url, keys = keys.keys.len(), ?fresh, "JWKS fetched");
            }
            Err(e) => {
                attempts.not_before = Some(Instant::now() + self.refresh.retry_interval);
                let trusted = keys
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .trusted_until
                    .map(|t| t.saturating_duration_since(Instant::now()));
                tracing::warn!(
                    error = %e,
                    url = %self.url,
                    keeping_keys_for = ?trusted,
                    "JWKS refetch failed; keeping the last keys for their grace period"
                );
            }
        }
    }

    async fn fetch(&self) -> Result<(JwkSet, Duration), String> {
        let response = crate::telemetry::propagate(self.client.get(self.url.as_str()))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| e.to_string())?;
        let fresh = self.refresh.freshness(response.headers());
        let set = response
            .json::<JwkSet>()
            .await
            .map_err(|e| format!("unreadable JWKS document: {e}"))?;
        Ok((set, fresh))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    };

    use axum::{Json, Router, http::StatusCode, response::IntoResponse, routing::get};
    use jsonwebtoken::jwk::Jwk;

    use super::*;
    use crate::auth::{AuthError, Claims, Role, SigningKey, Verifier};

    #[test]
    fn max_age_is_read_from_cache_control() {
        let secs = |s: &str| max_age(s).map(|d| d.as_secs());
        assert_eq!(secs("public, max-age=60"), Some(60));
        assert_eq!(secs("MAX-AGE=7"), Some(7));
        assert_eq!(secs("max-age=\"30\", public"), Some(30));
        assert_eq!(secs(" public ,  max-age = 12 "), Some(12));
        // The first readable max-age counts.
        assert_eq!(secs("max-age=5, max-age=500"), Some(5));
        // No-cache and no-store: refetch as often as allowed.
        assert_eq!(secs("max-age=600, no-cache"), Some(0));
        assert_eq!(secs("no-store"), Some(0));
        // None, or unreadable: the default applies.
        assert_eq!(secs("public"), None);
        assert_eq!(secs(""), None);
        assert_eq!(secs("max-age=soon"), None);
        assert_eq!(secs("max-age=-1"), None);
        assert_eq!(secs("s-maxage=100"), None);
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn freshness_is_bounded_and_defaults_without_max_age() {
        let r = JwksRefresh::default();
        let secs = |pairs: &[(&str, &str)]| r.freshness(&headers(pairs)).as_secs();
        assert_eq!(secs(&[("cache-control", "public, max-age=60")]), 60);
        assert_eq!(secs(&[("cache-control", "max-age=120")]), 120);
        assert_eq!(secs(&[]), 60, "default without a max-age");
        assert_eq!(secs(&[("cache-control", "public")]), 60);
        assert_eq!(secs(&[("cache-control", "max-age=1")]), 5, "lower bound");
        assert_eq!(secs(&[("cache-control", "no-store")]), 5);
        assert_eq!(
            secs(&[("cache-control", "max-age=86400")]),
            600,
            "upper bound"
        );
        // Several headers read as one list; a cache's Age is subtracted.
        assert_eq!(
            secs(&[("cache-control", "public"), ("cache-control", "max-age=90")]),
            90
        );
        assert_eq!(secs(&[("cache-control", "max-age=90"), ("age", "30")]), 60);
        assert_eq!(secs(&[("cache-control", "max-age=90"), ("age", "300")]), 5);
    }

    /// A JWKS endpoint whose keys, `Cache-Control` and health the test changes; counts fetches.
    #[derive(Clone)]
    struct Issuer {
        keys: Arc<Mutex<Vec<Jwk>>>,
        cache_control: Arc<Mutex<Option<String>>>,
        failing: Arc<Mutex<bool>>,
        fetches: Arc<AtomicUsize>,
    }

    impl Issuer {
        async fn start(keys: &[&SigningKey], cache_control: Option<&str>) -> (Self, String) {
            let issuer = Self {
                keys: Arc::new(Mutex::new(Vec::new())),
                cache_control: Arc::new(Mutex::new(cache_control.map(str::to_owned))),
                failing: Arc::new(Mutex::new(false)),
                fetches: Arc::new(AtomicUsize::new(0)),
            };
            issuer.publish(keys);
            let state = issuer.clone();
            let router = Router::new().route(
                "/jwks.json",
                get(move || {
                    let s = state.clone();
                    async move {
                        s.fetches.fetch_add(1, Ordering::SeqCst);
                        if *s.failing.lock().unwrap() {
                            return StatusCode::SERVICE_UNAVAILABLE.into_response();
                        }
                        let body = Json(JwkSet {
                            keys: s.keys.lock().unwrap().clone(),
                        });
                        match s.cache_control.lock().unwrap().clone() {
                            Some(cc) => ([(header::CACHE_CONTROL, cc)], body).into_response(),
                            None => body.into_response(),
                        }
                    }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, router).await });
            (issuer, url)
        }

        fn publish(&self, keys: &[&SigningKey]) {
            *self.keys.lock().unwrap() = keys.iter().map(|k| k.public_jwk().unwrap()).collect();
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }
    }

    fn token(key: &SigningKey) -> String {
        key.sign(&Claims::new(uuid::Uuid::now_v7(), vec![Role::Buyer], 60))
            .unwrap()
    }

    /// Bounds low enough that a 1 s max-age counts as one.
    fn quick() -> JwksRefresh {
        JwksRefresh {
            min_max_age: Duration::from_secs(1),
            max_max_age: Duration::from_secs(2),
            default_max_age: Duration::from_secs(1),
            retry_interval: Duration::from_secs(1),
            ..JwksRefresh::default()
        }
    }

    #[tokio::test]
    async fn a_key_dropped_from_the_jwks_stops_verifying_once_its_max_age_passes() {
        let (a, b) = (SigningKey::generate("a"), SigningKey::generate("b"));
        let (issuer, url) = Issuer::start(&[&a, &b], Some("public, max-age=1")).await;
        let v = Verifier::remote_with(url, quick());
        let (ta, tb) = (token(&a), token(&b));
        assert!(v.verify_async(&ta).await.is_ok());
        assert_eq!(issuer.fetches(), 1);
        // Within its max-age the copy is used as it is: no fetch, the dropped key still passes.
        issuer.publish(&[&b]);
        assert!(v.verify_async(&ta).await.is_ok());
        assert!(v.verify_async(&tb).await.is_ok());
        assert_eq!(issuer.fetches(), 1);
        // After it, the next verification refetches and the dropped key is refused, though
        // its key id was known (no unknown-kid refetch involved).
        let started = Instant::now();
        crate::testing::eventually("key a is refused", Duration::from_secs(10), || {
            let (v, ta, issuer) = (v.clone(), ta.clone(), issuer.clone());
            async move {
                let refused = matches!(v.verify_async(&ta).await, Err(AuthError::Invalid(_)));
                if !refused {
                    assert_eq!(issuer.fetches(), 1, "a refetch must drop key a");
                }
                refused
            }
        })
        .await;
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert_eq!(issuer.fetches(), 2);
        assert!(v.verify_async(&tb).await.is_ok());
        // The sync path sees the new copy too.
        assert!(v.verify(&ta).is_err() && v.verify(&tb).is_ok());
        assert_eq!(issuer.fetches(), 2);
    }

    #[tokio::test]
    async fn without_a_max_age_the_default_freshness_applies() {
        let a = SigningKey::generate("a");
        let (issuer, url) = Issuer::start(&[&a], None).await;
        // Default freshness 1 s here; without the default the copy would be kept for ever.
        let v = Verifier::remote_with(url, quick());
        assert!(v.verify_async(&token(&a)).await.is_ok());
        assert_eq!(issuer.fetches(), 1);
        issuer.publish(&[]);
        let t = token(&a);
        let v2 = v.clone();
        crate::testing::eventually(
            "the default max-age passes",
            Duration::from_secs(10),
            || {
                let (v, t) = (v2.clone(), t.clone());
                async move { v.verify_async(&t).await.is_err() }
            },
        )
        .await;
        assert_eq!(issuer.fetches(), 2);
    }

    #[tokio::test]
    async fn a_long_max_age_is_capped() {
        let a = SigningKey::generate("a");
        let (issuer, url) = Issuer::start(&[&a], Some("max-age=86400")).await;
        let v = Verifier::remote_with(url, quick());
        assert!(v.verify_async(&token(&a)).await.is_ok());
        issuer.publish(&[]);
        let t = token(&a);
        crate::testing::eventually("the 2 s cap passes", Duration::from_secs(10), || {
            let (v, t) = (v.clone(), t.clone());
            async move { v.verify_async(&t).await.is_err() }
        })
        .await;
        assert_eq!(issuer.fetches(), 2);
    }

    #[tokio::test]
    async fn concurrent_verifications_of_a_stale_copy_share_one_fetch() {
        let a = SigningKey::generate("a");
        let (issuer, url) = Issuer::start(&[&a], Some("max-age=1")).await;
        let v = Verifier::remote_with(url, quick());
        let t = token(&a);
        // A cold verifier met by many requests at once: one fetch.
        let all = futures::future::join_all((0..50).map(|_| v.verify_async(&t))).await;
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(issuer.fetches(), 1);
        // Stale again: still one fetch for the crowd.
        let fetched_at = Instant::now();
        crate::testing::eventually("the copy goes stale", Duration::from_secs(10), || {
            let stale = fetched_at.elapsed() > Duration::from_millis(1100);
            async move { stale }
        })
        .await;
        let all = futures::future::join_all((0..50).map(|_| v.verify_async(&t))).await;
        assert!(all.iter().all(Result::is_ok));
        assert_eq!(issuer.fetches(), 2);
        // Unknown key ids on a fresh copy: at most one fetch per 10 s.
        let strangers: Vec<String> = (0..20)
            .map(|i| token(&SigningKey::generate(format!("x{i}"))))
            .collect();
        let all = futures::future::join_all(strangers.iter().map(|s| v.verify_async(s))).await;
        assert!(all.iter().all(Result::is_err));
        assert_eq!(
            issuer.fetches(),
            2,
            "just fetched: the unknown-kid limit holds"
        );
    }

    #[tokio::test]
    async fn a_failed_refetch_keeps_the_keys_for_the_grace_then_refuses_everything() {
        let a = SigningKey::generate("a");
        let (issuer, url) = Issuer::start(&[&a], Some("max-age=1")).await;
        let grace = Verifier::remote_with(
            url.clone(),
            JwksRefresh {
                stale_grace: Duration::from_secs(60),
                ..quick()
            },
        );
        let none = Verifier::remote_with(
            url,
            JwksRefresh {
                stale_grace: Duration::ZERO,
                ..quick()
            },
        );
        let t = token(&a);
        assert!(grace.verify_async(&t).await.is_ok());
        assert!(none.verify_async(&t).await.is_ok());
        assert_eq!(issuer.fetches(), 2);
        *issuer.failing.lock().unwrap() = true;
        // Once stale, each tries a refetch that fails: within its grace the last keys still
        // verify; without one every token is refused, as unavailable rather than invalid.
        crate::testing::eventually("a failed refetch", Duration::from_secs(10), || {
            let (grace, t) = (grace.clone(), t.clone());
            let issuer = issuer.clone();
            async move {
                assert!(grace.verify_async(&t).await.is_ok(), "a blip fails nothing");
                issuer.fetches() > 2
            }
        })
        .await;
        let before = issuer.fetches();
        assert!(grace.verify_async(&t).await.is_ok());
        assert_eq!(issuer.fetches(), before, "no retry before retry_interval");
        crate::testing::eventually("the keys expire", Duration::from_secs(10), || {
            let (none, t) = (none.clone(), t.clone());
            async move { matches!(none.verify_async(&t).await, Err(AuthError::Unavailable(_))) }
        })
        .await;
        assert!(matches!(none.verify(&t), Err(AuthError::Unavailable(_))));
        // The issuer is back: the next attempt after retry_interval restores trust.
        *issuer.failing.lock().unwrap() = false;
        crate::testing::eventually("trust restored", Duration::from_secs(10), || {
            let (none, t) = (none.clone(), t.clone());
            async move { none.verify_async(&t).await.is_ok() }
        })
        .await;
    }

    #[tokio::test]
    async fn an_unknown_key_id_still_refetches_a_fresh_copy_after_ten_seconds_at_most_once() {
        // With a long max-age only an unknown key id makes it look again: a rotation arrives.
        let (a, b) = (SigningKey::generate("a"), SigningKey::generate("b"));
        let (issuer, url) = Issuer::start(&[&a], Some("max-age=600")).await;
        let v = Verifier::remote_with(
            url,
            JwksRefresh {
                unknown_kid_interval: Duration::from_secs(1),
                ..JwksRefresh::default()
            },
        );
        assert!(v.verify_async(&token(&a)).await.is_ok());
        issuer.publish(&[&a, &b]);
        let tb = token(&b);
        assert!(v.verify_async(&tb).await.is_err(), "within the interval");
        assert_eq!(issuer.fetches(), 1);
        crate::testing::eventually("the rotation is learned", Duration::from_secs(10), || {
            let (v, tb) = (v.clone(), tb.clone());
            async move { v.verify_async(&tb).await.is_ok() }
        })
        .await;
        assert_eq!(issuer.fetches(), 2);
    }
}
