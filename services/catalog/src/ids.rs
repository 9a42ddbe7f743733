//! Stable ids: a seeded row's id is a hash of its natural key, so seeding twice finds the same
//! rows. (UUID v5 would do the same; the workspace's `uuid` lacks its feature, so we use SHA-256
//! truncated to 128 bits with the version and variant bits set like v5's.)

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The id for `key` within `namespace` (e.g. `("venue", "jamsil")`).
pub fn stable(namespace: &str, key: &str) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"boxoffice.catalog/");
    h.update(namespace.as_bytes());
    h.update(b"/");
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x50;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_id() {
        assert_eq!(stable("venue", "jamsil"), stable("venue", "jamsil"));
        assert_ne!(stable("venue", "jamsil"), stable("event", "jamsil"));
        assert_eq!(stable("venue", "jamsil").get_version_num(), 5);
    }
}
