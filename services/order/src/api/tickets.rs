//! Tickets: `GET /api/v1/tickets/{ticket_id}` (the owner: the ticket, its current entry code and
//! the secret its app makes later codes from, offline), `POST /api/v1/tickets/verify` (the gate,
//! staff only: checks a code and lets the ticket in once) and
//! `GET /api/v1/tickets/gate-keys/{performance_id}` (staff: the key a gate device checks codes
//! with offline). See [`crate::domain::code`].

use axum::{Json, extract::State, http::StatusCode};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use platform::{
    ApiError,
    auth::{AuthUser, Role},
    problem::{ApiJson, ApiPath},
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AppState, docs::Problem, parse_id};
use crate::{
    domain::code::{self, CodeError, STEP_SECS},
    store,
};

/// A ticket with its entry code.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketView {
    /// Its id.
    pub ticket_id: Uuid,
    /// Its order.
    pub order_id: Uuid,
    /// The performance.
    pub performance_id: Uuid,
    /// The seat, for a reserved seat.
    pub seat_id: Option<String>,
    /// The area, for a general-admission place.
    pub area_id: Option<String>,
    /// `valid` or `void`.
    pub status: String,
    /// Its ticket type (권종): `adult`, `youth`, `child`, `senior`, `disabled`,
    /// `national_merit`.
    pub ticket_type: String,
    /// Whether the gate checks the holder's proof of the type (every type but `adult`).
    pub proof_required: bool,
    /// When it was let in.
    pub checked_in_at: Option<DateTime<Utc>>,
    /// The entry code now (shown as a QR code); `null` for a void ticket.
    pub code: Option<String>,
    /// When this code's step ends; the next one is different.
    pub code_expires_at: Option<DateTime<Utc>>,
    /// Seconds per step.
    pub step_secs: i64,
    /// The ticket's secret (base64url) and version: the app makes later codes offline,
    /// `BX1.<id>.<version>.<step>.<base64url(HMAC-SHA256(secret, "<id>.<version>.<step>")[..16])>`.
    pub secret: Option<String>,
    /// The secret's version.
    pub secret_version: i32,
}

fn perf_key(state: &AppState, perf: Uuid) -> [u8; 32] {
    code::performance_key(state.config.ticket_key.as_bytes(), perf)
}

/// `GET /api/v1/tickets/{ticket_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{ticket_id}",
    operation_id = "find_ticket",
    tag = "tickets",
    params(("ticket_id" = String, Path, description = "The ticket")),
    responses(
        (status = 200, description = "The caller's ticket with its current code", body = TicketView),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no ticket of the caller's", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn find(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<TicketView>, ApiError> {
    let id = parse_id(&raw, "ticket")?;
    let t = store::ticket(&state.pool, id)
        .await?
        .filter(|t| t.buyer_id == user.id())
        .ok_or_else(|| ApiError::not_found(format!("no ticket `{id}`")))?;
    let valid = t.status == "valid";
    let now = Utc::now().timestamp();
    let step = code::step_at(now);
    let secret = code::ticket_secret(
        &perf_key(&state, t.performance_id),
        t.ticket_id,
        t.secret_version,
    );
    Ok(Json(TicketView {
        ticket_id: t.ticket_id,
        order_id: t.order_id,
        performance_id: t.performance_id,
        seat_id: t.seat_id,
        area_id: t.area_id,
        status: t.status,
        proof_required: proof_required(&t.ticket_type),
        ticket_type: t.ticket_type,
        checked_in_at: t.checked_in_at,
        code: valid.then(|| code::code(&secret, t.ticket_id, t.secret_version, step)),
        code_expires_at: valid
            .then(|| DateTime::from_timestamp((step + 1) * STEP_SECS, 0))
            .flatten(),
        step_secs: STEP_SECS,
        secret: valid.then(|| URL_SAFE_NO_PAD.encode(secret)),
        secret_version: t.secret_version,
    }))
}

