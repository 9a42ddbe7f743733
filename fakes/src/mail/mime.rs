//! Just enough of MIME (RFC 5322 headers, RFC 2045 transfer encodings, RFC 2046 multipart,
//! RFC 2047 encoded words) to show a received message as Mailpit does: decoded subject and
//! addresses, the text and HTML parts. Charsets other than UTF-8 and US-ASCII are shown as UTF-8
//! with replacement characters (the platform sends UTF-8 only).

use base64::{Engine, engine::general_purpose::STANDARD};

/// A parsed message (or part): unfolded headers in order, and the body's raw bytes.
#[derive(Debug, Clone, Default)]
pub struct Part {
    /// `(name, raw value)`, folding removed.
    pub headers: Vec<(String, String)>,
    /// The body, still transfer-encoded.
    pub body: Vec<u8>,
}

impl Part {
    /// Splits headers from body at the first empty line.
    pub fn parse(raw: &[u8]) -> Self {
        let (head, body) = split_head(raw);
        let head = String::from_utf8_lossy(head);
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim_start());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        Self {
            headers,
            body: body.to_vec(),
        }
    }

    /// The first header named `name` (case-insensitive), raw.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The media type, lower-case (default `text/plain`), and its parameters.
    fn content_type(&self) -> (String, Vec<(String, String)>) {
        let raw = self.header("Content-Type").unwrap_or("text/plain");
        let mut parts = raw.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| {
                (
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_owned(),
                )
            })
            .collect();
        (media, params)
    }

    /// The body with its transfer encoding undone, as text.
    pub fn decoded_text(&self) -> String {
        let enc = self
            .header("Content-Transfer-Encoding")
            .unwrap_or("7bit")
            .trim()
            .to_ascii_lowercase();
        let bytes = match enc.as_str() {
            "base64" => {
                let clean: Vec<u8> = self
                    .body
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                STANDARD.decode(clean).unwrap_or_default()
            }
            "quoted-printable" => quoted_printable(&self.body),
            _ => self.body.clone(),
        };
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The first `text/plain` and `text/html` parts, decoded, looking into multiparts.
    pub fn texts(&self) -> (Option<String>, Option<String>) {
        let (media, params) = self.content_type();
        if media.starts_with("multipart/") {
            let Some(boundary) = params.iter().find(|(k, _)| k == "boundary") else {
                return (None, None);
            };
            let (mut text, mut html) = (None, None);
            for raw in split_multipart(&self.body, &boundary.1) {
                let (t, h) = Part::parse(raw).texts();
                text = text.or(t);
                html = html.or(h);
            }
            (text, html)
        } else if media == "text/html" {
            (None, Some(self.decoded_text()))
        } else if media == "text/plain" {
            (Some(self.decoded_text()), None)
        } else {
            (None, None)
        }
    }
}

fn split_head(raw: &[u8]) -> (&[u8], &[u8]) {
    for (i, w) in raw.windows(2).enumerate() {
        if w == b"\n\n" {
            return (&raw[..i], &raw[i + 2..]);
        }
        if w == b"\r\n" && raw.get(i + 2..i + 4) == Some(b"\r\n") {
            return (&raw[..i], &raw[i + 4..]);
        }
    }
    (raw, &[])
}

