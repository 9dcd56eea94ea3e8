//! Groups: create, rename, set the limits its members share, add and
//! remove members, delete. Admins change them; everyone with read access
//! sees them (a manager, the groups they belong to).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tenants::Reason;
use super::{audit, internal, Access, Caller};
use crate::app::App;
use crate::domain::groups::{group_pool, PoolUsage};
use crate::error::{ApiError, ErrorCode};
use crate::state::model::{Group, PoolLimits, Role, User};

/// A group with its members (ids, names and roles) and what they have used
/// of its limits.
#[derive(Debug, Serialize)]
pub struct GroupView {
    #[serde(flatten)]
    pub group: Group,
    pub members: Vec<Member>,
    pub usage: PoolUsage,
}

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    pub id: String,
    pub name: String,
    pub role: Role,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message)
}

fn view(app: &App, group: &Group, users: &[&User]) -> GroupView {
    let mut members: Vec<Member> = users
        .iter()
        .filter(|u| u.groups.contains(&group.id))
        .map(|u| Member {
            id: u.id.clone(),
            name: u.name.clone(),
            role: u.role,
        })
        .collect();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let at = app.moment(&group.tenant_id);
    let usage = app
        .activity
        .pool_usage(&group.tenant_id, &group_pool(&group.id), &at);
    GroupView {
        group: group.clone(),
        members,
        usage,
    }
}

/// The groups a caller sees: all of the tenant's, or a manager's own.
fn visible(app: &App, caller: &Caller, tenant: &str) -> Result<Vec<GroupView>, ApiError> {
    caller.may(Access::Read, tenant)?;
    let directory = app.db.directory();
    let Some(entry) = directory.tenant(tenant) else {
        return Ok(Vec::new());
    };
    let mine: Option<&Vec<String>> = (caller.role == Role::Manager)
        .then(|| entry.users.get(&caller.user_id).map(|u| &u.groups))
        .flatten();
    let users: Vec<&User> = entry.users.values().collect();
    let mut groups: Vec<GroupView> = entry
        .groups
        .values()
        .filter(|g| caller.role != Role::Manager || mine.is_some_and(|m| m.contains(&g.id)))
        .map(|g| view(app, g, &users))
        .collect();
    groups.sort_by(|a, b| a.group.id.cmp(&b.group.id));
    Ok(groups)
}

/// `GET /admin/v1/tenants/{t}/groups`
pub fn list(app: &App, caller: &Caller, tenant: &str) -> Result<Vec<GroupView>, ApiError> {
    visible(app, caller, tenant)
}

/// `GET /admin/v1/tenants/{t}/groups/{g}`
pub fn show(app: &App, caller: &Caller, tenant: &str, id: &str) -> Result<GroupView, ApiError> {
    visible(app, caller, tenant)?
        .into_iter()
        .find(|g| g.group.id == id)
        .ok_or_else(|| no_group(tenant, id))
}

fn no_group(tenant: &str, id: &str) -> ApiError {
    ApiError::not_found(format!("no group '{id}' in tenant '{tenant}'"))
}