/// `GET /api/v1/tickets/{ticket_id}/qr.svg`: the current entry code as a QR code (SVG), for a
/// page that shows the ticket; never cached (the code changes every step).
#[utoipa::path(
    get,
    path = "/api/v1/tickets/{ticket_id}/qr.svg",
    tag = "tickets",
    params(("ticket_id" = String, Path, description = "The ticket")),
    responses(
        (status = 200, description = "The current entry code as a QR code", content_type = "image/svg+xml", body = String),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`: no ticket of the caller's", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`ticket_void`: a void ticket has no code", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn qr_svg(
    state: State<AppState>,
    user: AuthUser,
    path: ApiPath<String>,
) -> Result<axum::response::Response, ApiError> {
    use axum::{http::header, response::IntoResponse};
    let Json(ticket) = find(state, user, path).await?;
    let Some(code) = ticket.code else {
        return Err(ApiError::conflict(
            "ticket_void",
            "a void ticket has no entry code",
        ));
    };
    let svg = qr_svg_of(&code)?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}

/// `text` as a QR code in SVG (medium error correction, a quiet zone, black on white).
fn qr_svg_of(text: &str) -> Result<String, ApiError> {
    let qr = qrcode::QrCode::with_error_correction_level(text.as_bytes(), qrcode::EcLevel::M)
        .map_err(ApiError::internal)?;
    Ok(qr
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(180, 180)
        .dark_color(qrcode::render::svg::Color("#000000"))
        .light_color(qrcode::render::svg::Color("#ffffff"))
        .build())
}

/// The body of `POST /api/v1/tickets/verify`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    /// The performance the gate admits to.
    performance_id: Uuid,
    /// The scanned code.
    code: String,
}

/// A ticket let in.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Admitted {
    /// The ticket.
    pub ticket_id: Uuid,
    /// The seat, for a reserved seat.
    pub seat_id: Option<String>,
    /// The area, for a general-admission place.
    pub area_id: Option<String>,
    /// When it was let in (now).
    pub checked_in_at: DateTime<Utc>,
    /// Its ticket type; the gate checks proof when `proof_required`.
    pub ticket_type: String,
    /// Whether the holder must show proof of the type.
    pub proof_required: bool,
}

/// Whether a ticket of type `code` needs proof at the gate (an unknown code does, to be safe).
pub(super) fn proof_required(code: &str) -> bool {
    contracts::tickets::TicketType::parse(code).is_none_or(|t| t.proof_required())
}

/// Gate staff of `perf`: administrators, and the organizer who owns its event (another
/// organizer's staff cannot read its key nor let anyone in at its gates).
async fn staff(state: &AppState, user: &AuthUser, perf: Uuid) -> Result<(), ApiError> {
    if user.0.has(Role::Admin) {
        return Ok(());
    }
    if !user.0.has(Role::Organizer) {
        return Err(ApiError::forbidden("gate staff only (organizer or admin)"));
    }
    match store::performance_owner(&state.pool, perf).await? {
        Some(Some(owner)) if owner == user.id() => Ok(()),
        _ => Err(ApiError::forbidden(
            "gate staff of this performance's organizer only",
        )),
    }
}

/// `POST /api/v1/tickets/verify`.
#[utoipa::path(
    post,
    path = "/api/v1/tickets/verify",
    tag = "tickets",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "Let in (once)", body = Admitted),
        (status = 400, description = "`validation_failed`: the body is not `{code}`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not gate staff of this performance (its organizer or an administrator)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`already_checked_in`, `ticket_void`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_code` (forged, another performance's, malformed), `stale_code` (a screenshot)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn verify(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Json<Admitted>, ApiError> {
    staff(&state, &user, body.performance_id).await?;
    let key = perf_key(&state, body.performance_id);
    let v = code::verify(&key, &body.code, Utc::now().timestamp()).map_err(|e| match e {
        CodeError::Stale => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "stale_code",
            e.to_string(),
        ),
        _ => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_code",
            e.to_string(),
        ),
    })?;
    let t = store::ticket(&state.pool, v.ticket)
        .await?
        .filter(|t| t.performance_id == body.performance_id && t.secret_version == v.version)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_code",
                "no such ticket",
            )
        })?;
    if t.status != "valid" {
        return Err(ApiError::conflict(
            "ticket_void",
            "the ticket was cancelled",
        ));
    }
    let at = store::check_in(&state.pool, t.ticket_id)
        .await?
        .ok_or_else(|| {
            ApiError::conflict("already_checked_in", "the ticket was let in already")
                .with("checked_in_at", t.checked_in_at)
        })?;
    Ok(Json(Admitted {
        ticket_id: t.ticket_id,
        seat_id: t.seat_id,
        area_id: t.area_id,
        checked_in_at: at,
        proof_required: proof_required(&t.ticket_type),
        ticket_type: t.ticket_type,
    }))
}

/// A gate device's offline key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GateKey {
    /// The performance.
    pub performance_id: Uuid,
    /// The key (base64url): `secret = HMAC-SHA256(key, "ticket:" ‖ ticket id bytes ‖ version
    /// as 4 big-endian bytes)`, then the code's mac as in [`TicketView::secret`].
    pub key: String,
    /// Seconds per step; one step either side is accepted.
    pub step_secs: i64,
}

/// `GET /api/v1/tickets/gate-keys/{performance_id}`.
#[utoipa::path(
    get,
    path = "/api/v1/tickets/gate-keys/{performance_id}",
    tag = "tickets",
    params(("performance_id" = String, Path, description = "The performance")),
    responses(
        (status = 200, description = "The key to check this performance's codes offline", body = GateKey),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: not gate staff of this performance (its organizer or an administrator)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = [])),
)]
pub async fn gate_key(
    State(state): State<AppState>,
    user: AuthUser,
    ApiPath(raw): ApiPath<String>,
) -> Result<Json<GateKey>, ApiError> {
    let perf = parse_id(&raw, "performance")?;
    staff(&state, &user, perf).await?;
    Ok(Json(GateKey {
        performance_id: perf,
        key: URL_SAFE_NO_PAD.encode(perf_key(&state, perf)),
        step_secs: STEP_SECS,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn an_entry_code_renders_as_an_svg_qr_code() {
        let code = format!("BX1.{}.1.59876543.{}", uuid::Uuid::nil(), "A".repeat(22));
        let svg = super::qr_svg_of(&code).unwrap();
        assert!(svg.contains("<svg") && svg.ends_with("</svg>"), "{svg}");
        assert!(svg.contains("#000000") && svg.contains("#ffffff"));
        assert!(!svg.contains("<script"));
    }
}
