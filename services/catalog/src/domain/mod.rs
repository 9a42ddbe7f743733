//! The catalog's rules, free of I/O: kinds, statuses, teams, cancellation policies, permissions
//! and the validation of what organizers send.

pub mod kinds;
pub mod permissions;
pub mod policy;
pub mod seatmap;
pub mod status;
pub mod teams;
pub mod validate;

pub use kinds::{EventKind, VenueKind};
pub use status::{PerformanceState, SaleStatus};