/// Refuses ids of groups the tenant does not have.
pub fn check_exist(app: &App, tenant: &str, ids: &[String]) -> Result<(), ApiError> {
    let directory = app.db.directory();
    let entry = directory.tenant(tenant);
    match ids
        .iter()
        .find(|id| !entry.is_some_and(|e| e.groups.contains_key(*id)))
    {
        Some(missing) => Err(invalid(format!(
            "no group '{missing}' in tenant '{tenant}'"
        ))),
        None => Ok(()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub id: String,
    pub name: Option<String>,
    #[serde(default)]
    pub limits: PoolLimits,
}

/// `POST /admin/v1/tenants/{t}/groups {id, name?, limits?}`
pub fn create(
    app: &App,
    caller: &Caller,
    tenant: &str,
    new: NewGroup,
) -> Result<GroupView, ApiError> {
    caller.may(Access::Administer, tenant)?;
    crate::provision::validate_id("group", &new.id).map_err(|e| invalid(format!("{e:#}")))?;
    if app
        .db
        .directory()
        .tenant(tenant)
        .is_some_and(|e| e.groups.contains_key(&new.id))
    {
        return Err(invalid(format!("group '{}' exists already", new.id)));
    }
    let group = Group {
        tenant_id: tenant.to_string(),
        id: new.id.clone(),
        name: name_of(new.name.as_deref(), &new.id)?,
        limits: new.limits,
        created_at: crate::clock::now_secs(),
    };
    app.db
        .write_group(tenant, &group.id, Some(&group), &[])
        .map_err(internal)?;
    audit(
        app,
        caller,
        tenant,
        "group.create",
        &group.id,
        None,
        json!({ "name": group.name, "limits": group.limits }),
    )?;
    show(app, caller, tenant, &group.id)
}

fn name_of(name: Option<&str>, id: &str) -> Result<String, ApiError> {
    let name = name.map(str::trim).filter(|n| !n.is_empty()).unwrap_or(id);
    if name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err(invalid("a group's name is up to 80 printable characters"));
    }
    Ok(name.to_string())
}

fn find(app: &App, tenant: &str, id: &str) -> Result<Group, ApiError> {
    app.db
        .directory()
        .tenant(tenant)
        .and_then(|e| e.groups.get(id).cloned())
        .ok_or_else(|| no_group(tenant, id))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupChange {
    pub name: Option<String>,
    pub limits: Option<PoolLimits>,
    pub reason: Option<String>,
}

/// `PATCH /admin/v1/tenants/{t}/groups/{g} {name?, limits?, reason?}`:
/// renames it or replaces its limits (in force on the next call).
pub fn update(
    app: &App,
    caller: &Caller,
    tenant: &str,
    id: &str,
    change: GroupChange,
) -> Result<GroupView, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let before = find(app, tenant, id)?;
    let mut group = before.clone();
    if let Some(name) = change.name.as_deref() {
        group.name = name_of(Some(name), id)?;
    }
    if let Some(limits) = change.limits {
        group.limits = limits;
    }
    app.db
        .write_group(tenant, id, Some(&group), &[])
        .map_err(internal)?;
    audit(
        app,
        caller,
        tenant,
        "group.update",
        id,
        change.reason,
        json!({
            "previous": { "name": before.name, "limits": before.limits },
            "new": { "name": group.name, "limits": group.limits },
        }),
    )?;
    show(app, caller, tenant, id)
}

/// `DELETE /admin/v1/tenants/{t}/groups/{g}`: its members leave it (in
/// the same write); their own limits and other groups stay.
pub fn delete(
    app: &App,
    caller: &Caller,
    tenant: &str,
    id: &str,
    body: Reason,
) -> Result<serde_json::Value, ApiError> {
    caller.may(Access::Administer, tenant)?;
    find(app, tenant, id)?;
    let members: Vec<User> = app
        .db
        .directory()
        .tenant(tenant)
        .map(|e| {
            e.users
                .values()
                .filter(|u| u.groups.iter().any(|g| g == id))
                .cloned()
                .map(|mut u| {
                    u.groups.retain(|g| g != id);
                    u
                })
                .collect()
        })
        .unwrap_or_default();
    app.db
        .write_group(tenant, id, None, &members)
        .map_err(internal)?;
    let left: Vec<&str> = members.iter().map(|u| u.id.as_str()).collect();
    audit(
        app,
        caller,
        tenant,
        "group.delete",
        id,
        body.reason,
        json!({ "members": left }),
    )?;
    Ok(json!({ "id": id, "deleted": true, "members_removed": left.len() }))
}

/// `PUT /admin/v1/tenants/{t}/groups/{g}/members/{u}` (`member`) or
/// `DELETE` (not): puts `user` in group `id` or takes them out; idempotent.
pub fn set_member(
    app: &App,
    caller: &Caller,
    (tenant, id, user): (&str, &str, &str),
    member: bool,
    body: Reason,
) -> Result<GroupView, ApiError> {
    let reason = body.reason;
    caller.may(Access::Administer, tenant)?;
    let group = find(app, tenant, id)?;
    let mut record = super::users::find(app, caller, Access::Administer, tenant, user)?;
    let already = record.groups.iter().any(|g| g == id);
    if already != member {
        if member {
            record.groups.push(id.to_string());
        } else {
            record.groups.retain(|g| g != id);
        }
        app.db
            .write_group(tenant, id, Some(&group), std::slice::from_ref(&record))
            .map_err(internal)?;
        let action = if member {
            "group.member_add"
        } else {
            "group.member_remove"
        };
        audit(
            app,
            caller,
            tenant,
            action,
            user,
            reason,
            json!({ "group": id }),
        )?;
    }
    show(app, caller, tenant, id)
}
