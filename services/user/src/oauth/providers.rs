//! The three providers and how each tells us who signed in: Google and Kakao speak OpenID
//! Connect (a signed id token carries the subject; Kakao's email and its verification come from
//! its user-info API), Naver is plain OAuth2 (its user-info API says everything).
//!
//! Each provider is in one of three modes, decided at start: **configured** (a client id and a
//! secret other than the sandbox's are set; unset URLs default to the real provider's),
//! **sandboxed** (sandbox mode on and not configured: the fake in `fakes/src/oauth.rs`, its
//! identities marked as sandbox ones) or **off** (neither: its routes answer
//! `provider_disabled` and it is not listed).

use serde::{Deserialize, Serialize};

use crate::config::{Config, ProviderSettings};

/// The issuer the sandbox provider names in its id tokens (`<this>/<provider>`).
pub const SANDBOX_ISSUER: &str = "https://oauth.sandbox.boxoffice.invalid";

/// The public URL when none is configured.
pub const DEFAULT_PUBLIC_URL: &str = "http://localhost:8080";

/// A social login provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// Kakao (OIDC + user info).
    Kakao,
    /// Naver (OAuth2 + user info).
    Naver,
    /// Google (OIDC).
    Google,
}

/// Every provider, in the order they are listed.
pub const ALL: [ProviderKind; 3] = [
    ProviderKind::Kakao,
    ProviderKind::Naver,
    ProviderKind::Google,
];

impl ProviderKind {
    /// Parses a path segment.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "kakao" => Some(Self::Kakao),
            "naver" => Some(Self::Naver),
            "google" => Some(Self::Google),
            _ => None,
        }
    }

    /// Its name in paths and in UserDB.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kakao => "kakao",
            Self::Naver => "naver",
            Self::Google => "google",
        }
    }

    /// Whether it signs an id token.
    pub fn is_oidc(self) -> bool {
        !matches!(self, Self::Naver)
    }

    /// Whether a verified email it reports may link to an existing account. Naver reports no
    /// verification flag, so its identities never link by email.
    pub fn links_by_email(self) -> bool {
        !matches!(self, Self::Naver)
    }

    fn default_scope(self) -> &'static str {
        match self {
            Self::Kakao => "openid account_email profile_nickname",
            Self::Naver => "email name",
            Self::Google => "openid email profile",
        }
    }

    /// The sandbox's client secret for this provider: refused outside sandbox mode.
    pub fn sandbox_secret(self) -> String {
        format!("sandbox-{}-secret", self.as_str())
    }

    fn settings(self, config: &Config) -> &ProviderSettings {
        match self {
            Self::Kakao => &config.oauth.kakao,
            Self::Naver => &config.oauth.naver,
            Self::Google => &config.oauth.google,
        }
    }

    /// The real provider's endpoints: authorize, token, user info, JWKS, issuer.
    fn real_endpoints(self) -> [&'static str; 5] {
        match self {
            Self::Kakao => [
                "https://kauth.kakao.com/oauth/authorize",
                "https://kauth.kakao.com/oauth/token",
                "https://kapi.kakao.com/v2/user/me",
                "https://kauth.kakao.com/.well-known/jwks.json",
                "https://kauth.kakao.com",
            ],
            Self::Naver => [
                "https://nid.naver.com/oauth2.0/authorize",
                "https://nid.naver.com/oauth2.0/token",
                "https://openapi.naver.com/v1/nid/me",
                "",
                "",
            ],
            Self::Google => [
                "https://accounts.google.com/o/oauth2/v2/auth",
                "https://oauth2.googleapis.com/token",
                "https://openidconnect.googleapis.com/v1/userinfo",
                "https://www.googleapis.com/oauth2/v3/certs",
                "https://accounts.google.com",
            ],
        }
    }
}

/// The platform's public base URL (no trailing slash).
pub fn public_url(config: &Config) -> String {
    config
        .public_url
        .as_deref()
        .unwrap_or(DEFAULT_PUBLIC_URL)
        .trim_end_matches('/')
        .to_owned()
}

/// Where providers send the browser back (no trailing slash).
pub fn redirect_base(config: &Config) -> String {
    match &config.oauth.redirect_base {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => public_url(config),
    }
}

/// The browser-facing base URL of the sandbox provider (no trailing slash).
pub fn sandbox_url(config: &Config) -> String {
    match &config.oauth.sandbox_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => format!("{}/sandbox/oauth", public_url(config)),
    }
}

