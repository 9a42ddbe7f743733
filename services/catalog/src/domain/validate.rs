//! Collecting what is wrong with a request, field by field, so one answer lists every problem;
//! and the bounds on everything an organizer's body can make grow (docs/services/catalog.md,
//! "Bounds").

use platform::problem::{ApiError, FieldError};
use serde_json::Value;

/// Most characters of a name or title.
pub const MAX_NAME: usize = 200;
/// Most characters of a description.
pub const MAX_TEXT: usize = 10_000;
/// Highest price of one ticket, KRW.
pub const MAX_PRICE_KRW: i64 = 10_000_000;
/// Highest per-buyer ticket limit.
pub const MAX_TICKET_LIMIT: i32 = 20;
/// Most seats of one venue: the largest Korean venues (Seoul Olympic Stadium, about 70,000 in a
/// concert layout; Seoul World Cup Stadium, 66,704) with margin.
pub const MAX_VENUE_SEATS: i64 = 100_000;
/// Most grades of one venue.
pub const MAX_GRADES: usize = 50;
/// Most areas (sections, blocks, standing areas) of one venue.
pub const MAX_AREAS: usize = 1_000;
/// Most rows of one seated area.
pub const MAX_ROWS: usize = 200;
/// Most seats in one row.
pub const MAX_ROW_SEATS: i32 = 500;
/// Most places in one standing area.
pub const MAX_STANDING: i32 = 200_000;
/// Highest grade rank (lowest is 0); a seat's rank is the grade's × 1000 plus its row.
pub const MAX_RANK: i32 = 1_000;
/// Largest absolute plan coordinate (`x`, `y`, `width`, `height`, any number of a geometry or
/// plan).
pub const MAX_COORD: f64 = 1_000_000.0;
/// Most points of one area's polygon.
pub const MAX_POLYGON_POINTS: usize = 1_000;
/// Most performances of one event.
pub const MAX_PERFORMANCES: i64 = 1_000;
/// Most sale windows of one performance.
pub const MAX_SALE_WINDOWS: usize = 10;
/// Most characters of a cancellation reason.
pub const MAX_REASON: usize = 500;

/// What a text field may hold besides printable characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// Names, titles, codes, labels, ids: one line, no control character (C0, U+007F, C1) and
    /// no bidirectional override or isolate (U+202A–U+202E, U+2066–U+2069).
    Line,
    /// Free text (a description, a reason): tab, line feed and carriage return are allowed,
    /// other control characters are not.
    Free,
}

/// Whether `c` is a bidirectional embedding, override or isolate (which can make a name read
/// differently from what it is).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The first character `kind` refuses in `value`, if any.
pub fn refused_char(value: &str, kind: TextKind) -> Option<char> {
    value.chars().find(|&c| match kind {
        TextKind::Line => c.is_control() || is_bidi_control(c),
        TextKind::Free => c.is_control() && !matches!(c, '\t' | '\n' | '\r'),
    })
}

/// Most JSON values (numbers, strings, arrays, objects…) in one plan or geometry.
pub const MAX_DRAWING_VALUES: usize = 10_000;

fn drawing_string(s: &str) -> Result<(), String> {
    if refused_char(s, TextKind::Line).is_some() {
        return Err("must not hold control characters or bidirectional overrides".into());
    }
    if s.chars().count() > MAX_NAME {
        return Err(format!("must not hold strings over {MAX_NAME} characters"));
    }
    Ok(())
}

