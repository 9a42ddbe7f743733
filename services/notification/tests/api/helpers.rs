//! Spawning the service against the catcher, the SMS sandbox and the broker; publishing events;
//! reading what arrived, also through Python's `email` package.

use std::{sync::Arc, time::Duration};

use contracts::{Envelope, Event, events::UserRegistered};
use platform::{
    auth::Role,
    bus::{Transport, kafka::KafkaTransport},
    service::Infra,
    testing::{self, TestIssuer, TestServer},
};
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

/// How long a condition that involves the broker may take (a fresh group's join included).
pub const DEADLINE: Duration = Duration::from_secs(90);

pub struct App {
    pub server: TestServer,
    pub mail: fakes::mail::Running,
    pub sms: fakes::sms::Running,
    pub issuer: TestIssuer,
    pub bus: Arc<dyn Transport>,
    pub infra: Infra,
    pub db: PgPool,
    pub config: notification::Config,
    /// This test's topics, by the contract's topic name.
    pub topics: Vec<(String, String)>,
    pub group: String,
    pub mailer: Option<Arc<dyn notification::send::Mailer>>,
}

/// Settings that make tests quick: sends polled every 20 ms, retries from 50 ms, the reminder
/// scheduler every 100 ms.
pub fn config() -> notification::Config {
    let mut c = notification::Config {
        poll_interval_ms: 20,
        lease_ms: 2_000,
        public_url: "https://boxoffice.test".into(),
        ..notification::Config::default()
    };
    c.retry.base_ms = 50;
    c.retry.max_ms = 300;
    c.retry.max_attempts = 30;
    c.reminder.interval_ms = 100;
    c.smtp.timeout_ms = 2_000;
    c
}

pub async fn spawn() -> App {
    spawn_with(config(), None).await
}

pub async fn spawn_with(
    mut config: notification::Config,
    mailer: Option<Arc<dyn notification::send::Mailer>>,
) -> App {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let mail = fakes::mail::spawn(fakes::mail::Options::default())
        .await
        .unwrap();
    let sms = fakes::sms::spawn(fakes::sms::Options::default())
        .await
        .unwrap();
    config.smtp.host = mail.smtp_addr.ip().to_string();
    config.smtp.port = mail.smtp_addr.port();
    config.sms.url = Some(sms.base_url.clone());

    let bus: Arc<dyn Transport> =
        Arc::new(KafkaTransport::new(&testing::kafka_brokers(), 2).unwrap());
    let run = Uuid::new_v4().simple().to_string();
    let topics: Vec<(String, String)> = notification::events::TOPICS
        .iter()
        .map(|t| ((*t).to_owned(), format!("{t}.test-{run}")))
        .collect();
    let names: Vec<&str> = topics.iter().map(|(_, t)| t.as_str()).collect();
    bus.ensure_topics(&names).await.unwrap();
    let infra = testing::infra_with_bus("notif", bus.clone());
    let issuer = TestIssuer::default();
    let group = format!("notification-test-{run}");
    let server = start(&config, &infra, &issuer, &topics, &group, mailer.clone()).await;
    let url = format!(
        "{}/{}notification",
        infra.database_url.clone().unwrap(),
        infra.database.name_prefix
    );
    App {
        db: PgPool::connect(&url).await.unwrap(),
        server,
        mail,
        sms,
        issuer,
        bus,
        infra,
        config,
        topics,
        group,
        mailer,
    }
}

async fn start(
    config: &notification::Config,
    infra: &Infra,
    issuer: &TestIssuer,
    topics: &[(String, String)],
    group: &str,
    mailer: Option<Arc<dyn notification::send::Mailer>>,
) -> TestServer {
    let service = notification::start_with(
        config,
        infra,
        notification::Overrides {
            verifier: Some(issuer.verifier()),
            mailer,
            sms: None,
            consumer: Some(group.to_owned()),
            topics: Some(topics.iter().map(|(_, t)| t.clone()).collect()),
        },
    )
    .await
    .unwrap();
    testing::serve(service, infra.shutdown.clone()).await
}

impl App {
    /// Stops the service (its consumer, sender and scheduler) and starts it again on the same
    /// database and consumer group, with `config`.
    pub async fn restart(&mut self, config: notification::Config) {
        self.infra.shutdown.cancel();
        self.infra.shutdown = tokio_util::sync::CancellationToken::new();
        let mut config = config;
        config.smtp.host = self.config.smtp.host.clone();
        config.smtp.port = self.config.smtp.port;
        config.sms.url = self.config.sms.url.clone();
        self.server = start(
            &config,
            &self.infra,
            &self.issuer,
            &self.topics,
            &self.group,
            self.mailer.clone(),
        )
        .await;
        self.config = config;
    }

    fn topic(&self, contract_topic: &str) -> &str {
        &self
            .topics
            .iter()
            .find(|(c, _)| c == contract_topic)
            .unwrap()
            .1
    }

    /// Publishes an envelope on this test's copy of its event's topic.
    pub async fn publish_envelope(&self, topic: &str, env: &Envelope) {
        self.bus.publish(self.topic(topic), env).await.unwrap();
    }

    /// Publishes `event`; answers its envelope.
    pub async fn publish<E: Event>(&self, event: &E) -> Envelope {
        let env = Envelope::new(event).unwrap();
        self.publish_envelope(E::TOPIC, &env).await;
        env
    }

