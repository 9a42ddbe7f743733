//! The notification service (NotificationDB): tells people what happened, asynchronously. It
//! consumes events, never slows the purchase down, and keeps a delivery log with a status per
//! message.
//!
//! - [`events`]: events → delivery rows, one per (event, channel, recipient), in the inbox's
//!   transaction (a duplicated event sends once);
//! - [`dispatcher`]: sends due deliveries by email ([`send::SmtpMailer`]) or SMS
//!   ([`send::Solapi`]), retries temporary failures with backoff and jitter, dead-letters the
//!   rest;
//! - [`reminder`]: the reminder before a performance, its state in the database; [`janitor`]:
//!   old deliveries go;
//! - [`templates`]: Korean and English texts as template files;
//! - [`api`]: the admin's delivery log, dead letters and re-drive; the user's preferences;
//! - [`domain`]: kinds, channels, languages, the retry schedule (no I/O); [`store`]: SQL.
//!
//! A message as the dispatcher renders it:
//! ```
//! use notification::{domain::{Kind, Locale}, templates::Templates};
//! let templates = Templates::load(None).unwrap();
//! let data = serde_json::json!({"name": "김민준", "public_url": "https://boxoffice.example"});
//! let ko = templates.render(Kind::Welcome, Locale::Ko, &data).unwrap();
//! assert_eq!(ko.subject, "Boxoffice에 오신 것을 환영합니다");
//! assert!(ko.text.starts_with("김민준님, 안녕하세요."));
//! let en = templates.render(Kind::Welcome, Locale::En, &data).unwrap();
//! assert_eq!(en.subject, "Welcome to Boxoffice");
//! ```

use std::sync::Arc;

use platform::{
    auth::Verifier,
    http::Readiness,
    service::{Infra, Service, StartError, supervise},
};

pub mod api;
pub mod config;
pub mod dispatcher;
pub mod domain;
pub mod events;
pub mod janitor;
pub mod reminder;
pub mod send;
pub mod store;
pub mod templates;

pub use config::Config;

/// The service's name: its database is `<prefix>notification`, its config section `notification`.
pub const NAME: &str = "notification";

/// NotificationDB's migrations.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// What [`start_with`] can be given instead of what it would build from [`Infra`] and the
/// settings.
#[derive(Default, Clone)]
pub struct Overrides {
    /// Access-token verifier (default: the user service's JWKS).
    pub verifier: Option<Verifier>,
    /// The email sender (default: SMTP per `notification.smtp`).
    pub mailer: Option<Arc<dyn send::Mailer>>,
    /// The SMS sender (default: Solapi's API at `notification.sms.url`; unset: none, every SMS
    /// is dead-lettered saying so — standalone's sandbox mode sets it to the SMS sandbox).
    pub sms: Option<Arc<dyn send::SmsProvider>>,
    /// The consumer's name and group (default [`NAME`]).
    pub consumer: Option<String>,
    /// The topics read (default [`events::TOPICS`]).
    pub topics: Option<Vec<String>>,
}

fn other(e: impl std::fmt::Display) -> StartError {
    StartError::Other(e.to_string())
}

/// Opens NotificationDB, follows the events, sends, reminds, and builds the routes.
pub async fn start(config: &Config, infra: &Infra) -> Result<Service, StartError> {
    start_with(config, infra, Overrides::default()).await
}

/// [`start`] with some parts given (tests).
pub async fn start_with(
    config: &Config,
    infra: &Infra,
    overrides: Overrides,
) -> Result<Service, StartError> {
    let templates =
        Arc::new(templates::Templates::load(config.templates_dir.as_deref()).map_err(other)?);
    let mailer: Arc<dyn send::Mailer> = match overrides.mailer {
        Some(m) => m,
        None => Arc::new(send::SmtpMailer::new(&config.smtp).map_err(other)?),
    };
    let sms: Arc<dyn send::SmsProvider> = match overrides.sms {
        Some(s) => s,
        None => match config.sms.url.clone() {
            Some(url) => Arc::new(send::Solapi::new(&url, &config.sms).map_err(other)?),
            None => {
                if config.sms.enabled {
                    tracing::warn!(
                        "notification.sms.url is not set: SMS deliveries will be dead-lettered"
                    );
                }
                Arc::new(send::NoSmsProvider)
            }
        },
    };
    if config.lease_ms <= config.smtp.timeout_ms.max(config.sms.timeout_ms) {
        tracing::warn!(
            lease_ms = config.lease_ms,
            "notification.lease_ms is not longer than the SMTP or SMS timeout: a slow send may be \
             taken over and sent twice"
        );
    }
    let pool = infra.database(NAME, &MIGRATOR).await?;
    let verifier = match overrides.verifier {
        Some(v) => v,
        None => infra.verifier()?,
    };
    let topics: Vec<String> = overrides
        .topics
        .unwrap_or_else(|| events::TOPICS.iter().map(|t| (*t).to_owned()).collect());
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let consumer_name = overrides.consumer.unwrap_or_else(|| NAME.to_owned());
    let shutdown = infra.shutdown.clone();
    let relay = infra.spawn_relay(NAME, pool.clone());
    let consumer = infra
        .consumer(&consumer_name, pool.clone(), &topic_refs)
        .spawn(events::NotificationHandler, shutdown.clone());
    let dispatcher = dispatcher::Dispatcher {
        pool: pool.clone(),
        config: Arc::new(config.clone()),
        templates,
        mailer,
        sms,
    };
    let stop = shutdown.clone();
    let sender = supervise("notification-dispatcher", shutdown.clone(), move || {
        let (d, stop) = (dispatcher.clone(), stop.clone());
        tokio::spawn(async move { d.run(stop).await })
    });
    let mut tasks = vec![relay, consumer, sender];
    if config.reminder.enabled {
        let (pool, reminder, stop) = (pool.clone(), config.reminder.clone(), shutdown.clone());
        tasks.push(supervise(
            "notification-reminder",
            shutdown.clone(),
            move || {
                let (pool, reminder, stop) = (pool.clone(), reminder.clone(), stop.clone());
                tokio::spawn(reminder::run(pool, reminder, stop))
            },
        ));
    }
    if config.retention_days > 0 {
        let (pool, days, stop) = (pool.clone(), config.retention_days, shutdown.clone());
        tasks.push(supervise(
            "notification-janitor",
            shutdown.clone(),
            move || {
                let (pool, stop) = (pool.clone(), stop.clone());
                tokio::spawn(janitor::run(
                    pool,
                    days,
                    std::time::Duration::from_secs(86_400),
                    stop,
                ))
            },
        ));
    }
    let state = api::AppState {
        pool: pool.clone(),
        verifier,
    };
    Ok(Service {
        name: NAME,
        router: api::router(state),
        readiness: Readiness::default().postgres(pool),
        tasks,
    })
}
