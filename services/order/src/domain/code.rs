//! Ticket entry codes that rotate yet verify offline (shown as a QR code).
//!
//! Keys: the service's ticket key (`order.ticket_key`) derives one key per performance
//! ([`performance_key`], HMAC-SHA256), which derives one secret per ticket and secret version
//! ([`ticket_secret`]). The buyer's app gets its ticket's secret and makes the code of the
//! current time step itself, offline; the gate needs only the performance key (loaded before
//! the doors open) to check any ticket of that performance, offline too. A leaked gate key
//! exposes one performance; a transfer bumps the secret version, so the old holder's codes stop.
//!
//! A code is `BX1.<ticket id>.<version>.<step>.<mac>`, the mac being the first 16 bytes of
//! HMAC-SHA256(ticket secret, `<ticket id>.<version>.<step>`) in base64url. A step lasts
//! [`STEP_SECS`]; the gate accepts the current step and one either side (clock drift), so a
//! screenshot stops working within about a minute.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;

/// Seconds per code step.
pub const STEP_SECS: i64 = 30;
/// Steps accepted either side of the verifier's current one.
pub const SKEW_STEPS: i64 = 1;
const PREFIX: &str = "BX1";

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length.
    let mut m = <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// The key that checks every ticket of `performance`.
pub fn performance_key(ticket_key: &[u8], performance: Uuid) -> [u8; 32] {
    mac(ticket_key, &[b"performance:", performance.as_bytes()])
}

/// The secret of one ticket at one version.
pub fn ticket_secret(performance_key: &[u8; 32], ticket: Uuid, version: i32) -> [u8; 32] {
    mac(
        performance_key,
        &[b"ticket:", ticket.as_bytes(), &version.to_be_bytes()],
    )
}

/// The step of unix time `secs`.
pub fn step_at(secs: i64) -> i64 {
    secs.div_euclid(STEP_SECS)
}

/// The code of `ticket` at `step`, from its secret.
pub fn code(secret: &[u8; 32], ticket: Uuid, version: i32, step: i64) -> String {
    let body = format!("{}.{version}.{step}", ticket.simple());
    let tag = mac(secret, &[body.as_bytes()]);
    format!(
        "{PREFIX}.{body}.{}",
        URL_SAFE_NO_PAD.encode(tag.get(..16).unwrap_or(&tag))
    )
}

/// What a valid code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The ticket.
    pub ticket: Uuid,
    /// Its secret version.
    pub version: i32,
    /// The step it was made for.
    pub step: i64,
}

/// Why a code is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not a code of ours.
    #[error("not a ticket code")]
    Malformed,
    /// The mac does not match (forged, or another performance's).
    #[error("the code's signature does not match")]
    BadSignature,
    /// Made for another time: a screenshot, or a clock far off.
    #[error("the code is from another time")]
    Stale,
}

/// Checks `code` with `performance_key` at unix time `now_secs`, offline.
pub fn verify(
    performance_key: &[u8; 32],
    code: &str,
    now_secs: i64,
) -> Result<Verified, CodeError> {
    let mut parts = code.trim().split('.');
    let (Some(PREFIX), Some(id), Some(version), Some(step), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(CodeError::Malformed);
    };
    let ticket = Uuid::try_parse(id).map_err(|_| CodeError::Malformed)?;
    if ticket.simple().to_string() != id {
        return Err(CodeError::Malformed); // one spelling per code
    }
    let version: i32 = version.parse().map_err(|_| CodeError::Malformed)?;
    let step: i64 = step.parse().map_err(|_| CodeError::Malformed)?;
    let given = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| CodeError::Malformed)?;
    let secret = ticket_secret(performance_key, ticket, version);
    let body = format!("{}.{version}.{step}", ticket.simple());
    if given.len() != 16 {
        return Err(CodeError::BadSignature);
    }
    let mut m = <HmacSha256 as Mac>::new_from_slice(&secret).expect("HMAC accepts any key length");
    m.update(body.as_bytes());
    // Constant-time comparison of the truncated tag.
    m.verify_truncated_left(&given)
        .map_err(|_| CodeError::BadSignature)?;
    if (step - step_at(now_secs)).abs() > SKEW_STEPS {
        return Err(CodeError::Stale);
    }
    Ok(Verified {
        ticket,
        version,
        step,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;

    use super::*;

    const KEY: &[u8] = b"test ticket key";

    #[test]
    fn a_code_verifies_near_its_time_and_not_later() {
        let perf = Uuid::now_v7();
        let ticket = Uuid::now_v7();
        let pk = performance_key(KEY, perf);
        let now = 1_750_000_000;
        let c = code(&ticket_secret(&pk, ticket, 1), ticket, 1, step_at(now));
        let v = verify(&pk, &c, now).unwrap();
        assert_eq!((v.ticket, v.version), (ticket, 1));
        assert!(
            verify(&pk, &c, now + STEP_SECS).is_ok(),
            "one step of drift"
        );
        assert_eq!(
            verify(&pk, &c, now + 3 * STEP_SECS),
            Err(CodeError::Stale),
            "a screenshot"
        );
        // Another performance's gate, an old secret version, a tampered step.
        let other = performance_key(KEY, Uuid::now_v7());
        assert_eq!(verify(&other, &c, now), Err(CodeError::BadSignature));
        let old = code(&ticket_secret(&pk, ticket, 1), ticket, 2, step_at(now));
        assert_eq!(verify(&pk, &old, now), Err(CodeError::BadSignature));
        let bumped = c.replacen(
            &format!(".{}.", step_at(now)),
            &format!(".{}.", step_at(now) + 1),
            1,
        );
        assert_eq!(verify(&pk, &bumped, now), Err(CodeError::BadSignature));
        for bad in [
            "",
            "BX1",
            "BX1.x.1.2.abc",
            "QR.a.b.c.d",
            &format!("{c}.extra"),
        ] {
            assert_eq!(verify(&pk, bad, now), Err(CodeError::Malformed), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn a_flipped_character_never_verifies(i in 0usize..80, now in 1_600_000_000i64..1_900_000_000) {
            let perf = Uuid::from_u128(7);
            let ticket = Uuid::from_u128(42);
            let pk = performance_key(KEY, perf);
            let c = code(&ticket_secret(&pk, ticket, 1), ticket, 1, step_at(now));
            let i = i % c.len();
            let mut bytes = c.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let forged = String::from_utf8(bytes).unwrap();
            prop_assume!(forged != c);
            prop_assert!(verify(&pk, &forged, now).is_err());
        }
    }
}
