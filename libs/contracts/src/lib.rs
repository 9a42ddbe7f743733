//! The language Boxoffice services speak to each other: the event [`Envelope`], the typed events
//! and the topics they travel on. Types only; no service logic lives here.
//!
//! ```
//! use contracts::{Envelope, events::UserRegistered};
//! let event = UserRegistered {
//!     user_id: uuid::Uuid::nil(),
//!     email: "fan@example.com".into(),
//!     name: "Kim".into(),
//!     phone: None,
//! };
//! let envelope = Envelope::new(&event).unwrap();
//! assert_eq!(envelope.event_type, "user.registered");
//! let back: UserRegistered = envelope.decode().unwrap();
//! assert_eq!(back, event);
//! ```

pub mod admission;
pub mod events;
pub mod policy;
pub mod tickets;
pub mod topics;

/// The envelope and the [`Event`] trait belong to the bus (`platform::bus::envelope`); the
/// contracts are what travels in it.
pub use platform::bus::envelope::{self, DecodeError, Envelope, Event};
