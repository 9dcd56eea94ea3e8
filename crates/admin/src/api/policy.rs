//! A tenant's policy, set by its own admins: which plugin runs at each
//! stage with which config, the guardrails in order, the deviation
//! thresholds, `fail_open` and sandbox limits, within the ceilings of the
//! server's `[self_service]`. A change is checked as a policy file is,
//! built into a chain, stored as a new version and swapped in for the next
//! request; the audit log keeps a diff. No file on the server is involved.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::plugins::chains;
use super::{audit, internal, require_reason, Access, Caller};
use crate::app::App;
use crate::chain::Chains;
use crate::domain::plans::Feature;
use crate::domain::policies::StoredPolicy;
use crate::error::{ApiError, ErrorCode};
use warden_proxy::policy::{
    json_from_toml, toml_from_json, Policy, PolicyOrigin, SelfServiceLimits,
};

/// A tenant's policy as the API shows it.
#[derive(Debug, Serialize)]
pub struct PolicyView {
    /// `api` (set through this API), `file` (`policies/<tenant>.toml` on
    /// the server) or `default` (the server's default policy).
    pub source: &'static str,
    /// The stored version, when `source` is `api`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The policy file's text.
    pub toml: String,
    /// The same, as JSON.
    pub policy: serde_json::Value,
    /// What this server lets the tenant set.
    pub limits: SelfServiceLimits,
}

/// A new policy: the policy file's text, or its structure as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub toml: Option<String>,
    pub policy: Option<serde_json::Value>,
    /// Kept in the version history and the audit log.
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackInput {
    pub version: u32,
    pub reason: Option<String>,
}

/// One version, as the history shows it.
#[derive(Debug, Serialize)]
pub struct VersionView {
    pub version: u32,
    pub created_at: u64,
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `None`: this version handed the tenant back to the server's policy.
    pub toml: Option<String>,
    /// Whether the tenant runs this version now.
    pub current: bool,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidPolicy, message)
}

fn view(app: &App, chains: &Chains, tenant: &str) -> Result<PolicyView, ApiError> {
    let (origin, toml) = chains.policy_text(tenant).map_err(internal)?;
    let (source, version) = match origin {
        PolicyOrigin::Api { version } => ("api", Some(version)),
        PolicyOrigin::File => ("file", None),
        PolicyOrigin::Default => ("default", None),
    };
    Ok(PolicyView {
        source,
        version,
        policy: json_from_toml(&toml).map_err(internal)?,
        toml,
        limits: app.config.self_service.clone(),
    })
}

/// `GET /admin/v1/tenants/{t}/policy`.
pub fn show(app: &App, caller: &Caller, tenant: &str) -> Result<PolicyView, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    view(app, chains(app)?, tenant)
}

/// `GET /admin/v1/tenants/{t}/policy/versions`, newest first.
pub fn versions(app: &App, caller: &Caller, tenant: &str) -> Result<Vec<VersionView>, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    let stored = app.db.policy_versions(tenant).map_err(internal)?;
    let latest = stored.last().map(|p| p.version);
    Ok(stored
        .into_iter()
        .rev()
        .map(|p| VersionView {
            current: Some(p.version) == latest,
            version: p.version,
            created_at: p.created_at,
            actor: p.actor,
            note: p.note,
            toml: p.text,
        })
        .collect())
}

/// `PUT /admin/v1/tenants/{t}/policy`: checks, builds, stores and applies.
pub fn put(
    app: &App,
    caller: &Caller,
    tenant: &str,
    input: PolicyInput,
) -> Result<PolicyView, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let text = match (input.toml, input.policy) {
        (Some(text), None) => text,
        (None, Some(policy)) => toml_from_json(&policy).map_err(|e| invalid(format!("{e:#}")))?,
        _ => {
            return Err(invalid(
                "send the policy as 'toml' (the policy file's text) or as 'policy' (its structure as JSON), one of the two",
            ))
        }
    };
    let note = input.reason.filter(|r| !r.trim().is_empty());
    store(app, caller, tenant, Some(text), note, "policy.put")
}

/// `DELETE /admin/v1/tenants/{t}/policy`: back to the server's policy.
pub fn reset(
    app: &App,
    caller: &Caller,
    tenant: &str,
    input: PolicyInput,
) -> Result<PolicyView, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let note = Some(require_reason(input.reason)?);
    store(app, caller, tenant, None, note, "policy.reset")
}

/// `POST /admin/v1/tenants/{t}/policy/rollback`: a new version with the
/// text of an earlier one (checked again: plugins may have gone since).
pub fn rollback(
    app: &App,
    caller: &Caller,
    tenant: &str,
    input: RollbackInput,
) -> Result<PolicyView, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let reason = require_reason(input.reason)?;
    let earlier = app
        .db
        .policy_versions(tenant)
        .map_err(internal)?
        .into_iter()
        .find(|p| p.version == input.version)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "tenant '{tenant}' has no policy version {}",
                input.version
            ))
        })?;
    let note = Some(format!("rollback to version {}: {reason}", input.version));
    store(app, caller, tenant, earlier.text, note, "policy.rollback")
}

/// Checks `text` (none: the server's policy), builds the tenant's chain with
/// it, stores it as the next version and swaps the chain in; audits a diff.
fn store(
    app: &App,
    caller: &Caller,
    tenant: &str,
    text: Option<String>,
    note: Option<String>,
    action: &str,
) -> Result<PolicyView, ApiError> {
    let chains = chains(app)?;
    if app
        .db
        .directory()
        .tenant(tenant)
        .and_then(|e| e.tenant.as_ref())
        .is_none()
    {
        return Err(ApiError::not_found(format!("no tenant '{tenant}'")));
    }
    let parsed = match &text {
        Some(text) => Some(checked(app, chains, tenant, text)?),
        None => None,
    };
    let (_, before) = chains.policy_text(tenant).map_err(internal)?;
    let version = app
        .db
        .policy_versions(tenant)
        .map_err(internal)?
        .last()
        .map_or(1, |p| p.version + 1);
    let stored = StoredPolicy {
        tenant_id: tenant.to_string(),
        version,
        text: text.clone(),
        created_at: crate::clock::now_ms(),
        actor: caller.actor(),
        note: note.clone(),
    };
    let applied = parsed.map(|p| (version, text.as_deref().unwrap_or_default(), p));
    chains
        .apply_policy(tenant, applied, || app.db.put_policy(&stored))
        .map_err(|e| {
            invalid(format!(
                "the policy does not build, the running one stays: {e:#}"
            ))
        })?;
    let shown = view(app, chains, tenant)?;
    let details = json!({ "version": version, "diff": diff(&before, &shown.toml) });
    audit(app, caller, tenant, action, "policy", note, details)?;
    Ok(shown)
}

/// Parses `text` as a policy file and holds it to the server's ceilings.
fn checked(
    app: &App,
    chains: &Chains,
    tenant: &str,
    text: &str,
) -> Result<std::sync::Arc<Policy>, ApiError> {
    let policy = Policy::parse(text, "policy").map_err(|e| invalid(format!("{e:#}")))?;
    if policy.embedded_intent {
        super::subscription::require_feature(app, tenant, Feature::EmbeddedClassification)?;
    }
    let server = chains.server_policy(tenant).map_err(internal)?;
    if let Some(refusal) = app.config.self_service.refusal(&policy, &server) {
        return Err(invalid(refusal));
    }
    Ok(std::sync::Arc::new(policy))
}

/// A unified diff of two policy texts, for the audit log.
fn diff(before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(2)
        .header("before", "after")
        .to_string()
}
