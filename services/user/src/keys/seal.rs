//! Signing-key seeds at rest: sealed with XChaCha20-Poly1305 under the key-encryption key
//! (`user.tokens.key_encryption_key`), the key id as associated data, so a row's seed cannot be
//! read, changed or moved to another key id without the KEK. A sealed seed is stored as
//! `nonce (24 bytes) || ciphertext and tag (48 bytes)`, next to the id of the KEK that sealed it.

use std::{io::Write, path::Path};

use chacha20poly1305::{
    XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Deserializer};

const NONCE_LEN: usize = 24;

/// The key that encrypts signing-key seeds in UserDB: 32 bytes, configured as base64. Its
/// [`id`](Self::id) (a keyed hash, not the key) is stored with every seed it sealed, so a wrong
/// key is named at start rather than found by a failed decryption. Never printed.
#[derive(Clone)]
pub struct Kek {
    key: [u8; 32],
    id: String,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Kek({})", self.id)
    }
}

/// Why a seed could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SealError(String);

impl From<String> for SealError {
    fn from(why: String) -> Self {
        Self(why)
    }
}

impl Kek {
    /// The KEK with these bytes.
    pub fn from_bytes(key: [u8; 32]) -> Self {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"boxoffice user signing-key KEK id");
        let digest = mac.finalize().into_bytes();
        let id = digest[..6]
            .iter()
            .fold(String::from("kek-"), |s, b| s + &format!("{b:02x}"));
        Self { key, id }
    }

    /// A fresh random KEK.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self::from_bytes(key)
    }

    /// Parses 32 bytes in base64 (standard or URL-safe alphabet, padded or not).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        use base64::Engine as _;
        let text = text.trim();
        let engines = [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ];
        let bytes = engines
            .iter()
            .find_map(|e| e.decode(text).ok())
            .ok_or("is not base64 (make one with `openssl rand -base64 32`)")?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            format!(
                "must be 32 bytes in base64, not {} (make one with `openssl rand -base64 32`)",
                b.len()
            )
        })?;
        Ok(Self::from_bytes(key))
    }

    /// The key in standard base64.
    pub fn to_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.key)
    }

    /// The KEK's id, stored with each seed it sealed: `kek-` and 12 hex digits.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The KEK kept in `path` (standalone's data folder), made (readable by its owner only)
    /// when the file does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, String> {
        let shown = path.display();
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::from_base64(&text).map_err(|e| format!("{shown} {e}")),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!("reading {shown}: {e}"));
            }
            Err(_) => {}
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let kek = Self::generate();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options
            .open(path)
            .and_then(|mut f| f.write_all(format!("{}\n", kek.to_base64()).as_bytes()));
        match written {
            Ok(()) => {
                tracing::info!(path = %shown, kek = kek.id(), "made a key-encryption key");
                Ok(kek)
            }
            // Another process made it first: use theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(path),
            Err(e) => Err(format!("writing {shown}: {e}")),
        }
    }

    fn cipher(&self) -> Result<XChaCha20Poly1305, SealError> {
        XChaCha20Poly1305::new_from_slice(&self.key).map_err(|e| SealError(e.to_string()))
    }

    /// Seals the seed of key `kid`.
    pub fn seal(&self, kid: &str, seed: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()?
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: seed,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| SealError(format!("sealing the seed of key {kid} failed")))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    /// Opens a seed sealed for key `kid`; fails if it was sealed under another KEK, for another
    /// key id, or changed.
    pub fn open(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let bad = || {
            SealError(format!(
                "the seed of key {kid} does not open with key-encryption key {}: it was changed \
                 or sealed under another key",
                self.id
            ))
        };
        if sealed.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| bad())?;
        self.cipher()?
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: kid.as_bytes(),
                },
            )
            .map_err(|_| bad())
    }
}

impl<'de> Deserialize<'de> for Kek {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_base64(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_open_only_with_their_kek_and_key_id() {
        let kek = Kek::generate();
        let seed = [7u8; 32];
        let sealed = kek.seal("k1", &seed).unwrap();
        assert_eq!(sealed.len(), 24 + 32 + 16);
        assert!(
            !sealed.windows(32).any(|w| w == seed),
            "the seed is not in the clear"
        );
        assert_eq!(kek.open("k1", &sealed).unwrap(), seed);
        // Two seals of one seed differ (fresh nonces).
        assert_ne!(kek.seal("k1", &seed).unwrap(), sealed);
        // Another KEK, another key id, a flipped bit, a truncated row: refused.
        assert!(Kek::generate().open("k1", &sealed).is_err());
        assert!(kek.open("k2", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(kek.open("k1", &flipped).is_err());
        assert!(kek.open("k1", &sealed[..20]).is_err());
    }

    #[test]
    fn keks_parse_from_base64_and_name_themselves_without_showing_the_key() {
        let kek = Kek::generate();
        let text = kek.to_base64();
        let again = Kek::from_base64(&format!(" {text}\n")).unwrap();
        assert_eq!(again.id(), kek.id());
        assert!(kek.id().starts_with("kek-") && kek.id().len() == 16);
        assert_ne!(Kek::generate().id(), kek.id());
        let url_safe = text.replace('+', "-").replace('/', "_");
        assert_eq!(
            Kek::from_base64(url_safe.trim_end_matches('='))
                .unwrap()
                .id(),
            kek.id()
        );
        assert!(
            Kek::from_base64("c2hvcnQ=")
                .unwrap_err()
                .contains("32 bytes")
        );
        assert!(Kek::from_base64("not base64 at all!").is_err());
        let shown = format!("{kek:?}");
        assert!(!shown.contains(&text) && shown.contains(kek.id()));
    }

    #[test]
    fn a_kek_file_is_made_once_and_read_after() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("kek");
        let made = Kek::load_or_create(&path).unwrap();
        assert_eq!(Kek::load_or_create(&path).unwrap().id(), made.id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "garbage").unwrap();
        assert!(
            Kek::load_or_create(&path).is_err(),
            "never a silent new key"
        );
    }
}