/// `kind`'s callback URL: what the provider must have registered as a redirect URI.
pub fn callback_url(config: &Config, kind: ProviderKind) -> String {
    format!(
        "{}/api/v1/auth/oauth/{}/callback",
        redirect_base(config),
        kind.as_str()
    )
}

/// Every provider's callback URL (what standalone registers at the sandbox provider).
pub fn callback_urls(config: &Config) -> Vec<String> {
    ALL.iter().map(|k| callback_url(config, *k)).collect()
}

/// How a provider runs here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderMode {
    /// Registered with the real provider.
    Configured,
    /// The sandbox provider stands in for it.
    Sandbox,
}

/// A provider's resolved settings.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Which provider.
    pub kind: ProviderKind,
    /// Configured or sandboxed.
    pub mode: ProviderMode,
    /// Our client id there.
    pub client_id: String,
    /// Our client secret there.
    pub client_secret: String,
    /// Its authorization page (browser-facing).
    pub authorize_url: String,
    /// Its token endpoint.
    pub token_url: String,
    /// Its user-info endpoint.
    pub userinfo_url: String,
    /// Its JWKS (OIDC).
    pub jwks_url: String,
    /// Its id tokens' `iss` (OIDC).
    pub issuer: String,
    /// Requested scopes.
    pub scope: String,
    /// Where it sends the browser back.
    pub redirect_uri: String,
}

impl Provider {
    /// Whether its identities come from the sandbox.
    pub fn is_sandbox(&self) -> bool {
        self.mode == ProviderMode::Sandbox
    }

    /// Resolves `kind`'s settings: `Ok(None)` when it is off, `Err` (naming the setting) when its
    /// settings cannot be used. `internal_sandbox` is the sandbox's address for server-to-server
    /// calls when it differs from the public one (standalone serves it on a loopback port).
    pub fn resolve(
        kind: ProviderKind,
        config: &Config,
        internal_sandbox: Option<&str>,
    ) -> Result<Option<Self>, String> {
        let s = kind.settings(config);
        let name = kind.as_str();
        let key = |field: &str| {
            format!(
                "user.oauth.{name}.{field} (env BOXOFFICE_USER__OAUTH__{}__{})",
                name.to_uppercase(),
                field.to_uppercase()
            )
        };
        let sandbox_secret = kind.sandbox_secret();
        let configured = matches!(
            (&s.client_id, &s.client_secret),
            (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() && *secret != sandbox_secret
        );
        let or = |v: &Option<String>, default: String| v.clone().unwrap_or(default);
        let redirect_uri = callback_url(config, kind);
        let scope = or(&s.scope, kind.default_scope().to_owned());
        if configured {
            let [authorize, token, userinfo, jwks, issuer] = kind.real_endpoints();
            return Ok(Some(Self {
                kind,
                mode: ProviderMode::Configured,
                client_id: or(&s.client_id, String::new()),
                client_secret: or(&s.client_secret, String::new()),
                authorize_url: or(&s.authorize_url, authorize.to_owned()),
                token_url: or(&s.token_url, token.to_owned()),
                userinfo_url: or(&s.userinfo_url, userinfo.to_owned()),
                jwks_url: or(&s.jwks_url, jwks.to_owned()),
                issuer: or(&s.issuer, issuer.to_owned()),
                scope,
                redirect_uri,
            }));
        }
        if !config.sandbox {
            if s.client_secret.as_deref() == Some(sandbox_secret.as_str()) {
                return Err(format!(
                    "{} is the sandbox's default secret, refused outside sandbox mode: set the \
                     secret {name} issued, or turn sandbox mode on (sandbox = true)",
                    key("client_secret")
                ));
            }
            return match (&s.client_id, &s.client_secret) {
                (None, None) => Ok(None),
                (Some(_), None) => Err(format!(
                    "{} is not set but the client id is: set both to enable {name}, or neither \
                     to turn it off",
                    key("client_secret")
                )),
                (None, Some(_)) => Err(format!(
                    "{} is not set but the client secret is: set both to enable {name}, or \
                     neither to turn it off",
                    key("client_id")
                )),
                (Some(_), Some(_)) => Err(format!(
                    "{} and {} must not be empty",
                    key("client_id"),
                    key("client_secret")
                )),
            };
        }
        let public = format!("{}/{name}", sandbox_url(config));
        let internal = internal_sandbox
            .map(|u| format!("{}/{name}", u.trim_end_matches('/')))
            .unwrap_or_else(|| public.clone());
        Ok(Some(Self {
            kind,
            mode: ProviderMode::Sandbox,
            client_id: or(&s.client_id, format!("boxoffice-{name}")),
            client_secret: or(&s.client_secret, sandbox_secret),
            authorize_url: or(&s.authorize_url, format!("{public}/authorize")),
            token_url: or(&s.token_url, format!("{internal}/token")),
            userinfo_url: or(&s.userinfo_url, format!("{internal}/userinfo")),
            jwks_url: or(&s.jwks_url, format!("{internal}/jwks.json")),
            issuer: or(&s.issuer, format!("{SANDBOX_ISSUER}/{name}")),
            scope,
            redirect_uri,
        }))
    }
}

/// Who signed in at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUser {
    /// The provider's stable id for the account.
    pub subject: String,
    /// Its email, if shared.
    pub email: Option<String>,
    /// Whether the provider vouches for that email (Google `email_verified`; Kakao
    /// `is_email_verified` and `is_email_valid`; Naver: whenever it shares one, as it reports no
    /// flag — enough to make a new account, never to link to an existing one).
    pub email_verified: bool,
    /// Its display name, if shared.
    pub name: Option<String>,
}