/// The parts between `--boundary` lines, up to `--boundary--`.
fn split_multipart<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut start: Option<usize> = None;
    let mut pos = 0;
    while pos <= body.len() {
        let end = body[pos..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(body.len(), |i| pos + i);
        let line = &body[pos..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.starts_with(delim.as_bytes()) {
            if let Some(s) = start {
                // The part ends before the CRLF that precedes the delimiter.
                let mut e = pos;
                if e > s && body[e - 1] == b'\n' {
                    e -= 1;
                }
                if e > s && body[e - 1] == b'\r' {
                    e -= 1;
                }
                parts.push(&body[s..e]);
            }
            if line[delim.len()..].starts_with(b"--") {
                break;
            }
            start = Some((end + 1).min(body.len()));
        }
        pos = end + 1;
    }
    parts
}

fn quoted_printable(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b == b'=' {
            let next = body.get(i + 1..i + 3);
            match next {
                Some(b"\r\n") => i += 3,
                Some([b'\n', ..]) => i += 2,
                Some(h) if h.len() == 2 => {
                    match u8::from_str_radix(&String::from_utf8_lossy(h), 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 3;
                        }
                        Err(_) => {
                            out.push(b);
                            i += 1;
                        }
                    }
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    out
}

/// A header value with its RFC 2047 encoded words (`=?utf-8?B?...?=`, `=?utf-8?Q?...?=`)
/// decoded; whitespace between two adjacent encoded words is dropped, as the RFC says.
pub fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        let after = &rest[start + 2..];
        let Some(word) = encoded_word(after) else {
            out.push_str(before);
            out.push_str("=?");
            rest = after;
            last_was_word = false;
            continue;
        };
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&word.0);
        rest = &after[word.1..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

/// Decodes `charset?enc?text?=` at the start of `s`; answers the text and the bytes consumed.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let mut it = s.splitn(3, '?');
    let charset = it.next()?;
    let enc = it.next()?;
    let rest = it.next()?;
    let end = rest.find("?=")?;
    let text = &rest[..end];
    if text.contains(' ') || charset.is_empty() {
        return None;
    }
    let bytes = match enc {
        "B" | "b" => STANDARD.decode(text).ok()?,
        "Q" | "q" => quoted_printable(text.replace('_', " ").as_bytes()),
        _ => return None,
    };
    let consumed = charset.len() + 1 + enc.len() + 1 + end + 2;
    Some((String::from_utf8_lossy(&bytes).into_owned(), consumed))
}

/// `Name <a@b>`, `"Name" <a@b>`, `a@b`: the decoded name and the address.
pub fn mailbox(value: &str) -> (String, String) {
    let value = value.trim();
    if let (Some(open), true) = (value.rfind('<'), value.ends_with('>')) {
        let name = decode_words(value[..open].trim());
        let name = name.trim().trim_matches('"').replace("\\\"", "\"");
        (name, value[open + 1..value.len() - 1].trim().to_owned())
    } else {
        (String::new(), value.to_owned())
    }
}

/// A list of mailboxes (`To`, `Cc`), split at commas outside quotes and angle brackets.
pub fn mailboxes(value: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut cur) = (false, false, String::new());
    let mut prev = '\0';
    for c in value.chars() {
        match c {
            '"' if prev != '\\' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                if !cur.trim().is_empty() {
                    out.push(mailbox(&cur));
                }
                cur.clear();
                prev = c;
                continue;
            }
            _ => {}
        }
        cur.push(c);
        prev = c;
    }
    if !cur.trim().is_empty() {
        out.push(mailbox(&cur));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_decode_and_join() {
        assert_eq!(
            decode_words("=?utf-8?b?7JiI66ek?= =?utf-8?b?7ZmV7J24?="),
            "예매확인"
        );
        assert_eq!(
            decode_words("=?UTF-8?Q?caf=C3=A9_au_lait?="),
            "café au lait"
        );
        assert_eq!(decode_words("plain =? text"), "plain =? text");
        assert_eq!(
            mailbox("=?utf-8?b?6rmA66+87KSA?= <kim@example.com>"),
            ("김민준".to_owned(), "kim@example.com".to_owned())
        );
        assert_eq!(
            mailboxes("\"Lee, J\" <j@x.kr>, k@y.kr"),
            vec![
                ("Lee, J".to_owned(), "j@x.kr".to_owned()),
                (String::new(), "k@y.kr".to_owned())
            ]
        );
    }

    #[test]
    fn multipart_alternative_gives_both_texts() {
        let raw = b"Subject: x\r\nContent-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n7JWI64WV\r\n--b1\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n<p>a=3Db=\r\nc</p>\r\n--b1--\r\n";
        let (text, html) = Part::parse(raw).texts();
        assert_eq!(text.as_deref(), Some("안녕"));
        assert_eq!(html.as_deref(), Some("<p>a=bc</p>"));
    }
}
