//! The service's OpenAPI document, generated from the handlers' `#[utoipa::path]`
//! descriptions: [`openapi`] for the gateway to aggregate, and served at
//! `GET /api/docs/catalog/openapi.json` (public, like the listing).

pub use platform::openapi::{Bearer, Problem};

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Boxoffice catalog service",
        description = "What is sold: the public event listing and search, events, venues and their \
                       seat maps; the organizer/admin API that creates venues, events and \
                       performances and publishes them to the seat service."
    ),
    paths(
        super::public::list_events, super::public::event_detail, super::public::list_venues,
        super::public::venue_detail, super::admin::create_venue, super::admin::update_venue,
        super::admin::create_event, super::admin::event_detail, super::admin::update_event,
        super::admin::add_performance, super::admin::update_performance, super::admin::publish,
        super::admin::cancel, super::permissions::venue_grants, super::permissions::grant_venue,
        super::permissions::revoke_venue, super::permissions::team_accounts,
        super::permissions::grant_team, super::permissions::revoke_team,
        super::permissions::audit_log, super::sales::set_ticket_prices, super::sales::create_group,
        super::sales::add_members, super::sales::remove_member, super::sales::set_presale,
        super::sales::delete_presale, super::sales::generate_codes,
    ),
    components(schemas(
        Problem, crate::model::EventItem, crate::model::EventDetail, crate::model::VenueSummary,
        crate::model::VenueDetail, crate::model::PerformanceView, crate::domain::SaleStatus,
        crate::domain::EventKind, crate::domain::VenueKind, super::inputs::VenueInput,
        super::inputs::VenuePatch, super::inputs::EventInput, super::inputs::EventPatch,
        super::inputs::PerformanceInput, super::inputs::PerformancePatch,
        super::inputs::CancelInput, super::inputs::CancellationPolicyInput,
        super::permissions::Grants, super::permissions::AuditPage, crate::store::venues::Grant,
        crate::store::audit::Entry,
        crate::ticket_types::TicketPrice, crate::ticket_types::TicketPriceInput,
        crate::presale::GroupView, crate::presale::PresaleView, super::sales::TicketPricesInput,
        super::sales::TicketPricesView, super::sales::GroupInput, super::sales::MembersInput,
        super::sales::PresaleInput, super::sales::CodesInput, super::sales::CodesView,
    )),
    modifiers(&Bearer),
    tags(
        (name = "events", description = "The public event listing, search and event details"),
        (name = "venues", description = "Venues and their seat maps"),
        (name = "admin", description = "The organizer/admin API (bearer token with the `organizer` role; \
                                        organizers change what they created, admins anything)"),
    ),
)]
struct ApiDoc;

