//! Which PG the service calls when none is given: the sandbox's fake in sandbox mode (the
//! platform's `fake-pg` address and key), none outside it unless configured (confirms answer
//! 503 `pg_not_configured`), and never the sandbox's key outside sandbox mode.

use payment::{Config, Overrides};
use platform::testing::{self, TestIssuer};
use uuid::Uuid;

use crate::helpers::{App, config, paydb};

async fn start(config: Config, fake: &fakes::pg::Running, directory: bool) -> App {
    let mut infra = testing::infra("paysandbox");
    if directory {
        infra
            .directory
            .0
            .insert("fake-pg".into(), fake.base_url.clone());
    }
    let issuer = TestIssuer::default();
    let overrides = Overrides {
        verifier: Some(issuer.verifier()),
        gateway: None,
    };
    let service = payment::start_with(&config, &infra, overrides)
        .await
        .unwrap();
    let server = testing::serve(service, infra.shutdown.clone()).await;
    let pool = paydb(&infra).await;
    App::without_counting(server, infra, issuer, pool, config)
}

#[tokio::test]
async fn sandbox_mode_pays_through_the_platforms_fake_pg() {
    let fake = fakes::pg::spawn(fakes::pg::Options::default())
        .await
        .unwrap();
    let mut cfg = config();
    cfg.sandbox = true;
    let app = start(cfg, &fake, true).await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 9_000).await;
    let key = app.checkout_at(&fake, order, 9_000).await;
    let a = app.confirm(buyer, "k", &key, order, 9_000).await;
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (200, Some("approved")),
        "{a:?}"
    );
    assert_eq!(fake.control.payment(&key).unwrap()["status"], "DONE");
}

#[tokio::test]
async fn without_sandbox_mode_an_unconfigured_pg_is_off_and_the_sandbox_key_is_refused() {
    let fake = fakes::pg::spawn(fakes::pg::Options::default())
        .await
        .unwrap();
    let app = start(config(), &fake, true).await;
    let buyer = Uuid::now_v7();
    let order = app.order(buyer, 9_000).await;
    let key = app.checkout_at(&fake, order, 9_000).await;
    let a = app.confirm(buyer, "k", &key, order, 9_000).await;
    assert_eq!(
        (a.status, a.body["code"].as_str()),
        (503, Some("pg_not_configured"))
    );
    assert_eq!(a.content_type, "application/problem+json");
    assert_eq!(fake.control.payment(&key).unwrap()["status"], "READY");
    // The sandbox's key pointed at the fake by hand: refused at start, not used quietly.
    let mut cfg = config();
    cfg.pg.base_url = Some(fake.base_url.clone());
    cfg.pg.secret_key = Some(payment::config::SANDBOX_SECRET_KEY.into());
    let infra = testing::infra("paysandbox");
    let overrides = Overrides {
        verifier: Some(TestIssuer::default().verifier()),
        gateway: None,
    };
    let refused = payment::start_with(&cfg, &infra, overrides).await;
    let Err(e) = refused else {
        panic!("started with the sandbox key outside sandbox mode")
    };
    assert!(
        e.to_string().contains("refused outside sandbox mode"),
        "{e}"
    );
}
