//! Tokens: issue (the token is shown once, in this response only), list
//! (records, never tokens), revoke (refused at once on every worker).

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::tenants::Reason;
use super::{audit, internal, json, require_reason, Caller};
use crate::app::App;
use crate::error::ApiError;
use crate::http::Body;
use crate::token::{self, TokenRequest};

pub fn list(app: &App, caller: &Caller, tenant: &str) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let tokens = app.db.tokens_of(tenant).map_err(internal)?;
    json(StatusCode::OK, &json!({ "data": tokens }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    user: String,
    #[serde(default)]
    tasks: Vec<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    endpoints: Vec<String>,
    /// Lifetime in seconds (default 30 days).
    ttl_secs: Option<u64>,
}

pub fn issue(
    app: &App,
    caller: &Caller,
    tenant: &str,
    body: IssueToken,
) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let ttl_secs = body.ttl_secs.unwrap_or(30 * 86_400);
    let issued = token::issue(
        &app.db,
        TokenRequest {
            tenant_id: tenant,
            user_id: &body.user,
            tasks: body.tasks.clone(),
            endpoints: body.endpoints,
            models: body.models.clone(),
            ttl_secs,
            issued_at: None,
        },
    )
    .map_err(|e| ApiError::bad_request("invalid_token_request", format!("{e:#}")))?;
    let claims = token::verify(&app.db.directory(), &issued)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    audit(
        app,
        caller,
        tenant,
        "token.issue",
        &claims.jti,
        None,
        json!({ "user": body.user, "tasks": body.tasks, "models": body.models, "expires_at": claims.exp }),
    )?;
    json(
        StatusCode::CREATED,
        &json!({ "token": issued, "jti": claims.jti, "user": claims.sub, "expires_at": claims.exp }),
    )
}

/// `POST /admin/v1/tenants/{t}/keys/rotate {reason}`: a new signing key.
pub fn rotate_key(
    app: &App,
    caller: &Caller,
    tenant: &str,
    body: Reason,
) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let reason = require_reason(body.reason)?;
    let key = crate::admin::rotate_key(&app.db, tenant).map_err(internal)?;
    audit(
        app,
        caller,
        tenant,
        "key.rotate",
        &key.kid,
        Some(reason),
        json!({ "generation": key.generation }),
    )?;
    json(
        StatusCode::CREATED,
        &json!({ "kid": key.kid, "algorithm": key.algorithm, "generation": key.generation }),
    )
}

pub fn revoke(
    app: &App,
    caller: &Caller,
    tenant: &str,
    jti: &str,
    body: Reason,
) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let reason = require_reason(body.reason)?;
    if !app.db.revoke_token(tenant, jti).map_err(internal)? {
        return Err(ApiError::not_found(format!(
            "no token '{jti}' in tenant '{tenant}'"
        )));
    }
    audit(
        app,
        caller,
        tenant,
        "token.revoke",
        jti,
        Some(reason),
        json!({}),
    )?;
    json(StatusCode::OK, &json!({ "jti": jti, "revoked": true }))
}
