//! Topic names. One topic per producing service and aggregate; the key inside is the aggregate id.

/// Account lifecycle events from the user service (key: user id).
pub const USERS: &str = "boxoffice.users.v1";
/// Venue, event and performance events from the catalog (key: performance id).
pub const CATALOG: &str = "boxoffice.catalog.v1";
/// Seat inventory and hold events from the seat service (key: performance id).
pub const SEATS: &str = "boxoffice.seats.v1";
/// Order lifecycle events (key: order id).
pub const ORDERS: &str = "boxoffice.orders.v1";
/// Payment events (key: order id).
pub const PAYMENTS: &str = "boxoffice.payments.v1";
/// Notification delivery events (key: notification id).
pub const NOTIFICATIONS: &str = "boxoffice.notifications.v1";

/// Every topic the platform uses; created at start when the transport needs it.
pub const ALL: &[&str] = &[USERS, CATALOG, SEATS, ORDERS, PAYMENTS, NOTIFICATIONS];
