//! `GET /v1/models` and `GET /v1/models/{id}`: the models the caller may
//! call, across the server's and its tenant's providers (a token that
//! lists its models sees those).

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::{json_response, Body};

/// (model, provider) pairs the caller may use.
fn callable(app: &App, req: &Request<Incoming>) -> Result<Vec<(String, String)>, ApiError> {
    let claims = crate::auth::authenticate(app, req)?;
    let directory = app.stores.identity.snapshot();
    let offered = app.providers.offered(directory.tenant(&claims.tid));
    let everything = claims.models.is_empty() || claims.models.iter().any(|m| m == "*");
    if everything {
        return Ok(offered);
    }
    Ok(claims
        .models
        .iter()
        .map(|m| {
            let owner = offered.iter().find(|(o, _)| o == m).map(|(_, p)| p.clone());
            (m.clone(), owner.unwrap_or_else(|| "warden".into()))
        })
        .collect())
}

fn model_object(id: &str, owner: &str) -> serde_json::Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": owner })
}

pub fn list(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let data: Vec<_> = callable(app, req)?
        .iter()
        .map(|(id, owner)| model_object(id, owner))
        .collect();
    let body = serde_json::to_vec(&json!({ "object": "list", "data": data }))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

pub fn one(app: &App, req: &Request<Incoming>, id: &str) -> Result<Response<Body>, ApiError> {
    let models = callable(app, req)?;
    let Some((id, owner)) = models.iter().find(|(m, _)| m == id) else {
        return Err(ApiError::new(
            ErrorCode::ModelNotFound,
            format!("the model '{id}' does not exist or this token may not use it"),
        ));
    };
    let body = serde_json::to_vec(&model_object(id, owner))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}
