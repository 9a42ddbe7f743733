//! The envelope every event travels in, and the [`Event`] trait that ties a payload type to its
//! name, version, topic and key.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// One event as it is stored in an outbox and sent over the bus.
///
/// `key` is the aggregate id (performance id for seat events, order id for order events); the bus
/// keeps order per key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique id of this event; consumers deduplicate on it.
    pub id: Uuid,
    /// Event type name, e.g. `user.registered`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Schema version of the payload.
    pub version: u16,
    /// When the state change happened (UTC).
    pub occurred_at: DateTime<Utc>,
    /// Partitioning key: the aggregate id.
    pub key: String,
    /// The event payload.
    pub payload: serde_json::Value,
}

/// A typed event payload: knows its name, version, topic and key.
pub trait Event: Serialize + DeserializeOwned {
    /// Event type name carried in [`Envelope::event_type`].
    const TYPE: &'static str;
    /// Payload schema version.
    const VERSION: u16;
    /// Topic the event is published on.
    const TOPIC: &'static str;
    /// The aggregate id used as the partitioning key.
    fn key(&self) -> String;
}

/// Why an envelope could not be read as the requested event type.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The envelope holds another event type.
    #[error("envelope holds `{found}`, expected `{expected}`")]
    WrongType {
        /// The type asked for.
        expected: &'static str,
        /// The type found.
        found: String,
    },
    /// The envelope holds a newer payload version than this code understands.
    #[error("`{event_type}` version {found} is newer than the supported {supported}")]
    UnsupportedVersion {
        /// The event type.
        event_type: String,
        /// The version found.
        found: u16,
        /// The highest version understood.
        supported: u16,
    },
    /// The payload does not match the type.
    #[error("payload of `{event_type}` is malformed: {source}")]
    Payload {
        /// The event type.
        event_type: String,
        /// The underlying error.
        source: serde_json::Error,
    },
}

impl Envelope {
    /// Wraps a typed event in a new envelope with a fresh time-ordered id.
    pub fn new<E: Event>(event: &E) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: Uuid::now_v7(),
            event_type: E::TYPE.to_owned(),
            version: E::VERSION,
            occurred_at: Utc::now(),
            key: event.key(),
            payload: serde_json::to_value(event)?,
        })
    }

    /// Reads the payload as `E`, checking the type name and version first.
    pub fn decode<E: Event>(&self) -> Result<E, DecodeError> {
        if self.event_type != E::TYPE {
            return Err(DecodeError::WrongType {
                expected: E::TYPE,
                found: self.event_type.clone(),
            });
        }
        if self.version > E::VERSION {
            return Err(DecodeError::UnsupportedVersion {
                event_type: self.event_type.clone(),
                found: self.version,
                supported: E::VERSION,
            });
        }
        serde_json::from_value(self.payload.clone()).map_err(|source| DecodeError::Payload {
            event_type: self.event_type.clone(),
            source,
        })
    }

    /// True when this envelope carries events of type `E`.
    pub fn is<E: Event>(&self) -> bool {
        self.event_type == E::TYPE
    }
}
