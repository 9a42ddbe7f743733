//! Display names: what the account is called on tickets and in mail.

/// A trimmed name of 1 to 100 characters without control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses `raw`, or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("is required");
        }
        if name.chars().count() > 100 {
            return Err("is longer than 100 characters");
        }
        if name.chars().any(char::is_control) {
            return Err("contains control characters");
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Consumes the name into its string.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_limits() {
        assert_eq!(DisplayName::parse(" 김민지 ").unwrap().as_str(), "김민지");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"가".repeat(101)).is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
    }
}
