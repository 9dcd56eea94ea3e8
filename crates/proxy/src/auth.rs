//! Bearer authentication: the `Authorization` header of a request to the
//! verified claims of its Warden token, or a 401 that says what to fix.
//! Shared by the proxy's routes and the admin API.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::Request;

use crate::app::App;
use crate::error::ApiError;
use crate::token::{self, Claims, TokenError};

/// Verifies the Warden token of a request: `Authorization: Bearer` (OpenAI's
/// SDKs) or `x-api-key` (Anthropic's).
pub fn authenticate(app: &App, req: &Request<Incoming>) -> Result<Arc<Claims>, ApiError> {
    let token = match req.headers().get(AUTHORIZATION) {
        Some(header) => header
            .to_str()
            .ok()
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized("the Authorization header must be 'Bearer <token>'")
            })?,
        None => req
            .headers()
            .get("x-api-key")
            .and_then(|h| h.to_str().ok())
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing credentials: send 'Authorization: Bearer <your warden token>' \
                     (or 'x-api-key: <your warden token>')",
                )
            })?,
    };
    token::verify(&app.db.directory(), token).map_err(|e| {
        let hint = match e {
            TokenError::Expired | TokenError::Revoked => "; ask your admin for a new token",
            _ => "",
        };
        ApiError::unauthorized(format!("{e}{hint}"))
    })
}
