//! Tokens: issue (the token is shown once, in this response only), list
//! (records, never tokens), revoke (refused at once on every worker).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tenants::Reason;
use super::{audit, internal, require_reason, Access, Caller, List};
use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::state::model::{KeyAlgorithm, SigningKey, TokenRecord};
use crate::token::{self, TokenRequest};

pub fn list(app: &App, caller: &Caller, tenant: &str) -> Result<List<TokenRecord>, ApiError> {
    caller.may(Access::Read, tenant)?;
    let mut tokens = app.db.tokens_of(tenant).map_err(internal)?;
    if caller.role == crate::state::model::Role::Manager {
        let directory = app.db.directory();
        let users = &directory.tenant(tenant).map(|e| &e.users);
        tokens.retain(|t| {
            users
                .and_then(|u| u.get(&t.user_id))
                .is_some_and(|u| caller.reaches(app, u))
        });
    }
    Ok(tokens.into())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    pub user: String,
    #[serde(default)]
    pub tasks: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Lifetime in seconds (default 30 days).
    pub ttl_secs: Option<u64>,
}

/// A new token: shown in this answer only; Warden keeps its record.
#[derive(Debug, Serialize)]
pub struct IssuedToken {
    pub token: String,
    pub jti: String,
    pub user: String,
    /// Unix seconds.
    pub expires_at: u64,
}

pub fn issue(
    app: &App,
    caller: &Caller,
    tenant: &str,
    body: IssueToken,
) -> Result<IssuedToken, ApiError> {
    super::users::find(app, caller, Access::ManageUsers, tenant, &body.user)?;
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
    Ok(IssuedToken {
        token: issued,
        jti: claims.jti.clone(),
        user: claims.sub.clone(),
        expires_at: claims.exp,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    pub reason: Option<String>,
    /// Defaults to the current key's algorithm.
    pub algorithm: Option<KeyAlgorithm>,
}

/// `POST /admin/v1/tenants/{t}/keys/rotate {reason, algorithm?}`: a new signing key.
pub fn rotate_key(
    app: &App,
    caller: &Caller,
    tenant: &str,
    body: Rotation,
) -> Result<KeyView, ApiError> {
    caller.may(Access::Administer, tenant)?;
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
    Ok(KeyView::of(&key))
}

/// What may be shown of a key: never the secret; the public half of EdDSA keys
/// so third parties can verify tokens themselves.
#[derive(Debug, Serialize)]
pub struct KeyView {
    pub kid: String,
    pub algorithm: KeyAlgorithm,
    pub generation: u64,
    pub created_at: u64,
    pub public_key: Option<String>,
}

impl KeyView {
    fn of(key: &SigningKey) -> Self {
        Self {
            kid: key.kid.clone(),
            algorithm: key.algorithm,
            generation: key.generation,
            created_at: key.created_at,
            public_key: key.public_key.clone(),
        }
    }
}

/// `GET /admin/v1/tenants/{t}/keys`: the tenant's keys, newest first.
pub fn list_keys(app: &App, caller: &Caller, tenant: &str) -> Result<List<KeyView>, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    let directory = app.db.directory();
    let mut keys: Vec<&SigningKey> = directory
        .keys
        .values()
        .map(|k| &k.record)
        .filter(|k| k.tenant_id == tenant)
        .collect();
    keys.sort_by_key(|k| std::cmp::Reverse(k.generation));
    Ok(keys.into_iter().map(KeyView::of).collect::<Vec<_>>().into())
}

pub fn revoke(
    app: &App,
    caller: &Caller,
    tenant: &str,
    jti: &str,
    body: Reason,
) -> Result<Revoked, ApiError> {
    caller.may(Access::ManageUsers, tenant)?;
    // A manager revokes the tokens of the users they reach; others are 404.
    let owner = app
        .db
        .token(jti)
        .map_err(internal)?
        .filter(|t| t.tenant_id == tenant);
    if let Some(owner) = &owner {
        super::users::find(app, caller, Access::ManageUsers, tenant, &owner.user_id)?;
    }
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
    Ok(Revoked {
        jti: jti.to_string(),
        revoked: true,
    })
}

/// A revoked token: refused at once on every worker.
#[derive(Debug, Serialize)]
pub struct Revoked {
    pub jti: String,
    pub revoked: bool,
}
