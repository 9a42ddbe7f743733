//! The admission service: waiting rooms for sale openings. Its queue arrives with its issue;
//! today it starts and answers the operational endpoints.

use axum::Router;
use platform::{
    http::Readiness,
    service::{Infra, Service, StartError},
};
use serde::Deserialize;

/// The service's name and config section.
pub const NAME: &str = "admission";

/// Settings (`admission.*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {}

/// Builds the service's routes.
pub async fn start(_config: &Config, _infra: &Infra) -> Result<Service, StartError> {
    Ok(Service {
        name: NAME,
        router: Router::new(),
        readiness: Readiness::default(),
        tasks: Vec::new(),
    })
}
