//! Which service owns which public path. The table follows ../shared/docs/api.md.

/// Services the gateway routes to.
pub const SERVICES: &[&str] = &[
    "user",
    "catalog",
    "seat",
    "admission",
    "order",
    "payment",
    "notification",
];

/// The upstream that serves `path`, or `None` when no service owns it.
pub fn upstream_for(path: &str) -> Option<&'static str> {
    // The first segments on the stack (this runs on every request): every pattern below looks
    // at five at most, and one more tells a longer path from an exact match.
    let mut segments = [""; 6];
    let mut len = 0;
    for segment in path.trim_start_matches('/').split('/') {
        if len == segments.len() {
            break;
        }
        segments[len] = segment;
        len += 1;
    }
    match &segments[..len] {
        [".well-known", "jwks.json"] => Some("user"),
        ["sandbox", "pg", ..] => Some("fake-pg"),
        ["sandbox", "oauth", ..] => Some("fake-oauth"),
        ["sandbox", "mail", ..] => Some("fake-mail"),
        ["sandbox", "sms", ..] => Some("fake-sms"),
        ["api", "v1", rest @ ..] => match rest {
            ["users", ..] | ["auth", ..] | ["admin", "users", ..] => Some("user"),
            ["events", ..] | ["venues", ..] => Some("catalog"),
            [
                "admin",
                "venues" | "events" | "performances" | "teams" | "audit" | "member-groups",
                ..,
            ] => Some("catalog"),
            ["performances", _, "queue", ..] => Some("admission"),
            // Only the order service takes a hold into checkout (it calls the seat service
            // directly): from outside, a buyer could otherwise stretch a hold to the checkout
            // TTL without ever ordering.
            ["holds", _, "checkout", ..] => None,
            ["performances", _, "seats", ..] | ["holds", ..] => Some("seat"),
            ["admin", "rooms" | "waiting-rooms", ..] => Some("admission"),
            ["orders", ..] | ["me", "orders", ..] | ["tickets", ..] => Some("order"),
            ["payments", ..] => Some("payment"),
            ["notifications", ..] | ["me", "notifications", ..] => Some("notification"),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::upstream_for;

    #[test]
    fn api_paths_reach_their_owner() {
        let cases = [
            ("/api/v1/users", Some("user")),
            ("/api/v1/users/me", Some("user")),
            ("/api/v1/auth/login", Some("user")),
            ("/.well-known/jwks.json", Some("user")),
            ("/api/v1/events", Some("catalog")),
            ("/api/v1/venues/1", Some("catalog")),
            ("/api/v1/admin/member-groups/1/members", Some("catalog")),
            ("/api/v1/admin/performances/1/publish", Some("catalog")),
            ("/api/v1/admin/teams/lg/organizers", Some("catalog")),
            ("/api/v1/admin/audit", Some("catalog")),
            ("/api/v1/performances/p1/queue", Some("admission")),
            ("/api/v1/performances/p1/queue/t", Some("admission")),
            ("/api/v1/performances/p1/seats", Some("seat")),
            ("/api/v1/performances/p1/seats/stream", Some("seat")),
            ("/api/v1/holds/h1", Some("seat")),
            ("/api/v1/holds/h1/checkout", None),
            ("/api/v1/holds/h1/checkout/", None),
            ("/api/v1/orders", Some("order")),
            ("/api/v1/me/orders", Some("order")),
            ("/api/v1/tickets/t1", Some("order")),
            ("/api/v1/payments/confirm", Some("payment")),
            ("/sandbox/pg/v1/sandbox/checkouts", Some("fake-pg")),
            ("/api/v1/nothing", None),
            ("/etc/passwd", None),
            ("/.well-known/jwks.json/x", None),
            ("/api/v1/holds/h1/checkout/a/b/c/d/e", None),
            ("/api/v1/performances/p1/seats/a/b/c/d/e", Some("seat")),
        ];
        for (path, want) in cases {
            assert_eq!(upstream_for(path), want, "{path}");
        }
    }
}
