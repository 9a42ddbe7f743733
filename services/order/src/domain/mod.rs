//! The order service's rules, with no I/O: the order state machine ([`status`]), pricing
//! ([`pricing`]), the cancellation schedule ([`policy`]) and ticket entry codes ([`code`]).

pub mod code;
pub mod policy;
pub mod pricing;
pub mod status;