fn walk_drawing(value: &Value, count: &mut usize) -> Result<(), String> {
    *count += 1;
    if *count > MAX_DRAWING_VALUES {
        return Err(format!("must hold at most {MAX_DRAWING_VALUES} values"));
    }
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(v) if v.is_finite() && v.abs() <= MAX_COORD => Ok(()),
            _ => Err(format!("numbers must be from -{MAX_COORD} to {MAX_COORD}")),
        },
        Value::String(s) => drawing_string(s),
        Value::Array(items) => items.iter().try_for_each(|v| walk_drawing(v, count)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            drawing_string(k)?;
            walk_drawing(v, count)
        }),
        Value::Null | Value::Bool(_) => Ok(()),
    }
}

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

    /// Checks the characters and length of any text field: at most `max` characters, none that
    /// `kind` refuses. Every text field goes through here. True when it is fine.
    pub fn text(&mut self, field: &str, value: &str, max: usize, kind: TextKind) -> bool {
        if let Some(c) = refused_char(value, kind) {
            let what = if kind == TextKind::Free {
                "control characters other than tab and line breaks"
            } else {
                "control characters or bidirectional overrides"
            };
            self.add(
                field,
                format!("must not hold {what} (found U+{:04X})", u32::from(c)),
            );
            false
        } else if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
            false
        } else {
            true
        }
    }

    /// Checks a required name: not blank, one line, at most `max` characters.
    pub fn name(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.add(field, "must not be blank");
        } else {
            self.text(field, value, max, TextKind::Line);
        }
    }

    /// Checks an optional one-line text (may be empty): at most `max` characters.
    pub fn line(&mut self, field: &str, value: &str, max: usize) {
        self.text(field, value, max, TextKind::Line);
    }

    /// Checks an identifier-like code: 1–40 of `a-z 0-9 _ -`.
    pub fn code(&mut self, field: &str, value: &str) {
        if !self.text(field, value, 40, TextKind::Line) {
            return;
        }
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

    /// Checks a drawing (a plan or an area's geometry) as a whole: every number within
    /// ±[`MAX_COORD`], every string (key or value) one line of at most [`MAX_NAME`] characters,
    /// at most [`MAX_DRAWING_VALUES`] values. Reports the first fault only.
    pub fn drawing(&mut self, field: &str, value: &Value) {
        let mut count = 0usize;
        if let Err(why) = walk_drawing(value, &mut count) {
            self.add(field, why);
        }
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

    #[test]
    fn control_characters_are_refused_by_kind() {
        for bad in [
            "a\u{1}b",
            "a\tb",
            "a\nb",
            "del\u{7f}",
            "c1\u{85}",
            "\u{202E}evil",
            "x\u{2066}",
        ] {
            assert!(refused_char(bad, TextKind::Line).is_some(), "{bad:?}");
        }
        for ok in ["두산 베어스", "LG Twins", "R석 (1층)", "שלום"] {
            assert_eq!(refused_char(ok, TextKind::Line), None, "{ok:?}");
        }
        assert_eq!(refused_char("line\r\nnext\tcol", TextKind::Free), None);
        assert_eq!(refused_char("bell\u{7}", TextKind::Free), Some('\u{7}'));
        assert_eq!(refused_char("esc\u{1b}[", TextKind::Free), Some('\u{1b}'));
        let mut p = Problems::new();
        p.name("name", "Hall\u{1b}One", MAX_NAME);
        p.code("code", "a\u{0}");
        p.text("description", "ok\nfine", MAX_TEXT, TextKind::Free);
        assert_eq!(p.fields(), vec!["name", "code"]);
    }

    #[test]
    fn drawings_are_bounded() {
        let mut p = Problems::new();
        p.drawing(
            "ok",
            &serde_json::json!({"width": 1000, "stage": [[-5.5, 1e6]], "shape": "arena"}),
        );
        p.drawing(
            "huge",
            &serde_json::json!({"polygon": [[0, 1e300], [1, 1], [2, 2]]}),
        );
        p.drawing("text", &serde_json::json!({"shape": "a\u{202E}b"}));
        p.drawing(
            "many",
            &serde_json::json!({"stage": vec![0; MAX_DRAWING_VALUES]}),
        );
        assert_eq!(p.fields(), vec!["huge", "text", "many"]);
    }
}
