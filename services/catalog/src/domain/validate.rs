//! Collecting what is wrong with a request, field by field, so one answer lists every problem.

use platform::problem::{ApiError, FieldError};

/// Most characters of a name or title.
pub const MAX_NAME: usize = 200;
/// Most characters of a description.
pub const MAX_TEXT: usize = 10_000;
/// Highest price of one ticket, KRW.
pub const MAX_PRICE_KRW: i64 = 10_000_000;
/// Highest per-buyer ticket limit.
pub const MAX_TICKET_LIMIT: i32 = 20;

/// The field errors found so far.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    /// No problems yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is wrong.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    /// Records a problem when `bad` holds.
    pub fn check(&mut self, bad: bool, field: impl Into<String>, message: impl Into<String>) {
        if bad {
            self.add(field, message);
        }
    }

    /// Checks a required name: not blank, at most `max` characters.
    pub fn name(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.add(field, "must not be blank");
        } else if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
    }

    /// Checks an identifier-like code: 1–40 of `a-z 0-9 _ -`.
    pub fn code(&mut self, field: &str, value: &str) {
        let ok = !value.is_empty()
            && value.len() <= 40
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        self.check(
            !ok,
            field,
            "must be 1-40 characters of a-z, 0-9, `_` and `-`",
        );
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many problems so far.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The fields named so far, in order.
    pub fn fields(&self) -> Vec<String> {
        self.0.iter().map(|e| e.field.clone()).collect()
    }

    /// `Ok(())` when nothing is wrong, else 400 `validation_failed` listing every field.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_every_field() {
        let mut p = Problems::new();
        p.name("title", " ", MAX_NAME);
        p.code("grades[0].code", "Blue Seat");
        p.code("grades[1].code", "blue");
        p.check(false, "never", "x");
        let e = p.finish().unwrap_err();
        assert_eq!(e.code, "validation_failed");
        let errors = e.body()["errors"].as_array().unwrap().clone();
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0]["field"], "title");
        assert!(Problems::new().finish().is_ok());
    }
}
