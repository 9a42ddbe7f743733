//! Korean phone numbers, accepted in the ways people write them (`010-1234-5678`,
//! `01012345678`, `+82 10 1234 5678`, `02-345-6789`) and stored in E.164 (`+821012345678`), the
//! form SMS providers take.

/// A valid Korean phone number in E.164.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone(String);

/// Area codes of regional landlines (besides Seoul's `02`).
const AREA_CODES: &[&str] = &[
    "031", "032", "033", "041", "042", "043", "044", "051", "052", "053", "054", "055", "061",
    "062", "063", "064",
];

impl Phone {
    /// Parses `raw`, or says what is wrong with it.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const WRONG: &str = "is not a Korean phone number (e.g. 010-1234-5678)";
        let trimmed = raw.trim();
        if trimmed
            .chars()
            .any(|c| !(c.is_ascii_digit() || matches!(c, '-' | ' ' | '+' | '(' | ')')))
        {
            return Err(WRONG);
        }
        let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
        let national = if trimmed.starts_with('+') {
            let rest = digits.strip_prefix("82").ok_or(WRONG)?;
            // `+82 010...` is a common slip: the trunk 0 is dropped in international form.
            let rest = rest.strip_prefix('0').unwrap_or(rest);
            format!("0{rest}")
        } else {
            digits
        };
        if !national.starts_with('0') {
            return Err(WRONG);
        }
        let valid = if let Some(rest) = national.strip_prefix("010") {
            rest.len() == 8
        } else if ["011", "016", "017", "018", "019"]
            .iter()
            .any(|p| national.starts_with(p))
        {
            matches!(national.len() - 3, 7 | 8)
        } else if let Some(rest) = national.strip_prefix("02") {
            matches!(rest.len(), 7 | 8) && !rest.starts_with('0')
        } else if national.starts_with("070") || AREA_CODES.iter().any(|a| national.starts_with(a))
        {
            matches!(national.len() - 3, 7 | 8) && !national[3..].starts_with('0')
        } else {
            false
        };
        if !valid {
            return Err(WRONG);
        }
        Ok(Self(format!("+82{}", &national[1..])))
    }

    /// The number in E.164.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_spellings() {
        for ok in [
            "010-1234-5678",
            "01012345678",
            "010 1234 5678",
            "+82 10-1234-5678",
            "+82 010 1234 5678",
            "+821012345678",
        ] {
            assert_eq!(Phone::parse(ok).unwrap().as_str(), "+821012345678", "{ok}");
        }
        assert_eq!(Phone::parse("02-345-6789").unwrap().as_str(), "+8223456789");
        assert_eq!(
            Phone::parse("031-123-4567").unwrap().as_str(),
            "+82311234567"
        );
        assert_eq!(
            Phone::parse("011-123-4567").unwrap().as_str(),
            "+82111234567"
        );
    }

    #[test]
    fn refuses_others() {
        for bad in [
            "",
            "12345",
            "010-1234-567",
            "010-1234-56789",
            "+1 415 555 0100",
            "099-123-4567",
            "010-abcd-5678",
            "1588-1234",
        ] {
            assert!(Phone::parse(bad).is_err(), "{bad}");
        }
    }
}