/// The service's OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/docs/catalog/openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    const METHODS: &[&str] = &[
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ];

    /// Routes served but not described: the document itself.
    const UNDOCUMENTED: &[(&str, &str)] = &[("get", "/api/docs/catalog/openapi.json")];

    /// `(method, path)` of every `.route(...)` of `router()`, read from the source of `mod.rs`,
    /// so that a route added there without a description fails [`every_route_is_documented`].
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let body = source
            .split("pub fn router(")
            .nth(1)
            .and_then(|rest| rest.split("\n}\n").next())
            .expect("mod.rs has `pub fn router(`");
        for unsupported in [".nest(", ".merge(", ".route_service(", ".nest_service("] {
            assert!(
                !body.contains(unsupported),
                "router() uses `{unsupported}`: teach this test to read it"
            );
        }
        let mut routes = BTreeSet::new();
        for chunk in body.split(".route(").skip(1) {
            let mut depth = 1;
            let end = chunk
                .char_indices()
                .find_map(|(i, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    (depth == 0).then_some(i)
                })
                .expect("a closed `.route(`");
            let args = &chunk[..end];
            let path = args.split('"').nth(1).expect("a path literal");
            let handlers = &args[args.find(',').expect("a method router")..];
            // Every identifier called as a function whose last segment is a method: `get(…)`,
            // `.patch(…)`, `routing::post(…)`.
            let mut ident = String::new();
            let mut found = false;
            for c in handlers.chars() {
                if c.is_alphanumeric() || c == '_' || c == ':' {
                    ident.push(c);
                    continue;
                }
                let name = ident.rsplit("::").next().unwrap_or_default();
                if c == '(' && METHODS.contains(&name) {
                    routes.insert((name.to_owned(), path.to_owned()));
                    found = true;
                }
                ident.clear();
            }
            assert!(found, "no method read for route {path}: {args}");
        }
        routes
    }

    fn document() -> Value {
        let text = serde_json::to_string(&openapi()).expect("the document serialises");
        serde_json::from_str(&text).expect("the document is JSON")
    }

    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let paths = doc["paths"].as_object().expect("paths");
        let mut out = Vec::new();
        for (path, item) in paths {
            for (method, op) in item.as_object().expect("a path item") {
                if METHODS.contains(&method.as_str()) {
                    out.push((method.clone(), path.clone(), op));
                }
            }
        }
        out
    }

    #[test]
    fn docs_serialise_with_the_title_tags_and_bearer_scheme() {
        let doc = document();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
        assert_eq!(doc["info"]["title"], "Boxoffice catalog service");
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        for name in ["Problem", "EventDetail", "VenueDetail", "PerformanceView"] {
            assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        }
        let tags: BTreeSet<&str> = doc["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .filter_map(|t| t["name"].as_str())
            .collect();
        assert_eq!(tags, BTreeSet::from(["admin", "events", "venues"]));
        for (method, path, op) in operations(&doc) {
            let tag = op["tags"][0].as_str().unwrap_or_default();
            assert!(tags.contains(tag), "{method} {path}: tag {tag:?}");
        }
    }

    #[test]
    fn every_route_is_documented_with_its_methods() {
        let routed = routed();
        assert!(routed.len() >= 13, "{routed:?}");
        let expected: BTreeSet<(String, String)> = routed
            .into_iter()
            .filter(|(m, p)| !UNDOCUMENTED.contains(&(m.as_str(), p.as_str())))
            .collect();
        let doc = document();
        let documented: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(m, p, _)| (m, p))
            .collect();
        assert_eq!(documented, expected);
        let ids: Vec<&str> = operations(&doc)
            .into_iter()
            .filter_map(|(_, _, op)| op["operationId"].as_str())
            .collect();
        let unique: BTreeSet<&str> = ids.iter().copied().collect();
        assert_eq!(ids.len(), unique.len(), "operation ids are unique: {ids:?}");
    }

    #[test]
    fn docs_answer_every_error_as_a_problem_and_secure_the_admin_api() {
        let doc = document();
        for (method, path, op) in operations(&doc) {
            let responses = op["responses"].as_object().expect("responses");
            let mut client_problems = 0;
            for (status, response) in responses {
                if !(status.starts_with('4') || status.starts_with('5')) {
                    continue;
                }
                let problem = &response["content"]["application/problem+json"]["schema"]["$ref"];
                assert_eq!(
                    problem, "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
                let description = response["description"].as_str().unwrap_or_default();
                assert!(
                    description.starts_with('`'),
                    "{method} {path} {status} names its codes: {description}"
                );
                if status.starts_with('4') {
                    client_problems += 1;
                }
            }
            assert!(client_problems > 0, "{method} {path} has no 4xx problem");
            let secured = op["security"] == serde_json::json!([{"bearer": []}]);
            let admin = path.starts_with("/api/v1/admin/");
            assert_eq!(secured, admin, "{method} {path} security");
            if admin {
                assert!(responses.contains_key("401"), "{method} {path} 401");
                assert!(responses.contains_key("403"), "{method} {path} 403");
            } else {
                assert!(responses.contains_key("304"), "{method} {path} 304");
            }
        }
    }
}
