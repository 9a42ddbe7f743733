//! The order service's rules, with no I/O: the order state machine ([`status`]), pricing
//! ([`pricing`]), ticket types on an order ([`ticket_types`]), the cancellation schedule
//! ([`policy`]) and ticket entry codes ([`code`]).

pub mod code;
pub mod policy;
pub mod pricing;
pub mod status;
pub mod ticket_types;
