//! The three providers and how each tells us who signed in: Google and Kakao speak OpenID
//! Connect (a signed id token carries the subject; Kakao's email and its verification come from
//! its user-info API), Naver is plain OAuth2 (its user-info API says everything). Endpoints and
//! client credentials come from configuration; unset ones point at the sandbox provider in
//! `fakes/` (the `oauth` fake).

use serde::Deserialize;

use crate::config::{OAuthSettings, ProviderSettings};

/// The issuer the sandbox provider names in its id tokens (`<this>/<provider>`).
pub const SANDBOX_ISSUER: &str = "https://oauth.sandbox.boxoffice.invalid";

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

    fn default_scope(self) -> &'static str {
        match self {
            Self::Kakao => "openid account_email profile_nickname",
            Self::Naver => "email name",
            Self::Google => "openid email profile",
        }
    }
}

/// A provider's resolved settings.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Which provider.
    pub kind: ProviderKind,
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
    /// Resolves `kind`'s settings; `internal_sandbox` is the sandbox's address for server-to-server
    /// calls when it differs from the public one (standalone serves it on a loopback port).
    pub fn resolve(
        kind: ProviderKind,
        oauth: &OAuthSettings,
        internal_sandbox: Option<&str>,
    ) -> Self {
        let s: &ProviderSettings = match kind {
            ProviderKind::Kakao => &oauth.kakao,
            ProviderKind::Naver => &oauth.naver,
            ProviderKind::Google => &oauth.google,
        };
        let name = kind.as_str();
        let public = format!("{}/{name}", oauth.sandbox_url.trim_end_matches('/'));
        let internal = internal_sandbox
            .map(|u| format!("{}/{name}", u.trim_end_matches('/')))
            .unwrap_or_else(|| public.clone());
        let or = |v: &Option<String>, default: String| v.clone().unwrap_or(default);
        Self {
            kind,
            client_id: or(&s.client_id, format!("boxoffice-{name}")),
            client_secret: or(&s.client_secret, format!("sandbox-{name}-secret")),
            authorize_url: or(&s.authorize_url, format!("{public}/authorize")),
            token_url: or(&s.token_url, format!("{internal}/token")),
            userinfo_url: or(&s.userinfo_url, format!("{internal}/userinfo")),
            jwks_url: or(&s.jwks_url, format!("{internal}/jwks.json")),
            issuer: or(&s.issuer, format!("{SANDBOX_ISSUER}/{name}")),
            scope: or(&s.scope, kind.default_scope().to_owned()),
            redirect_uri: format!(
                "{}/api/v1/auth/oauth/{name}/callback",
                oauth.redirect_base.trim_end_matches('/')
            ),
        }
    }
}

/// Who signed in at the provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderUser {
    /// The provider's stable id for the account.
    pub subject: String,
    /// Its email, if shared.
    pub email: Option<String>,
    /// Whether the provider verified that email.
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
            email_verified: me.kakao_account.is_email_verified,
            name: me.kakao_account.profile.and_then(|p| p.nickname),
        })
    }

    /// From Naver's user info. Naver does not report verification; an account's email is the
    /// one Naver confirmed at its sign-up, so it is treated as verified.
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

    #[test]
    fn defaults_point_at_the_sandbox() {
        let oauth = OAuthSettings::default();
        let p = Provider::resolve(ProviderKind::Kakao, &oauth, Some("http://127.0.0.1:9/"));
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
    }

    #[test]
    fn kakao_user_must_match_the_id_token() {
        let me = || KakaoMe {
            id: 42,
            kakao_account: KakaoAccount {
                email: Some("a@b.kr".into()),
                is_email_verified: true,
                profile: None,
            },
        };
        assert!(ProviderUser::from_kakao("42", me()).is_some());
        assert!(ProviderUser::from_kakao("43", me()).is_none());
    }
}