/// The claims we read from an id token.
#[derive(Debug, Deserialize)]
pub struct IdClaims {
    /// Subject.
    pub sub: String,
    /// The nonce we sent.
    #[serde(default)]
    pub nonce: Option<String>,
    /// Email.
    #[serde(default)]
    pub email: Option<String>,
    /// Google: whether the email is verified.
    #[serde(default)]
    pub email_verified: Option<bool>,
    /// Google: name.
    #[serde(default)]
    pub name: Option<String>,
    /// Kakao: nickname.
    #[serde(default)]
    pub nickname: Option<String>,
}

/// Kakao's `GET /v2/user/me`.
#[derive(Debug, Deserialize)]
pub struct KakaoMe {
    /// Kakao's user id.
    pub id: i64,
    /// The account details.
    #[serde(default)]
    pub kakao_account: KakaoAccount,
}

/// Kakao's `kakao_account`.
#[derive(Debug, Default, Deserialize)]
pub struct KakaoAccount {
    /// Email.
    pub email: Option<String>,
    /// Whether the email is verified.
    #[serde(default)]
    pub is_email_verified: bool,
    /// Whether the email is still valid (not expired or taken over at its mail provider).
    #[serde(default)]
    pub is_email_valid: bool,
    /// Profile.
    #[serde(default)]
    pub profile: Option<KakaoProfile>,
}

/// Kakao's profile.
#[derive(Debug, Default, Deserialize)]
pub struct KakaoProfile {
    /// Nickname.
    pub nickname: Option<String>,
}

/// Naver's `GET /v1/nid/me`.
#[derive(Debug, Deserialize)]
pub struct NaverMe {
    /// `00` on success.
    pub resultcode: String,
    /// The profile.
    pub response: Option<NaverProfile>,
}

/// Naver's profile.
#[derive(Debug, Deserialize)]
pub struct NaverProfile {
    /// Naver's user id.
    pub id: String,
    /// Email.
    pub email: Option<String>,
    /// Name.
    pub name: Option<String>,
    /// Nickname.
    pub nickname: Option<String>,
}

impl ProviderUser {
    /// From a Google id token.
    pub fn from_google(c: IdClaims) -> Self {
        Self {
            subject: c.sub,
            email: c.email,
            email_verified: c.email_verified.unwrap_or(false),
            name: c.name,
        }
    }

    /// From Kakao's user info, checked against the id token's subject.
    pub fn from_kakao(sub: &str, me: KakaoMe) -> Option<Self> {
        (me.id.to_string() == sub).then(|| Self {
            subject: sub.to_owned(),
            email: me.kakao_account.email,
            email_verified: me.kakao_account.is_email_verified && me.kakao_account.is_email_valid,
            name: me.kakao_account.profile.and_then(|p| p.nickname),
        })
    }

