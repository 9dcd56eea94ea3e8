//! Tokens: issue (the token is shown once, in this response only), list
//! (records, never tokens), revoke (refused at once on every worker).

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::tenants::Reason;
use super::{audit, internal, json, require_reason, Caller};
use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::Body;
use crate::state::model::{KeyAlgorithm, SigningKey};
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
    .map_err(|e| ApiError::new(ErrorCode::InvalidTokenRequest, format!("{e:#}")))?;
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    reason: Option<String>,
    /// Defaults to the current key's algorithm.
    algorithm: Option<KeyAlgorithm>,
}

/// `POST /admin/v1/tenants/{t}/keys/rotate {reason, algorithm?}`: a new signing key.
pub fn rotate_key(
    app: &App,
    caller: &Caller,
    tenant: &str,
    body: Rotation,
) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let reason = require_reason(body.reason)?;
    let key = crate::provision::rotate_key(&app.db, tenant, body.algorithm).map_err(internal)?;
    audit(
        app,
        caller,
        tenant,
        "key.rotate",
        &key.kid,
        Some(reason),
        json!({ "generation": key.generation, "algorithm": key.algorithm }),
    )?;
    json(StatusCode::CREATED, &public_view(&key))
}

/// What may be shown of a key: never the secret; the public half of EdDSA keys
/// so third parties can verify tokens themselves.
fn public_view(key: &SigningKey) -> serde_json::Value {
    json!({
        "kid": key.kid,
        "algorithm": key.algorithm,
        "generation": key.generation,
        "created_at": key.created_at,
        "public_key": key.public_key,
    })
}

/// `GET /admin/v1/tenants/{t}/keys`: the tenant's keys, newest first.
pub fn list_keys(app: &App, caller: &Caller, tenant: &str) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let directory = app.db.directory();
    let mut keys: Vec<&SigningKey> = directory
        .keys
        .values()
        .map(|k| &k.record)
        .filter(|k| k.tenant_id == tenant)
        .collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.generation));
    let data: Vec<_> = keys.into_iter().map(public_view).collect();
    json(StatusCode::OK, &json!({ "data": data }))
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
