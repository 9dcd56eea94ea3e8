//! Tenants and their tasks.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{audit, internal, require_reason, Access, Caller, List};
use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::state::model::{KeyAlgorithm, Task, Tenant, TenantStatus};

pub fn list(app: &App, caller: &Caller) -> Result<List<Tenant>, ApiError> {
    let directory = app.db.directory();
    let mut tenants: Vec<_> = directory
        .tenants
        .values()
        .filter_map(|t| t.tenant.as_ref())
        .filter(|t| caller.sees(&t.id))
        .cloned()
        .collect();
    tenants.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tenants.into())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    pub id: String,
    pub name: Option<String>,
    /// IANA zone for quota resets (default UTC).
    pub timezone: Option<String>,
    /// `HS256` (default) or `EdDSA`.
    #[serde(default)]
    pub key_algorithm: KeyAlgorithm,
    /// A plan of the server's catalogue: the tenant starts its subscription
    /// (a trial when the plan has one). None: no plan limits it.
    pub plan: Option<String>,
}

pub fn create(app: &App, caller: &Caller, new: NewTenant) -> Result<Tenant, ApiError> {
    caller.has(Access::Operate)?;
    let subscription = match &new.plan {
        Some(id) => {
            let plan = app.config.plan(id).ok_or_else(|| {
                ApiError::new(ErrorCode::InvalidParameter, format!("no plan '{id}'"))
            })?;
            Some(crate::domain::plans::Subscription::start(
                plan,
                app.clock.now_ms(),
            ))
        }
        None => None,
    };
    let options = crate::provision::TenantOptions {
        timezone: new.timezone,
        key_algorithm: new.key_algorithm,
        subscription,
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
    Ok(tenant)
}

/// The tenant's record.
pub fn find(app: &App, tenant: &str) -> Result<Tenant, ApiError> {
    app.db
        .directory()
        .tenant(tenant)
        .and_then(|e| e.tenant.clone())
        .ok_or_else(|| ApiError::not_found(format!("no tenant '{tenant}'")))
}

/// A tenant and how many users and tasks it has.
#[derive(Debug, Serialize)]
pub struct TenantView {
    pub tenant: Tenant,
    pub users: usize,
    pub tasks: usize,
}

pub fn show(app: &App, caller: &Caller, tenant: &str) -> Result<TenantView, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    let directory = app.db.directory();
    let entry = directory
        .tenant(tenant)
        .and_then(|e| e.tenant.as_ref().map(|t| (t, e)))
        .ok_or_else(|| ApiError::not_found(format!("no tenant '{tenant}'")))?;
    Ok(TenantView {
        tenant: entry.0.clone(),
        users: entry.1.users.len(),
        tasks: entry.1.tasks.len(),
    })
}

/// `POST /admin/v1/tenants/{t}/suspend|activate {reason}` (super_admin): a
/// suspended tenant's calls are refused by the auth stage; its state is kept.
pub fn set_status(
    app: &App,
    caller: &Caller,
    tenant: &str,
    status: TenantStatus,
    body: Reason,
) -> Result<Tenant, ApiError> {
    caller.may(Access::Operate, tenant)?;
    let reason = require_reason(body.reason)?;
    let mut record = find(app, tenant)?;
    record.status = status;
    app.db.put_tenant(&record).map_err(internal)?;
    let action = match status {
        TenantStatus::Suspended => "tenant.suspend",
        TenantStatus::Active => "tenant.activate",
    };
    audit(app, caller, tenant, action, tenant, Some(reason), json!({}))?;
    Ok(record)
}

pub fn tasks(app: &App, caller: &Caller, tenant: &str) -> Result<List<Task>, ApiError> {
    caller.may(Access::Read, tenant)?;
    let directory = app.db.directory();
    let mut tasks: Vec<Task> = directory
        .tenant(tenant)
        .map(|e| e.tasks.values().cloned().collect())
        .unwrap_or_default();
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tasks.into())
}

pub fn task(app: &App, caller: &Caller, tenant: &str, id: &str) -> Result<Task, ApiError> {
    caller.may(Access::Read, tenant)?;
    let directory = app.db.directory();
    let task = directory
        .tenant(tenant)
        .and_then(|e| e.tasks.get(id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("no task '{id}' in tenant '{tenant}'")))?;
    Ok(task)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
    /// Providers its calls may go to; empty = any.
    #[serde(default)]
    pub providers: Vec<String>,
}

pub fn create_task(
    app: &App,
    caller: &Caller,
    tenant: &str,
    new: NewTask,
) -> Result<Task, ApiError> {
    caller.may(Access::Administer, tenant)?;
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
            providers: new.providers,
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
    Ok(task)
}

#[derive(Debug, Default, Deserialize)]
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
) -> Result<Task, ApiError> {
    caller.may(Access::Administer, tenant)?;
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
    Ok(task)
}