    /// From Naver's user info. Naver does not report verification: its email may make a new
    /// account (which starts unverified) but never links to an existing one.
    pub fn from_naver(me: NaverMe) -> Option<Self> {
        let p = me.response.filter(|_| me.resultcode == "00")?;
        Some(Self {
            subject: p.id,
            email_verified: p.email.is_some(),
            email: p.email,
            name: p.name.or(p.nickname),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandboxed() -> Config {
        Config {
            sandbox: true,
            ..Config::default()
        }
    }

    #[test]
    fn in_sandbox_mode_defaults_point_at_the_sandbox_and_follow_the_public_url() {
        let mut config = sandboxed();
        let p = Provider::resolve(ProviderKind::Kakao, &config, Some("http://127.0.0.1:9/"))
            .unwrap()
            .unwrap();
        assert_eq!(
            p.authorize_url,
            "http://localhost:8080/sandbox/oauth/kakao/authorize"
        );
        assert_eq!(p.token_url, "http://127.0.0.1:9/kakao/token");
        assert_eq!(
            p.redirect_uri,
            "http://localhost:8080/api/v1/auth/oauth/kakao/callback"
        );
        assert_eq!(p.client_id, "boxoffice-kakao");
        assert!(p.is_sandbox());
        config.public_url = Some("http://localhost:9000/".into());
        let p = Provider::resolve(ProviderKind::Google, &config, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            p.authorize_url,
            "http://localhost:9000/sandbox/oauth/google/authorize"
        );
        assert_eq!(
            p.redirect_uri,
            "http://localhost:9000/api/v1/auth/oauth/google/callback"
        );
        assert_eq!(
            callback_urls(&config)[1],
            "http://localhost:9000/api/v1/auth/oauth/naver/callback"
        );
    }

    #[test]
    fn outside_sandbox_mode_an_unconfigured_provider_is_off() {
        let config = Config::default();
        for kind in ALL {
            assert!(Provider::resolve(kind, &config, None).unwrap().is_none());
        }
    }

    #[test]
    fn a_configured_provider_uses_the_real_endpoints_even_in_sandbox_mode() {
        let mut config = sandboxed();
        config.oauth.google.client_id = Some("123.apps.googleusercontent.com".into());
        config.oauth.google.client_secret = Some("real-secret".into());
        let p = Provider::resolve(ProviderKind::Google, &config, None)
            .unwrap()
            .unwrap();
        assert_eq!(p.mode, ProviderMode::Configured);
        assert_eq!(p.issuer, "https://accounts.google.com");
        assert_eq!(p.token_url, "https://oauth2.googleapis.com/token");
        config.sandbox = false;
        let again = Provider::resolve(ProviderKind::Google, &config, None)
            .unwrap()
            .unwrap();
        assert_eq!(again.mode, ProviderMode::Configured);
    }

    #[test]
    fn the_sandbox_secret_and_half_a_registration_are_refused_outside_sandbox_mode() {
        let mut config = Config::default();
        config.oauth.naver.client_id = Some("naver-client".into());
        config.oauth.naver.client_secret = Some("sandbox-naver-secret".into());
        let err = Provider::resolve(ProviderKind::Naver, &config, None).unwrap_err();
        assert!(err.contains("user.oauth.naver.client_secret"), "{err}");
        assert!(
            err.contains("BOXOFFICE_USER__OAUTH__NAVER__CLIENT_SECRET"),
            "{err}"
        );
        assert!(err.contains("sandbox's default secret"), "{err}");
        config.oauth.naver.client_secret = None;
        let err = Provider::resolve(ProviderKind::Naver, &config, None).unwrap_err();
        assert!(err.contains("user.oauth.naver.client_secret"), "{err}");
        assert!(err.contains("is not set but the client id is"), "{err}");
        config.oauth.naver.client_id = None;
        config.oauth.naver.client_secret = Some("x".into());
        let err = Provider::resolve(ProviderKind::Naver, &config, None).unwrap_err();
        assert!(err.contains("user.oauth.naver.client_id"), "{err}");
        // The same sandbox secret in sandbox mode is the sandbox.
        config.sandbox = true;
        config.oauth.naver.client_secret = Some("sandbox-naver-secret".into());
        let p = Provider::resolve(ProviderKind::Naver, &config, None)
            .unwrap()
            .unwrap();
        assert!(p.is_sandbox());
    }

    #[test]
    fn kakao_user_must_match_the_id_token_and_needs_a_valid_verified_email() {
        let me = |verified: bool, valid: bool| KakaoMe {
            id: 42,
            kakao_account: KakaoAccount {
                email: Some("a@b.kr".into()),
                is_email_verified: verified,
                is_email_valid: valid,
                profile: None,
            },
        };
        assert!(
            ProviderUser::from_kakao("42", me(true, true))
                .unwrap()
                .email_verified
        );
        assert!(ProviderUser::from_kakao("43", me(true, true)).is_none());
        assert!(
            !ProviderUser::from_kakao("42", me(true, false))
                .unwrap()
                .email_verified
        );
        assert!(
            !ProviderUser::from_kakao("42", me(false, true))
                .unwrap()
                .email_verified
        );
    }
}
