//! Rules for text that goes into headers and messages: no control characters in a header (a
//! name with CR/LF must not start a header of its own), amounts in won, times in Korea's.

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};

use super::Locale;

/// `text` fit for one header line: every control character (CR, LF, TAB, NUL, ...) becomes a
/// space, runs of spaces collapse, and the result is at most `max` characters.
pub fn header_safe(text: &str, max: usize) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cleaned
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(max)
        .collect()
}

/// `150,000`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// An amount as a reader of `locale` expects it: `150,000원`, `₩150,000`.
pub fn won(amount: i64, locale: Locale) -> String {
    match locale {
        Locale::Ko => format!("{}원", thousands(amount)),
        Locale::En => format!("₩{}", thousands(amount)),
    }
}

/// Korea Standard Time (no daylight saving).
pub const KST: FixedOffset = match FixedOffset::east_opt(9 * 3600) {
    Some(offset) => offset,
    None => panic!("9 hours is within FixedOffset's range"),
};

/// A moment in Korean time, worded for `locale`: `2026년 12월 3일 (목) 18:30`,
/// `Thu 3 Dec 2026, 18:30 KST`.
pub fn when(at: DateTime<Utc>, locale: Locale) -> String {
    let t = at.with_timezone(&KST);
    match locale {
        Locale::Ko => {
            let day = ["월", "화", "수", "목", "금", "토", "일"]
                [t.weekday().num_days_from_monday() as usize];
            format!(
                "{}년 {}월 {}일 ({day}) {:02}:{:02}",
                t.year(),
                t.month(),
                t.day(),
                t.hour(),
                t.minute()
            )
        }
        Locale::En => format!("{} KST", t.format("%a %-d %b %Y, %H:%M")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_lose_line_breaks_and_controls() {
        assert_eq!(
            header_safe("Kim\r\nBcc: evil@example.com", 100),
            "Kim Bcc: evil@example.com"
        );
        assert_eq!(header_safe("a\0b\tc\u{7f}d", 100), "a b c d");
        assert_eq!(header_safe("김민준", 2), "김민");
    }

    #[test]
    fn money_and_time_read_naturally() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(150_000), "150,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
        assert_eq!(won(152_000, Locale::Ko), "152,000원");
        assert_eq!(won(152_000, Locale::En), "₩152,000");
        let at = DateTime::parse_from_rfc3339("2026-12-03T09:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(when(at, Locale::Ko), "2026년 12월 3일 (목) 18:30");
        assert_eq!(when(at, Locale::En), "Thu 3 Dec 2026, 18:30 KST");
    }
}
