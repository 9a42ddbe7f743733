//! Toss Payments' error object `{code, message}` and the codes this sandbox answers. The shape is
//! the third party's contract (what a client of the real API parses), so it is not problem+json.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// Why a call to the sandbox PG failed, each with Toss's status and code.
#[derive(Debug, Clone)]
pub enum PgError {
    /// 401 `UNAUTHORIZED_KEY`: no or an unknown secret key.
    Unauthorized,
    /// 400 `INVALID_REQUEST`: the body or a parameter cannot be used.
    Invalid(String),
    /// 400 `INVALID_REQUEST`: the confirm's amount is not the checkout's (nothing is charged).
    AmountMismatch,
    /// 400 `INVALID_REQUEST`: the confirm names another order than the checkout.
    OrderMismatch,
    /// 404 `NOT_FOUND_PAYMENT_SESSION`: no checkout with this paymentKey.
    NoSession,
    /// 404 `NOT_FOUND_PAYMENT_SESSION`: the checkout was not confirmed in time (`EXPIRED`).
    SessionExpired,
    /// 404 `NOT_FOUND_PAYMENT`: no such payment.
    NotFound,
    /// 400 `ALREADY_PROCESSED_PAYMENT`: confirmed (or aborted) before.
    AlreadyProcessed,
    /// 409 `IDEMPOTENT_REQUEST_PROCESSING`: the payment is being approved by another call.
    InProgress,
    /// 400 `ALREADY_CANCELED_PAYMENT`.
    AlreadyCanceled,
    /// 403 `NOT_CANCELABLE_PAYMENT`: not approved, so nothing to cancel.
    NotCancelable,
    /// 400 `NOT_CANCELABLE_AMOUNT`: more than the balance.
    NotCancelableAmount,
    /// 400 `DUPLICATED_ORDER_ID`: the order was paid before.
    DuplicatedOrderId,
    /// 403 `REJECT_CARD_COMPANY`: the card company declined.
    Declined,
    /// 400 `PROVIDER_ERROR`: a temporary error, retry.
    ProviderError,
    /// 500 `FAILED_INTERNAL_SYSTEM_PROCESSING`.
    Internal,
    /// 400 `INVALID_IDEMPOTENCY_KEY`: longer than 300 characters or not printable.
    BadIdempotencyKey,
    /// 409 `IDEMPOTENT_REQUEST_PROCESSING`: the first call with this key is still in flight.
    IdempotentInFlight,
    /// 422 `IDEMPOTENCY_KEY_REUSED`: the key was used with another request.
    IdempotentMismatch,
}

impl PgError {
    /// The HTTP status, Toss's code and a message.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        use StatusCode as S;
        let (status, code, message): (StatusCode, &'static str, &str) = match self {
            Self::Unauthorized => (
                S::UNAUTHORIZED,
                "UNAUTHORIZED_KEY",
                "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다. (unauthorized secret key)",
            ),
            Self::Invalid(why) => return (S::BAD_REQUEST, "INVALID_REQUEST", why.clone()),
            Self::AmountMismatch => (
                S::BAD_REQUEST,
                "INVALID_REQUEST",
                "요청한 결제 금액과 결제창의 금액이 다릅니다. (amount does not match the checkout)",
            ),
            Self::OrderMismatch => (
                S::BAD_REQUEST,
                "INVALID_REQUEST",
                "orderId가 결제 정보와 다릅니다. (orderId does not match the payment)",
            ),
            Self::NoSession => (
                S::NOT_FOUND,
                "NOT_FOUND_PAYMENT_SESSION",
                "결제 진행 데이터가 존재하지 않습니다. (no payment session)",
            ),
            Self::SessionExpired => (
                S::NOT_FOUND,
                "NOT_FOUND_PAYMENT_SESSION",
                "결제 시간이 만료되어 결제 진행 데이터가 존재하지 않습니다. (expired)",
            ),
            Self::NotFound => (
                S::NOT_FOUND,
                "NOT_FOUND_PAYMENT",
                "존재하지 않는 결제 입니다. (no such payment)",
            ),
            Self::AlreadyProcessed => (
                S::BAD_REQUEST,
                "ALREADY_PROCESSED_PAYMENT",
                "이미 처리된 결제 입니다. (already processed)",
            ),
            Self::InProgress | Self::IdempotentInFlight => (
                S::CONFLICT,
                "IDEMPOTENT_REQUEST_PROCESSING",
                "이전 요청이 처리 중입니다. (the first request is still being processed)",
            ),
            Self::AlreadyCanceled => (
                S::BAD_REQUEST,
                "ALREADY_CANCELED_PAYMENT",
                "이미 취소된 결제 입니다. (already canceled)",
            ),
            Self::NotCancelable => (
                S::FORBIDDEN,
                "NOT_CANCELABLE_PAYMENT",
                "취소 할 수 없는 결제 입니다. (not cancelable)",
            ),
            Self::NotCancelableAmount => (
                S::BAD_REQUEST,
                "NOT_CANCELABLE_AMOUNT",
                "취소 할 수 없는 금액 입니다. (above the balance)",
            ),
            Self::DuplicatedOrderId => (
                S::BAD_REQUEST,
                "DUPLICATED_ORDER_ID",
                "이미 승인 및 취소가 진행된 중복된 주문번호 입니다. (order paid before)",
            ),
            Self::Declined => (
                S::FORBIDDEN,
                "REJECT_CARD_COMPANY",
                "결제 승인이 거절되었습니다. (declined by the card company)",
            ),
            Self::ProviderError => (
                S::BAD_REQUEST,
                "PROVIDER_ERROR",
                "일시적인 오류가 발생했습니다. 잠시 후 다시 시도해주세요. (temporary error)",
            ),
            Self::Internal => (
                S::INTERNAL_SERVER_ERROR,
                "FAILED_INTERNAL_SYSTEM_PROCESSING",
                "내부 시스템 처리 작업이 실패했습니다. (internal error)",
            ),
            Self::BadIdempotencyKey => (
                S::BAD_REQUEST,
                "INVALID_IDEMPOTENCY_KEY",
                "멱등키는 300자 이하의 문자열이어야 합니다. (at most 300 printable characters)",
            ),
            Self::IdempotentMismatch => (
                S::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_KEY_REUSED",
                "같은 멱등키로 다른 요청을 보냈습니다. (key used with another request)",
            ),
        };
        (status, code, message.to_owned())
    }

    /// The error's `code`.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }
}

impl IntoResponse for PgError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        (status, Json(json!({"code": code, "message": message}))).into_response()
    }
}
