//! The password policy (NIST SP 800-63B style): at least 10 characters, at most 128, and not one
//! of the commonly used passwords shipped in `common_passwords.txt`. No composition rules.

use std::{collections::HashSet, fmt, sync::OnceLock};

/// The shortest accepted password, in characters.
pub const MIN_CHARS: usize = 10;
/// The longest accepted password, in characters (bounds the hashing work an attacker can cause).
pub const MAX_CHARS: usize = 128;

/// A password that meets the policy. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

fn common() -> &'static HashSet<String> {
    static LIST: OnceLock<HashSet<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("common_passwords.txt")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_lowercase)
            .collect()
    })
}

impl Password {
    /// Checks `raw` against the policy; `email` is refused as a password too.
    pub fn parse(raw: &str, email: Option<&str>) -> Result<Self, &'static str> {
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err("must be at least 10 characters long");
        }
        if chars > MAX_CHARS {
            return Err("must be at most 128 characters long");
        }
        if raw.trim().is_empty() {
            return Err("must not be only spaces");
        }
        let lower = raw.to_lowercase();
        if common().contains(&lower) || common().contains(lower.trim()) {
            return Err("is too common; choose a less guessable password");
        }
        if let Some(email) = email
            && (lower == email.to_lowercase()
                || email
                    .split('@')
                    .next()
                    .is_some_and(|local| local.len() >= MIN_CHARS && lower == local))
        {
            return Err("must not be your email address");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The secret, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_bounds() {
        assert!(Password::parse("short-pw1", None).is_err());
        assert!(Password::parse("long enough pass", None).is_ok());
        assert!(Password::parse(&"x7".repeat(65), None).is_err());
        // Characters, not bytes: 10 Hangul syllables pass.
        assert!(Password::parse("가나다라마바사아자차", None).is_ok());
    }

    #[test]
    fn common_passwords_are_refused_in_any_case() {
        for p in ["1234567890", "Password123", "QWERTYUIOP", "1q2w3e4r5t"] {
            assert_eq!(
                Password::parse(p, None).unwrap_err(),
                "is too common; choose a less guessable password"
            );
        }
        assert!(common().len() > 100);
    }

    #[test]
    fn email_is_not_a_password() {
        assert!(Password::parse("fan@example.com", Some("fan@example.com")).is_err());
    }

    #[test]
    fn debug_hides_the_secret() {
        let p = Password::parse("correct horse battery", None).unwrap();
        assert!(!format!("{p:?}").contains("horse"));
    }
}
