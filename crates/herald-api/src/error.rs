//! `ApiError`: every failure the API answers, with its status and stable body. 5xx bodies
//! reveal nothing; the cause is logged once, here.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_store::StoreError;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ValidationItem {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The body of every error but validation: a stable code and a sentence.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorOut {
    pub code: String,
    pub detail: String,
}

/// The body of a 422: one entry per field that is wrong.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ValidationErrorOut {
    pub detail: Vec<ValidationItem>,
}

#[derive(Debug)]
pub enum ApiError {
    /// 400 with a specific code (`invalid_json`, `generic_error`, …).
    BadRequest {
        code: &'static str,
        detail: String,
    },
    Unauthorized(String),
    /// 403: the token is valid but may not do this.
    Forbidden(String),
    NotFound(String),
    MethodNotAllowed,
    Conflict(String),
    /// 410: it existed and is gone for good (an iterator retention has passed).
    Gone {
        code: &'static str,
        detail: String,
    },
    PayloadTooLarge(String),
    /// 414: the request line's URL is longer than the server reads.
    UriTooLong(String),
    /// 408: the request took longer than the server waits (a slow client).
    Timeout(String),
    Validation(Vec<ValidationItem>),
    Unavailable(String),
    /// 502: a server Herald asked on the caller's behalf (an OpenID provider) failed.
    BadGateway(String),
    /// 429: too many tries (failed sign-ins).
    TooManyRequests(String),
    Internal,
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A 422 for one field: `invalid(&["body", "url"], "…")`.
pub fn invalid(loc: &[&str], msg: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![ValidationItem {
        loc: loc.iter().map(|s| s.to_string()).collect(),
        msg: msg.into(),
        kind: "value_error".into(),
    }])
}

pub fn not_found(what: &str) -> ApiError {
    ApiError::NotFound(format!("{what} not found"))
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".into()),
            StoreError::Conflict(detail) => ApiError::Conflict(detail),
            StoreError::Invalid(msg) => invalid(&["body"], msg),
            StoreError::Gone(detail) => ApiError::Gone {
                code: "iterator_expired",
                detail,
            },
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "store unavailable");
                ApiError::Unavailable("the store is unavailable; try again".into())
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::Internal
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail) = match self {
            ApiError::Validation(items) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    axum::Json(serde_json::json!({ "detail": items })),
                )
                    .into_response()
            }
            ApiError::BadRequest { code, detail } => (StatusCode::BAD_REQUEST, code, detail),
            ApiError::Unauthorized(d) => (StatusCode::UNAUTHORIZED, "authentication_failed", d),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, "insufficient_access", d),
            ApiError::NotFound(d) => (StatusCode::NOT_FOUND, "not_found", d),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not accept that method".into(),
            ),
            ApiError::Conflict(d) => (StatusCode::CONFLICT, "conflict", d),
            ApiError::Gone { code, detail } => (StatusCode::GONE, code, detail),
            ApiError::PayloadTooLarge(d) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", d),
            ApiError::Unavailable(d) => (StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", d),
            ApiError::BadGateway(d) => (StatusCode::BAD_GATEWAY, "bad_gateway", d),
            ApiError::TooManyRequests(d) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited", d),
            ApiError::UriTooLong(d) => (StatusCode::URI_TOO_LONG, "uri_too_long", d),
            ApiError::Timeout(d) => (StatusCode::REQUEST_TIMEOUT, "request_timeout", d),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal server error".into(),
            ),
        };
        (
            status,
            axum::Json(serde_json::json!({ "code": code, "detail": detail })),
        )
            .into_response()
    }
}