    /// Registers a user (`user.registered` with the optional `locale` and `phone` a user
    /// service may add); answers the user id.
    pub async fn register(
        &self,
        email: &str,
        name: &str,
        locale: Option<&str>,
        phone: Option<&str>,
    ) -> (Uuid, Envelope) {
        let id = Uuid::now_v7();
        let mut env = Envelope::new(&UserRegistered {
            user_id: id,
            email: email.into(),
            name: name.into(),
            phone: None,
        })
        .unwrap();
        if let Some(l) = locale {
            env.payload["locale"] = l.into();
        }
        if let Some(p) = phone {
            env.payload["phone"] = p.into();
        }
        env.payload["verification_url"] = format!("https://boxoffice.test/verify?u={id}").into();
        self.publish_envelope(contracts::topics::USERS, &env).await;
        (id, env)
    }

    pub fn admin(&self) -> String {
        self.issuer.token(Uuid::now_v7(), &[Role::Admin])
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value, String) {
        let mut req = self.server.client.get(self.server.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        answer(req.send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>) -> (u16, Value, String) {
        let mut req = self.server.client.post(self.server.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        answer(req.send().await.unwrap()).await
    }

    /// The log's deliveries to `user`.
    pub async fn deliveries_to(&self, user: Uuid) -> Vec<Value> {
        let (status, body, _) = self
            .get(
                &format!("/api/v1/notifications/deliveries?recipient_id={user}"),
                Some(&self.admin()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        body["deliveries"].as_array().unwrap().clone()
    }

    /// Messages the catcher holds for `address`, oldest first (Mailpit's listing).
    pub async fn mails_to(&self, address: &str) -> Vec<Value> {
        let list: Value = reqwest::get(self.mail.url("/api/v1/messages?limit=1000"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut out: Vec<Value> = list["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["To"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["Address"] == address)
            })
            .cloned()
            .collect();
        out.reverse();
        out
    }

    /// Waits until `address` has `n` messages; answers them.
    pub async fn wait_mails(&self, address: &str, n: usize) -> Vec<Value> {
        testing::eventually(&format!("{n} mails to {address}"), DEADLINE, || async {
            self.mails_to(address).await.len() >= n
        })
        .await;
        self.mails_to(address).await
    }

    /// The raw message with the catcher's id `id`.
    pub async fn raw(&self, id: &Value) -> Vec<u8> {
        reqwest::get(
            self.mail
                .url(&format!("/api/v1/message/{}/raw", id.as_str().unwrap())),
        )
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
    }

    /// Sets the catcher's fault switch over its HTTP API.
    pub async fn mail_fault(&self, mode: &str) {
        let r = reqwest::Client::new()
            .put(self.mail.url("/api/v1/sandbox/fault"))
            .json(&json!({"mode": mode}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
}

pub async fn answer(r: reqwest::Response) -> (u16, Value, String) {
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body, content_type)
}

/// What Python's standard `email` package (policy `default`, which decodes RFC 2047 words and
/// transfer encodings) reads in `raw`.
pub fn python_reads(raw: &[u8]) -> Value {
    use std::io::Write;
    const SCRIPT: &str = r#"
import email, email.policy, json, sys
m = email.message_from_bytes(sys.stdin.buffer.read(), policy=email.policy.default)
text = m.get_body(preferencelist=('plain',))
html = m.get_body(preferencelist=('html',))
to = m['To']
print(json.dumps({
    'subject': str(m['Subject']),
    'from_name': m['From'].addresses[0].display_name,
    'to_name': to.addresses[0].display_name,
    'to_address': to.addresses[0].addr_spec,
    'to_count': len(to.addresses),
    'bcc': m['Bcc'],
    'cc': m['Cc'],
    'message_id': m['Message-ID'],
    'text': text.get_content() if text else None,
    'html': html.get_content() if html else None,
    'defects': [str(d) for d in m.defects] + [str(d) for p in m.walk() for d in p.defects],
}))
"#;
    let mut child = std::process::Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is on the machine");
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until the SMS sandbox holds `n` messages to `to`.
pub async fn eventually_sms(app: &App, to: &str, n: usize) {
    testing::eventually(&format!("{n} SMS to {to}"), DEADLINE, || async {
        app.sms
            .outbox
            .messages()
            .iter()
            .filter(|m| m.to == to)
            .count()
            >= n
    })
    .await;
}

/// Waits until the log's delivery to `user` of `kind` by email satisfies `ok`; answers it.
pub async fn wait_delivery(
    app: &App,
    user: Uuid,
    kind: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let found = std::sync::Mutex::new(Value::Null);
    testing::eventually(what, DEADLINE, || async {
        let log = app.deliveries_to(user).await;
        match log
            .into_iter()
            .find(|d| d["kind"] == kind && d["channel"] == "email" && ok(d))
        {
            Some(d) => {
                *found.lock().unwrap() = d;
                true
            }
            None => false,
        }
    })
    .await;
    found.into_inner().unwrap()
}

/// A `performance.published` header starting at `starts_at`.
pub fn published(
    performance_id: Uuid,
    starts_at: chrono::DateTime<chrono::Utc>,
) -> contracts::events::PerformancePublished {
    contracts::events::PerformancePublished {
        performance_id,
        event_id: Uuid::now_v7(),
        venue_id: Uuid::now_v7(),
        starts_at,
        ticket_limit: 4,
        waiting_room: false,
        sale_opens_at: starts_at - chrono::Duration::days(30),
        sale_closes_at: starts_at,
        areas: vec![],
        prices: vec![],
        revision: 1,
        seat_chunks: 0,
        seat_count: 0,
        seat_digest: String::new(),
        cancellation_policy: None,
        organizer_id: None,
        presale: None,
    }
}
