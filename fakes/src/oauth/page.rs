//! The sandbox provider's sign-in page: plain HTML with one form.

use super::AuthorizeParams;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// Percent-encodes a query value.
pub fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        r#"<input type="hidden" name="{name}" value="{}">"#,
        escape(value)
    )
}

/// The page that asks who signs in and whether to share the account with the client.
pub fn sign_in(provider: &str, p: &AuthorizeParams) -> String {
    let title = match provider {
        "kakao" => "Kakao",
        "naver" => "Naver",
        _ => "Google",
    };
    let fields = [
        ("response_type", p.response_type.as_str()),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", &p.state),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
        ("nonce", p.nonce.as_deref().unwrap_or_default()),
        ("email_valid", p.email_valid.as_deref().unwrap_or("true")),
    ]
    .iter()
    .map(|(k, v)| hidden(k, v))
    .collect::<String>();
    let email = escape(p.login_hint.as_deref().unwrap_or_default());
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in with {title} (sandbox)</title>
<style>body{{font-family:sans-serif;max-width:28rem;margin:3rem auto}}label{{display:block;margin:.6rem 0}}
input[type=email],input[type=text]{{width:100%;padding:.4rem}}button{{margin-right:.5rem;padding:.4rem 1rem}}</style>
</head><body>
<h1>{title} <small>(sandbox)</small></h1>
<p><b>{client}</b> asks to sign you in with your {title} account ({scope}).</p>
<form method="post">
{fields}
<label>Email <input type="email" name="email" value="{email}" required></label>
<label>Name <input type="text" name="name" placeholder="optional"></label>
<label><input type="checkbox" name="email_verified" value="true" checked> email verified</label>
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny" formnovalidate>Deny</button>
</form></body></html>"#,
        client = escape(&p.client_id),
        scope = escape(&p.scope),
    )
}

/// A page for requests that cannot be sent back to the client.
pub fn error(why: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in error</title></head>\
         <body><h1>Sign-in error</h1><p>{}</p></body></html>",
        escape(why)
    )
}
