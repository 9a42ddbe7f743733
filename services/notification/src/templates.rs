//! The message texts: one template file per kind and language (`templates/<ko|en>/<kind>.j2`,
//! built into the binary; `notification.templates_dir` may hold replacements, same layout),
//! each with the blocks `subject`, `text`, `html` and `sms`, rendered with MiniJinja. The `html`
//! block is rendered with HTML escaping, the others without (they are plain text); a subject is
//! made header-safe afterwards.

use std::path::Path;

use minijinja::Environment;
use serde::Serialize;

use crate::domain::{Kind, Locale, text::header_safe};

macro_rules! builtin {
    ($($locale:literal / $kind:literal),* $(,)?) => {
        &[$(($locale, $kind, include_str!(concat!("../templates/", $locale, "/", $kind, ".j2")))),*]
    };
}

/// `(locale, kind, source)` of every built-in template.
const BUILTIN: &[(&str, &str, &str)] = builtin!(
    "ko" / "welcome",
    "en" / "welcome",
    "ko" / "order_confirmed",
    "en" / "order_confirmed",
    "ko" / "order_expired",
    "en" / "order_expired",
    "ko" / "order_cancelled",
    "en" / "order_cancelled",
    "ko" / "order_refunded",
    "en" / "order_refunded",
    "ko" / "payment_failed",
    "en" / "payment_failed",
    "ko" / "reminder",
    "en" / "reminder",
    "ko" / "announcement",
    "en" / "announcement",
);

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The subject, one header-safe line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body.
    pub html: String,
    /// The SMS text.
    pub sms: String,
}

/// Why a message could not be rendered (a template bug: permanent).
#[derive(Debug, thiserror::Error)]
#[error("template {name}: {source}")]
pub struct RenderError {
    name: String,
    #[source]
    source: minijinja::Error,
}

/// Why the templates could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A replacement file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A template does not parse.
    #[error("template {name}: {source}")]
    Syntax {
        /// Its name.
        name: String,
        /// Why.
        #[source]
        source: minijinja::Error,
    },
}

/// Every template, parsed once.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, with those found in `dir` (if given) in their place.
    pub fn load(dir: Option<&Path>) -> Result<Self, LoadError> {
        let mut env = Environment::new();
        for (locale, kind, source) in BUILTIN {
            let source = match dir {
                Some(dir) => {
                    let path = dir.join(locale).join(format!("{kind}.j2"));
                    match std::fs::read_to_string(&path) {
                        Ok(s) => s,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (*source).to_owned(),
                        Err(source) => {
                            return Err(LoadError::Read {
                                path: path.display().to_string(),
                                source,
                            });
                        }
                    }
                }
                None => (*source).to_owned(),
            };
            // Registered twice: `.html` turns HTML escaping on (MiniJinja decides by the name).
            for ext in ["txt", "html"] {
                let name = format!("{locale}/{kind}.{ext}");
                env.add_template_owned(name.clone(), source.clone())
                    .map_err(|source| LoadError::Syntax { name, source })?;
            }
        }
        Ok(Self { env })
    }

    /// Renders `kind` in `locale` with `context`.
    pub fn render<C: Serialize>(
        &self,
        kind: Kind,
        locale: Locale,
        context: &C,
    ) -> Result<Rendered, RenderError> {
        let block = |ext: &str, block: &str| -> Result<String, RenderError> {
            let name = format!("{}/{}.{ext}", locale.as_str(), kind.as_str());
            let err = |source| RenderError {
                name: name.clone(),
                source,
            };
            let tmpl = self.env.get_template(&name).map_err(err)?;
            let mut captured = tmpl.render_captured(context).map_err(err)?;
            let out = captured
                .with_state_mut(|state| state.render_block(block))
                .map_err(err)?;
            Ok(out.trim().to_owned())
        };
        Ok(Rendered {
            subject: header_safe(&block("txt", "subject")?, 200),
            text: block("txt", "text")?,
            html: block("html", "html")?,
            sms: block("txt", "sms")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn context() -> serde_json::Value {
        json!({
            "name": "<Kim & Lee>", "public_url": "https://boxoffice.test",
            "verification_url": "https://boxoffice.test/verify?t=1",
            "order_id": "o-1", "amount": "152,000원", "count": 2, "starts": "내일",
            "tickets": [{"id": "t1", "label": "A-01-01", "url": "https://boxoffice.test/tickets/t1"}],
            "order_url": "https://boxoffice.test/orders/o-1", "refund": "10,000원",
            "reason_text": "", "message": "한도 초과",
            "title": "<Kim & Lee>", "body": "<Kim & Lee>",
        })
    }

    #[test]
    fn every_kind_renders_in_both_languages_with_html_escaped_only_in_html() {
        let t = Templates::load(None).unwrap();
        for kind in Kind::ALL {
            for locale in [Locale::Ko, Locale::En] {
                let r = t.render(kind, locale, &context()).unwrap();
                assert!(!r.subject.is_empty() && !r.text.is_empty() && !r.sms.is_empty());
                assert!(
                    r.text.contains("<Kim & Lee>"),
                    "{kind:?} {locale:?}: {}",
                    r.text
                );
                assert!(
                    r.html.contains("&lt;Kim &amp; Lee&gt;"),
                    "{kind:?}: {}",
                    r.html
                );
                assert!(!r.subject.contains('\n'));
            }
        }
        let ko = t
            .render(Kind::OrderConfirmed, Locale::Ko, &context())
            .unwrap();
        assert_eq!(ko.subject, "[Boxoffice] 예매가 완료되었습니다 (2매)");
        let en = t
            .render(Kind::OrderConfirmed, Locale::En, &context())
            .unwrap();
        assert_eq!(
            en.subject,
            "[Boxoffice] Your booking is confirmed (2 tickets)"
        );
    }

    #[test]
    fn a_directory_replaces_only_the_templates_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("en")).unwrap();
        std::fs::write(
            dir.path().join("en/welcome.j2"),
            "{% block subject %}Hi {{ name }}{% endblock %}{% block text %}t{% endblock %}{% block html %}h{% endblock %}{% block sms %}s{% endblock %}",
        )
        .unwrap();
        let t = Templates::load(Some(dir.path())).unwrap();
        let r = t
            .render(Kind::Welcome, Locale::En, &json!({"name": "Ann"}))
            .unwrap();
        assert_eq!(r.subject, "Hi Ann");
        let ko = t.render(Kind::Welcome, Locale::Ko, &context()).unwrap();
        assert!(ko.subject.contains("환영"));
        std::fs::write(
            dir.path().join("en/welcome.j2"),
            "{% block subject %}{{ oops",
        )
        .unwrap();
        assert!(matches!(
            Templates::load(Some(dir.path())),
            Err(LoadError::Syntax { .. })
        ));
    }
}
