//! [`ApiError`]: an HTTP error answered as JSON `{"error": {"kind", "field", "message"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// An error answer. User input gets a 4xx naming the field; only the server's own failures
/// are 5xx (and a full queue, 503 with `Retry-After`).
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable kind (`bad_request`, `too_large`, `queue_full`, ...).
    pub kind: &'static str,
    /// The part of the request at fault (`instances[1].inputs.rgb`, `body`).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 naming `field`.
    pub fn bad_request(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", field, message)
    }

    /// An error of any status.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ApiError { status, kind, field: field.into(), message: message.into(), retry_after: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": {"kind": self.kind, "field": self.field, "message": self.message}
        });
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}
