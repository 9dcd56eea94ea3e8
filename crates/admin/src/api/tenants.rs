//! Tenants and their tasks.

use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::{audit, internal, json, require_reason, Caller};
use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::Body;
use crate::state::model::{KeyAlgorithm, Role, Task, Tenant, TenantStatus};

pub fn list(app: &App, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let directory = app.db.directory();
    let mut tenants: Vec<_> = directory
        .tenants
        .values()
        .filter_map(|t| t.tenant.as_ref())
        .filter(|t| caller.scope(&t.id).is_ok())
        .collect();
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    json(StatusCode::OK, &json!({ "data": tenants }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    id: String,
    name: Option<String>,
    /// IANA zone for quota resets (default UTC).
    timezone: Option<String>,
    /// `HS256` (default) or `EdDSA`.
    #[serde(default)]
    key_algorithm: KeyAlgorithm,
}

pub fn create(app: &App, caller: &Caller, new: NewTenant) -> Result<Response<Body>, ApiError> {
    if caller.role != Role::SuperAdmin {
        return Err(ApiError::new(
            ErrorCode::AdminRequired,
            "only a super_admin creates tenants",
        ));
    }
    let options = crate::provision::TenantOptions {
        timezone: new.timezone,
        key_algorithm: new.key_algorithm,
    };
    let name = new.name.as_deref().unwrap_or(&new.id);
    let tenant = crate::provision::create_tenant(&app.db, &new.id, name, options)
        .map_err(|e| ApiError::new(ErrorCode::InvalidTenant, format!("{e:#}")))?;
    audit(
        app,
        caller,
        &tenant.id,
        "tenant.create",
        &tenant.id,
        None,
        json!({}),
    )?;
    json(StatusCode::CREATED, &tenant)
}

/// The tenant's record.
pub fn find(app: &App, tenant: &str) -> Result<Tenant, ApiError> {
    app.db
        .directory()
        .tenant(tenant)
        .and_then(|e| e.tenant.clone())
        .ok_or_else(|| ApiError::not_found(format!("no tenant '{tenant}'")))
}

pub fn show(app: &App, caller: &Caller, tenant: &str) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let directory = app.db.directory();
    let entry = directory
        .tenant(tenant)
        .and_then(|e| e.tenant.as_ref().map(|t| (t, e)))
        .ok_or_else(|| ApiError::not_found(format!("no tenant '{tenant}'")))?;
    json(
        StatusCode::OK,
        &json!({ "tenant": entry.0, "users": entry.1.users.len(), "tasks": entry.1.tasks.len() }),
    )
}

/// `POST /admin/v1/tenants/{t}/suspend|activate {reason}` (super_admin): a
/// suspended tenant's calls are refused by the auth stage; its state is kept.
pub fn set_status(
    app: &App,
    caller: &Caller,
    tenant: &str,
    status: TenantStatus,
    body: Reason,
) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    if caller.role != Role::SuperAdmin {
        return Err(ApiError::new(
            ErrorCode::AdminRequired,
            "only a super_admin suspends or re-activates a tenant",
        ));
    }
    let reason = require_reason(body.reason)?;
    let mut record = find(app, tenant)?;
    record.status = status;
    app.db.put_tenant(&record).map_err(internal)?;
    let action = match status {
        TenantStatus::Suspended => "tenant.suspend",
        TenantStatus::Active => "tenant.activate",
    };
    audit(app, caller, tenant, action, tenant, Some(reason), json!({}))?;
    json(StatusCode::OK, &record)
}

pub fn tasks(app: &App, caller: &Caller, tenant: &str) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let directory = app.db.directory();
    let mut tasks: Vec<&Task> = directory
        .tenant(tenant)
        .map(|e| e.tasks.values().collect())
        .unwrap_or_default();
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    json(StatusCode::OK, &json!({ "data": tasks }))
}

pub fn task(
    app: &App,
    caller: &Caller,
    tenant: &str,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let directory = app.db.directory();
    let task = directory
        .tenant(tenant)
        .and_then(|e| e.tasks.get(id))
        .ok_or_else(|| ApiError::not_found(format!("no task '{id}' in tenant '{tenant}'")))?;
    json(StatusCode::OK, task)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    id: String,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    endpoints: Vec<String>,
    #[serde(default)]
    models: Vec<String>,
}

pub fn create_task(
    app: &App,
    caller: &Caller,
    tenant: &str,
    new: NewTask,
) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    if app
        .db
        .directory()
        .tenant(tenant)
        .is_some_and(|e| e.tasks.contains_key(&new.id))
    {
        return Err(ApiError::new(
            ErrorCode::TaskExists,
            format!("task '{}' already exists", new.id),
        ));
    }
    let task = crate::provision::create_task(
        &app.db,
        Task {
            tenant_id: tenant.to_string(),
            id: new.id,
            title: new.title,
            description: new.description,
            keywords: new.keywords,
            endpoints: new.endpoints,
            models: new.models,
            active: true,
            examples: Vec::new(),
        },
    )
    .map_err(|e| ApiError::new(ErrorCode::InvalidTask, format!("{e:#}")))?;
    audit(
        app,
        caller,
        tenant,
        "task.create",
        &task.id,
        None,
        json!({ "title": task.title }),
    )?;
    json(StatusCode::CREATED, &task)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    pub reason: Option<String>,
}

pub fn archive_task(
    app: &App,
    caller: &Caller,
    tenant: &str,
    id: &str,
    body: Reason,
) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let reason = require_reason(body.reason)?;
    let mut task = app
        .db
        .directory()
        .tenant(tenant)
        .and_then(|e| e.tasks.get(id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("no task '{id}'")))?;
    task.active = false;
    app.db.put_task(&task).map_err(internal)?;
    audit(
        app,
        caller,
        tenant,
        "task.archive",
        id,
        Some(reason),
        json!({}),
    )?;
    json(StatusCode::OK, &task)
}
