//! `GET /v1/models`: only the models the caller's token may use.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::error::ApiError;
use crate::http::{json_response, Body};

pub fn handle(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let claims = crate::auth::authenticate(app, req)?;
    let offered = &app.config.upstream.models;
    let models: Vec<&String> = if claims.models.is_empty() || claims.models.iter().any(|m| m == "*")
    {
        offered.iter().collect()
    } else {
        claims.models.iter().collect()
    };
    let data: Vec<_> = models
        .into_iter()
        .map(|id| json!({ "id": id, "object": "model", "created": 0, "owned_by": "warden" }))
        .collect();
    let body = serde_json::to_vec(&json!({ "object": "list", "data": data }))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}
