//! Starting the service (and the sandbox provider) for one test, and small HTTP helpers.

use platform::{
    auth::{Claims, Verifier},
    service::Service,
    testing::{self, TestServer},
};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use user::config::{Argon2Settings, Config};

pub const ADMIN_EMAIL: &str = "admin@boxoffice.test";
pub const ADMIN_PASSWORD: &str = "admin-secret-passphrase";
pub const PASSWORD: &str = "correct horse battery";
/// Where the sandbox provider sends the browser back (the test follows it by hand).
pub const REDIRECT_BASE: &str = "http://boxoffice.test";

/// A running user service with its sandbox provider.
pub struct App {
    pub server: TestServer,
    pub oauth: TestServer,
    pub db: sqlx::PgPool,
    pub client: reqwest::Client,
}

/// Settings for tests: cheap hashing, the sandbox provider at `oauth_base`.
pub fn config(oauth_base: &str) -> Config {
    let mut c = Config {
        admin_email: Some(ADMIN_EMAIL.into()),
        admin_password: Some(ADMIN_PASSWORD.into()),
        argon2: Argon2Settings {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1,
        },
        ..Config::default()
    };
    c.sandbox = true;
    c.oauth.sandbox_url = Some(oauth_base.into());
    c.oauth.redirect_base = Some(REDIRECT_BASE.into());
    c
}

/// The fake provider for tests: it sends browsers back only to the callbacks under
/// [`REDIRECT_BASE`], and besides the sandbox clients registers one "real" client per provider
/// (see [`configure_real`]).
pub fn fake_options() -> fakes::oauth::Options {
    let mut options = fakes::oauth::Options::with_redirect_uris(
        ["kakao", "naver", "google"]
            .map(|p| format!("{REDIRECT_BASE}/api/v1/auth/oauth/{p}/callback")),
    );
    for p in ["kakao", "naver", "google"] {
        options.clients.push(fakes::oauth::Client {
            provider: p.into(),
            id: format!("registered-{p}"),
            secret: format!("registered-{p}-secret"),
        });
    }
    options
}

/// Configures `provider` as registered for real (a client id and secret of its own, so its
/// identities are not sandbox ones), with its endpoints at the fake provider of `c`.
pub fn configure_real(c: &mut Config, provider: &str) {
    let base = format!(
        "{}/{provider}",
        c.oauth.sandbox_url.clone().unwrap_or_default()
    );
    let p = match provider {
        "kakao" => &mut c.oauth.kakao,
        "naver" => &mut c.oauth.naver,
        _ => &mut c.oauth.google,
    };
    p.client_id = Some(format!("registered-{provider}"));
    p.client_secret = Some(format!("registered-{provider}-secret"));
    p.authorize_url = Some(format!("{base}/authorize"));
    p.token_url = Some(format!("{base}/token"));
    p.userinfo_url = Some(format!("{base}/userinfo"));
    p.jwks_url = Some(format!("{base}/jwks.json"));
    p.issuer = Some(format!("{}/{provider}", fakes::oauth::ISSUER_BASE));
}

/// Starts the sandbox provider and the service with the test settings.
pub async fn spawn() -> App {
    spawn_with(|_| {}).await
}

/// Like [`spawn`], with the settings adjusted by `adjust`.
pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> App {
    let oauth = testing::serve(
        Service {
            name: "fake-oauth",
            router: fakes::oauth::router(fake_options()),
            readiness: Default::default(),
            tasks: Vec::new(),
        },
        Default::default(),
    )
    .await;
    let mut cfg = config(&oauth.base_url);
    adjust(&mut cfg);
    let infra = testing::infra("user");
    let prefix = infra.database.name_prefix.clone();
    let service = user::start(&cfg, &infra).await.expect("the service starts");
    let server = testing::serve(service, infra.shutdown.clone()).await;
    let db = sqlx::PgPool::connect(&format!("{}/{prefix}user", testing::database_url()))
        .await
        .expect("test database");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    App {
        server,
        oauth,
        db,
        client,
    }
}

impl App {
    pub fn url(&self, path: &str) -> String {
        self.server.url(path)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn post_auth(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// Signs up `email` with [`PASSWORD`]; returns the new id.
    pub async fn sign_up(&self, email: &str) -> String {
        let r = self
            .post(
                "/api/v1/users",
                &json!({"email": email, "password": PASSWORD, "name": "Kim Minji"}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
        json_of(r).await["id"].as_str().expect("id").to_owned()
    }

    /// Logs in; returns the token pair.
    pub async fn login(&self, email: &str, password: &str) -> Value {
        let r = self
            .post(
                "/api/v1/auth/login",
                &json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK, "login of {email}");
        json_of(r).await
    }

    /// An access token of the administrator.
    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await["access_token"]
            .as_str()
            .expect("token")
            .to_owned()
    }

    /// Verifies `token` as another service would: with the published JWKS only.
    pub async fn verify(&self, token: &str) -> Result<Claims, platform::auth::AuthError> {
        Verifier::remote(self.url("/.well-known/jwks.json"))
            .verify_async(token)
            .await
    }
}

pub async fn json_of(r: Response) -> Value {
    r.json().await.expect("a JSON body")
}

/// Asserts a problem+json answer with `status` and `code`; returns the body.
pub async fn problem(r: Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(r.status(), status);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(ct, "application/problem+json");
    let body = json_of(r).await;
    assert_eq!(body["code"], code, "{body}");
    body
}
