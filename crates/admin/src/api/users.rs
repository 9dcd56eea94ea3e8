//! Users: list with standing and usage, create, block, re-enable, limits.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tenants::Reason;
use super::{audit, internal, require_reason, Access, Caller, List};
use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::provision::NewUser;
use crate::state::model::{Event, Limits, Role, User, UserStatus};

/// A user with their live standing: today's usage, score, last warning.
#[derive(Debug, Serialize)]
pub struct UserView {
    pub user: User,
    pub usage: UsageToday,
    pub deviation_score: f32,
    pub last_warning: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct UsageToday {
    pub requests_today: u64,
    pub tokens_today: u64,
    pub tokens_this_month: u64,
}

fn view(app: &App, user: &User) -> UserView {
    let at = app.moment(&user.tenant_id);
    let (usage, score, warning) = app.activity.peek(&user.tenant_id, &user.id, &at);
    UserView {
        user: user.clone(),
        usage: UsageToday {
            requests_today: usage.requests_today,
            tokens_today: usage.tokens_today,
            tokens_this_month: usage.tokens_this_month,
        },
        deviation_score: score,
        last_warning: warning,
    }
}

/// A user of the review queue and the event that put them there.
#[derive(Debug, Serialize)]
pub struct ReviewItem {
    #[serde(flatten)]
    pub view: UserView,
    pub evidence: Option<Event>,
}

/// A user the caller may act on with `access`: one a manager does not
/// reach is as absent as one that does not exist (404).
pub(super) fn find(
    app: &App,
    caller: &Caller,
    access: Access,
    tenant: &str,
    user: &str,
) -> Result<User, ApiError> {
    caller.may(access, tenant)?;
    app.db
        .directory()
        .tenant(tenant)
        .and_then(|e| e.users.get(user).cloned())
        .filter(|u| caller.reaches(app, u))
        .ok_or_else(|| ApiError::not_found(format!("no user '{user}' in tenant '{tenant}'")))
}

pub fn list(app: &App, caller: &Caller, tenant: &str) -> Result<List<UserView>, ApiError> {
    caller.may(Access::Read, tenant)?;
    let directory = app.db.directory();
    let mut users: Vec<&User> = directory
        .tenant(tenant)
        .map(|e| e.users.values().collect())
        .unwrap_or_default();
    users.retain(|u| caller.reaches(app, u));
    users.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(users
        .into_iter()
        .map(|u| view(app, u))
        .collect::<Vec<_>>()
        .into())
}

/// Events scanned, newest first, to find each reviewed user's evidence.
const REVIEW_SCAN: usize = 20_000;

/// Flagged and blocked users of a tenant, blocked first, each with the event
/// that put them there: the newest `user.flag` or `user.block`, automatic
/// (with the prompts and signals) or an admin's (with their reason). The
/// admin API, the CLI and the console's review queue all read it here.
pub fn review_queue(app: &App, tenant: &str) -> anyhow::Result<Vec<(User, Option<Event>)>> {
    let directory = app.db.directory();
    let mut users: Vec<User> = directory
        .tenant(tenant)
        .map(|e| {
            e.users
                .values()
                .filter(|u| u.status != UserStatus::Active)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    users.sort_by(|a, b| {
        (b.status == UserStatus::Blocked)
            .cmp(&(a.status == UserStatus::Blocked))
            .then_with(|| a.id.cmp(&b.id))
    });
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let mut evidence =
        app.db
            .latest_events(tenant, &ids, &["user.flag", "user.block"], REVIEW_SCAN)?;
    Ok(users
        .into_iter()
        .map(|u| {
            let event = evidence.remove(&u.id);
            (u, event)
        })
        .collect())
}

/// `GET /admin/v1/tenants/{t}/review`: the review queue, with each user's
/// standing and evidence.
pub fn review(app: &App, caller: &Caller, tenant: &str) -> Result<List<ReviewItem>, ApiError> {
    caller.may(Access::Read, tenant)?;
    let data: Vec<_> = review_queue(app, tenant)
        .map_err(internal)?
        .into_iter()
        .filter(|(user, _)| caller.reaches(app, user))
        .map(|(user, evidence)| ReviewItem {
            view: view(app, &user),
            evidence,
        })
        .collect();
    Ok(data.into())
}

pub fn show(app: &App, caller: &Caller, tenant: &str, user: &str) -> Result<UserView, ApiError> {
    let user = find(app, caller, Access::Read, tenant, user)?;
    Ok(view(app, &user))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub id: String,
    pub name: Option<String>,
    #[serde(default = "default_role")]
    pub role: Role,
    #[serde(default)]
    pub limits: Limits,
    /// Groups of the tenant the user joins.
    #[serde(default)]
    pub groups: Vec<String>,
}

fn default_role() -> Role {
    Role::User
}

pub fn create(
    app: &App,
    caller: &Caller,
    tenant: &str,
    new: CreateUser,
) -> Result<UserView, ApiError> {
    caller.may(Access::Administer, tenant)?;
    if new.role == Role::SuperAdmin && caller.role != Role::SuperAdmin {
        return Err(ApiError::new(
            ErrorCode::AdminRequired,
            "only a super_admin creates super_admins",
        ));
    }
    super::subscription::check_user_room(app, tenant)?;
    let user = crate::provision::create_user(
        &app.db,
        NewUser {
            tenant_id: tenant,
            id: &new.id,
            name: new.name.as_deref().unwrap_or(&new.id),
            role: new.role,
            limits: new.limits,
            groups: new.groups,
        },
    )
    .map_err(|e| ApiError::new(ErrorCode::InvalidUser, format!("{e:#}")))?;
    audit(
        app,
        caller,
        tenant,
        "user.create",
        &user.id,
        None,
        json!({ "role": user.role, "limits": user.limits }),
    )?;
    Ok(view(app, &user))
}

pub fn set_status(
    app: &App,
    caller: &Caller,
    tenant: &str,
    user: &str,
    status: UserStatus,
    body: Reason,
) -> Result<UserView, ApiError> {
    let mut record = find(app, caller, Access::ManageUsers, tenant, user)?;
    let reason = require_reason(body.reason)?;
    let previous = record.status;
    record.status = status;
    app.db.put_user(&record).map_err(internal)?;
    let action = if status == UserStatus::Active {
        // Re-enabling starts the user afresh: the score that blocked them is reset.
        let at = app.moment(tenant);
        app.stores
            .deviation
            .start_afresh(tenant, user, &at, reason.clone());
        "user.enable"
    } else {
        "user.block"
    };
    audit(
        app,
        caller,
        tenant,
        action,
        user,
        Some(reason),
        json!({ "previous_status": previous }),
    )?;
    Ok(view(app, &record))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetLimits {
    pub limits: Limits,
    pub reason: Option<String>,
}

pub fn set_limits(
    app: &App,
    caller: &Caller,
    tenant: &str,
    user: &str,
    body: SetLimits,
) -> Result<UserView, ApiError> {
    let mut record = find(app, caller, Access::ManageUsers, tenant, user)?;
    let reason = require_reason(body.reason)?;
    let previous = std::mem::replace(&mut record.limits, body.limits);
    app.db.put_user(&record).map_err(internal)?;
    audit(
        app,
        caller,
        tenant,
        "user.limits",
        user,
        Some(reason),
        json!({ "previous": previous, "new": record.limits }),
    )?;
    Ok(view(app, &record))
}

/// `POST /admin/v1/tenants/{t}/users/{u}/login-link`: a one-time link that
/// signs the user in to the web console, valid for 15 minutes.
pub fn login_link(
    app: &App,
    caller: &Caller,
    tenant: &str,
    user: &str,
) -> Result<LoginLink, ApiError> {
    // Signing in as someone is the admins': a manager manages, not impersonates.
    let user = find(app, caller, Access::Administer, tenant, user)?;
    if user.role == Role::SuperAdmin && caller.role != Role::SuperAdmin {
        return Err(ApiError::new(
            ErrorCode::AdminRequired,
            "only a super_admin signs in as a super_admin",
        ));
    }
    let (code, expires_ms) = app
        .db
        .issue_login_code(tenant, &user.id, app.clock.now_ms())
        .map_err(internal)?;
    audit(
        app,
        caller,
        tenant,
        "user.login_link",
        &user.id,
        None,
        json!({ "expires_at_ms": expires_ms }),
    )?;
    Ok(LoginLink {
        user: user.id,
        path: format!("/ui/link?code={code}"),
        expires_at_ms: expires_ms,
    })
}

/// A one-time sign-in link: the path under the server's URL.
#[derive(Debug, Serialize)]
pub struct LoginLink {
    pub user: String,
    pub path: String,
    pub expires_at_ms: u64,
}
