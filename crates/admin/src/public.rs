//! The invitation routes open to anyone holding an invitation's link (no
//! account yet): `GET /invitations/public/{token}/details` and `POST
//! /invitations/public/{token}/accept {user_id?, name?}`. The console's
//! `/ui/invite/{token}` page is the same two steps for a browser.

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use crate::api::invitations::{self, Acceptance};
use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::Body;

const MAX_BODY: usize = 4 << 10;

pub async fn route(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let answer = match (req.method().clone(), segments.as_slice()) {
        (Method::GET, ["invitations", "public", token, "details"]) => {
            json(invitations::public_details(app, token))
        }
        (Method::POST, ["invitations", "public", token, "accept"]) => {
            let token = token.to_string();
            match read(req).await {
                Ok(acceptance) => json(invitations::accept(app, &token, acceptance)),
                Err(e) => Err(e),
            }
        }
        _ => Err(ApiError::not_found("no such invitation route")),
    };
    answer.unwrap_or_else(ApiError::into_response)
}

fn json<T: Serialize>(answer: Result<T, ApiError>) -> Result<Response<Body>, ApiError> {
    let bytes = serde_json::to_vec(&answer?).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(crate::http::json_response(StatusCode::OK, bytes))
}

async fn read(req: Request<Incoming>) -> Result<Acceptance, ApiError> {
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Err(ApiError::payload_too_large(MAX_BODY)),
    };
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Acceptance::default());
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("invalid request body: {e}")))
}
