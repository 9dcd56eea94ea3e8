//! The admin API (`/admin/v1/...`): JSON over the same listener, authenticated
//! with the same bearer tokens. One typed function per operation (in the
//! modules below, e.g. `tokens::issue(app, caller, tenant, IssueToken) ->
//! IssuedToken`), called by the console directly; this module is the JSON
//! adapter over them ([`dispatch`]), for HTTP and the CLI, and the only
//! place that turns their answers into JSON.
//!
//! Who may do what is decided in one place, [`Caller::may`], which every
//! operation calls first with its [`Access`]: a tenant's staff see only
//! their own tenant (another tenant's routes answer 404, as if it did not
//! exist); a `super_admin` sees all; a role without the access gets 403. A
//! `manager` reaches only the users of their own groups ([`Caller::reaches`];
//! anyone else is 404). Every change lands in the audit log with the actor
//! and the reason.

pub mod branding;
pub mod groups;
pub mod invitations;
pub mod misuse;
pub mod plugins;
pub mod policy;
pub mod providers;
pub mod subscription;
pub mod tenants;
pub mod tokens;
pub mod users;
pub mod views;
pub mod webhooks;

pub use plugins::MAX_PLUGIN_BYTES;
pub use users::review_queue;
pub use views::date_param;

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::http::{json_response, Body};
use crate::state::model::{Role, TenantStatus, UserStatus};

const MAX_ADMIN_BODY: usize = 64 << 10;

/// The authenticated admin making a call.
pub struct Caller {
    pub tenant_id: String,
    pub user_id: String,
    pub role: Role,
}

/// What an operation needs of its caller's role (see the README's matrix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads about users: the user list, one user, the review queue, their
    /// tokens, logs and usage. Admins and viewers see all; a manager sees
    /// the users of their groups.
    Read,
    /// Reads the tenant's set-up: tasks, groups, plugins, policy,
    /// providers, webhooks, invitations, subscription, audit log. Admins
    /// and viewers; a manager reads tasks and groups only (their forms need them).
    ReadSetup,
    /// Changes a user's standing, limits and tokens, and reviews their
    /// prompts: admins, and a manager for the users of their groups.
    ManageUsers,
    /// Changes the tenant's set-up, people and groups: admins only.
    Administer,
    /// Every tenant: super_admins only.
    Operate,
}

impl Access {
    /// Whether `role` has this access (in a tenant it may see).
    pub fn allows(self, role: Role) -> bool {
        match (role, self) {
            (Role::SuperAdmin, _) => true,
            (_, Self::Operate) => false,
            (Role::Admin, _) => true,
            (Role::Manager, Self::Read | Self::ManageUsers) => true,
            (Role::Viewer, Self::Read | Self::ReadSetup) => true,
            _ => false,
        }
    }
}

impl Caller {
    /// Whoever runs the CLI on the server's machine, against a stopped
    /// server's database: access to the state directory is access to all.
    /// The audit log names them `cli/<login>`.
    pub fn local_operator() -> Self {
        let login = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "operator".into());
        Self {
            tenant_id: "cli".into(),
            user_id: login,
            role: Role::SuperAdmin,
        }
    }

    fn actor(&self) -> String {
        format!("{}/{}", self.tenant_id, self.user_id)
    }

    /// Whether the caller sees `tenant` at all.
    pub fn sees(&self, tenant: &str) -> bool {
        self.role == Role::SuperAdmin || self.tenant_id == tenant
    }

    /// The one check of every operation: 404 for a tenant the caller may
    /// not see (its existence is not revealed), 403 for a role without
    /// `access`.
    pub fn may(&self, access: Access, tenant: &str) -> Result<(), ApiError> {
        if !self.sees(tenant) {
            return Err(ApiError::not_found(format!("no tenant '{tenant}'")));
        }
        self.has(access)
    }

    /// 403 unless the caller's role has `access` (for operations on no
    /// tenant in particular, such as creating one).
    pub fn has(&self, access: Access) -> Result<(), ApiError> {
        if access.allows(self.role) {
            return Ok(());
        }
        let needs = match access {
            Access::Operate => "a super_admin",
            Access::Administer => "an admin",
            Access::ManageUsers => "an admin or a manager",
            Access::Read | Access::ReadSetup => "an admin or a viewer",
        };
        Err(ApiError::new(
            ErrorCode::RoleForbidden,
            format!("this needs {needs}; you are {}", self.role.as_str()),
        ))
    }

    /// Whether the caller may see and manage `user`: everyone with the
    /// access does, but a manager only the users (role `user`) who share a
    /// group with them.
    pub fn reaches(&self, app: &App, user: &crate::state::model::User) -> bool {
        if self.role != Role::Manager {
            return true;
        }
        let directory = app.db.directory();
        let Some(me) = directory
            .tenant(&self.tenant_id)
            .and_then(|e| e.users.get(&self.user_id))
        else {
            return false;
        };
        user.tenant_id == self.tenant_id
            && user.role == Role::User
            && user.groups.iter().any(|g| me.groups.contains(g))
    }

    /// For a manager, the `?user=` a read about users must name, one they
    /// reach (a manager reads no tenant-wide log or report); others as given.
    pub fn user_filter(
        &self,
        app: &App,
        tenant: &str,
        query: &HashMap<String, String>,
    ) -> Result<(), ApiError> {
        if self.role != Role::Manager {
            return Ok(());
        }
        let directory = app.db.directory();
        let user = query
            .get("user")
            .and_then(|u| directory.tenant(tenant)?.users.get(u));
        match user {
            Some(user) if self.reaches(app, user) => Ok(()),
            Some(_) | None => Err(ApiError::new(
                ErrorCode::RoleForbidden,
                "a manager reads the logs and usage of one user of their groups: add ?user=",
            )),
        }
    }
}

fn admin_caller(app: &App, req: &Request<Incoming>) -> Result<Caller, ApiError> {
    let claims = crate::auth::authenticate(app, req)?;
    let directory = app.db.directory();
    let user = directory
        .tenant(&claims.tid)
        .and_then(|t| t.users.get(&claims.sub))
        .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
    if user.status == UserStatus::Blocked {
        return Err(ApiError::new(
            ErrorCode::AccessDenied,
            "this admin account is blocked",
        ));
    }
    if !user.role.is_staff() {
        return Err(ApiError::new(
            ErrorCode::AdminRequired,
            "this route needs the token of an admin, a manager or a viewer",
        ));
    }
    Ok(Caller {
        tenant_id: claims.tid.clone(),
        user_id: claims.sub.clone(),
        role: user.role,
    })
}

/// One admin call, whoever makes it: read from HTTP, or built by the CLI
/// working on a stopped server's database.
pub struct AdminCall {
    pub method: Method,
    /// The path after `/admin/v1/`, without slashes at either end.
    pub path: String,
    pub query: HashMap<String, String>,
    pub body: Bytes,
}

impl AdminCall {
    async fn read(req: Request<Incoming>) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        // Components and logos are uploaded as the body itself; everything
        // else is small JSON.
        let path = parts.uri.path();
        let limit = match parts.method {
            Method::PUT if path.contains("/plugins/") => plugins::MAX_PLUGIN_BYTES,
            Method::PUT if path.ends_with("/branding/logo") => {
                crate::domain::branding::MAX_LOGO_BYTES
            }
            _ => MAX_ADMIN_BODY,
        };
        let body = match Limited::new(body, limit).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ApiError::payload_too_large(limit))
            }
            Err(e) => return Err(ApiError::new(ErrorCode::BodyReadFailed, e.to_string())),
        };
        Ok(Self {
            method: parts.method,
            path: parts
                .uri
                .path()
                .trim_start_matches("/admin/v1/")
                .trim_end_matches('/')
                .to_string(),
            query: parts
                .uri
                .query()
                .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
            body,
        })
    }

    fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::new(ErrorCode::InvalidJson, format!("invalid request body: {e}"))
        })
    }

    /// The body as `T`, or `T::default()` when there is none.
    fn json_or_default<T: DeserializeOwned + Default>(&self) -> Result<T, ApiError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            Ok(T::default())
        } else {
            self.json()
        }
    }
}

/// A list answer: `{"data": [...]}`.
#[derive(Debug, Serialize)]
pub struct List<T> {
    pub data: Vec<T>,
}

impl<T> From<Vec<T>> for List<T> {
    fn from(data: Vec<T>) -> Self {
        Self { data }
    }
}

/// An operation's answer as JSON with `status`: the adapter's one way out.
fn json<T: Serialize>(
    status: StatusCode,
    answer: Result<T, ApiError>,
) -> Result<Response<Body>, ApiError> {
    let bytes = serde_json::to_vec(&answer?).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(status, bytes))
}

fn ok<T: Serialize>(answer: Result<T, ApiError>) -> Result<Response<Body>, ApiError> {
    json(StatusCode::OK, answer)
}

fn created<T: Serialize>(answer: Result<T, ApiError>) -> Result<Response<Body>, ApiError> {
    json(StatusCode::CREATED, answer)
}

fn internal(e: anyhow::Error) -> ApiError {
    tracing::error!(error = %format!("{e:#}"), "admin operation failed");
    ApiError::internal(format!("{e:#}"))
}

/// Records an admin action in the audit log.
fn audit(
    app: &App,
    caller: &Caller,
    tenant: &str,
    action: &str,
    target: &str,
    reason: Option<String>,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    let event = app.event(tenant, caller.actor(), action, target, reason, details);
    app.db.append_event(&event).map_err(internal)
}

/// A reason is required for every change of someone's access.
fn require_reason(reason: Option<String>) -> Result<String, ApiError> {
    reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingReason,
                "a 'reason' is required; it is kept in the audit log",
            )
        })
}

pub async fn route(app: &Arc<App>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let caller = admin_caller(app, &req)?;
    // A viewer changes nothing: refused before a body is even read.
    if req.method() != Method::GET {
        caller.has(Access::ManageUsers)?;
    }
    let call = AdminCall::read(req).await?;
    execute(app, &caller, call).await
}

/// Runs one admin call: the few that wait on slow work (compiling an
/// uploaded plugin) asynchronously, the rest through [`dispatch`].
pub async fn execute(
    app: &Arc<App>,
    caller: &Caller,
    call: AdminCall,
) -> Result<Response<Body>, ApiError> {
    let segments: Vec<&str> = call.path.split('/').collect();
    match (&call.method, segments.as_slice()) {
        (&Method::PUT, ["tenants", t, "plugins", name]) => {
            created(plugins::upload(app, caller, t, name, call.body.clone()).await)
        }
        (&Method::POST, ["tenants", t, "plugins", name, "rollback"]) => {
            ok(plugins::rollback(app, caller, t, name, call.json()?).await)
        }
        _ => dispatch(app, caller, &call),
    }
}

/// Runs one admin call for an authenticated caller.
pub fn dispatch(app: &App, caller: &Caller, call: &AdminCall) -> Result<Response<Body>, ApiError> {
    let segments: Vec<&str> = call.path.split('/').collect();
    match (call.method.clone(), segments.as_slice()) {
        (Method::GET, ["tenants"]) => ok(tenants::list(app, caller)),
        (Method::POST, ["tenants"]) => created(tenants::create(app, caller, call.json()?)),
        (Method::GET, ["tenants", t]) => ok(tenants::show(app, caller, t)),
        (Method::POST, ["tenants", t, "suspend"]) => ok(tenants::set_status(
            app,
            caller,
            t,
            TenantStatus::Suspended,
            call.json()?,
        )),
        (Method::POST, ["tenants", t, "activate"]) => ok(tenants::set_status(
            app,
            caller,
            t,
            TenantStatus::Active,
            call.json()?,
        )),
        (Method::GET, ["tenants", t, "users"]) => ok(users::list(app, caller, t)),
        (Method::POST, ["tenants", t, "users"]) => {
            created(users::create(app, caller, t, call.json()?))
        }
        (Method::GET, ["tenants", t, "users", u]) => ok(users::show(app, caller, t, u)),
        (Method::GET, ["tenants", t, "review"]) => ok(users::review(app, caller, t)),
        (Method::POST, ["tenants", t, "users", u, "block"]) => ok(users::set_status(
            app,
            caller,
            t,
            u,
            UserStatus::Blocked,
            call.json()?,
        )),
        (Method::POST, ["tenants", t, "users", u, "enable"]) => ok(users::set_status(
            app,
            caller,
            t,
            u,
            UserStatus::Active,
            call.json()?,
        )),
        (Method::POST, ["tenants", t, "users", u, "login-link"]) => {
            created(users::login_link(app, caller, t, u))
        }
        (Method::PUT, ["tenants", t, "users", u, "limits"]) => {
            ok(users::set_limits(app, caller, t, u, call.json()?))
        }
        (Method::GET, ["tenants", t, "tasks"]) => ok(tenants::tasks(app, caller, t)),
        (Method::POST, ["tenants", t, "tasks"]) => {
            created(tenants::create_task(app, caller, t, call.json()?))
        }
        (Method::GET, ["tenants", t, "tasks", id]) => ok(tenants::task(app, caller, t, id)),
        (Method::PATCH, ["tenants", t, "tasks", id]) => {
            ok(misuse::update_task(app, caller, t, id, call.json()?))
        }
        (Method::POST, ["tenants", t, "users", u, "prompts", request, "on-task"]) => ok(
            misuse::mark_on_task(app, caller, t, u, request, call.json_or_default()?),
        ),
        (Method::GET, ["tenants", t, "misuse"]) => ok(misuse::show_settings(app, caller, t)),
        (Method::PUT, ["tenants", t, "misuse"]) => {
            ok(misuse::set_settings(app, caller, t, call.json()?))
        }
        (Method::POST, ["tenants", t, "tasks", id, "archive"]) => {
            ok(tenants::archive_task(app, caller, t, id, call.json()?))
        }
        (Method::GET, ["tenants", t, "tokens"]) => ok(tokens::list(app, caller, t)),
        (Method::GET, ["tenants", t, "plugins"]) => ok(plugins::list(app, caller, t)),
        (Method::POST, ["tenants", t, "plugins", name, "delete"]) => {
            ok(plugins::delete(app, caller, t, name, call.json()?))
        }
        (Method::GET, ["tenants", t, "keys"]) => ok(tokens::list_keys(app, caller, t)),
        (Method::POST, ["tenants", t, "keys", "rotate"]) => {
            created(tokens::rotate_key(app, caller, t, call.json()?))
        }
        (Method::POST, ["tenants", t, "tokens"]) => {
            created(tokens::issue(app, caller, t, call.json()?))
        }
        (Method::POST, ["tenants", t, "tokens", jti, "revoke"]) => {
            ok(tokens::revoke(app, caller, t, jti, call.json()?))
        }
        (Method::GET, ["tenants", t, "providers"]) => ok(providers::list(app, caller, t)),
        (Method::PUT, ["tenants", t, "providers", name]) => {
            ok(providers::put(app, caller, t, name, call.json()?))
        }
        (Method::DELETE, ["tenants", t, "providers", name]) => ok(providers::delete(
            app,
            caller,
            t,
            name,
            call.json_or_default()?,
        )),
        (Method::PUT, ["tenants", t, "routes", model]) => {
            ok(providers::put_route(app, caller, t, model, call.json()?))
        }
        (Method::DELETE, ["tenants", t, "routes", model]) => ok(providers::delete_route(
            app,
            caller,
            t,
            model,
            call.json_or_default()?,
        )),
        (Method::GET, ["tenants", t, "webhooks"]) => ok(webhooks::list(app, caller, t)),
        (Method::POST, ["tenants", t, "webhooks"]) => {
            created(webhooks::create(app, caller, t, call.json()?))
        }
        (Method::GET, ["tenants", t, "webhooks", "deliveries"]) => {
            ok(webhooks::deliveries(app, caller, t, &call.query).map(List::from))
        }
        (Method::DELETE, ["tenants", t, "webhooks", id]) => ok(webhooks::delete(
            app,
            caller,
            t,
            id,
            call.json_or_default()?,
        )),
        (Method::GET, ["tenants", t, "invitations"]) => {
            ok(invitations::list(app, caller, t).map(List::from))
        }
        (Method::POST, ["tenants", t, "invitations"]) => {
            created(invitations::create(app, caller, t, call.json()?))
        }
        (Method::POST, ["tenants", t, "invitations", "bulk"]) => {
            ok(invitations::bulk(app, caller, t, call.json()?))
        }
        (Method::DELETE, ["tenants", t, "invitations", id]) => {
            ok(invitations::cancel(app, caller, t, id))
        }
        (Method::POST, ["tenants", t, "invitations", id, "resend"]) => {
            ok(invitations::resend(app, caller, t, id))
        }
        (Method::GET, ["plans"]) => ok(Ok(List::from(subscription::plans(app)))),
        (Method::GET, ["tenants", t, "branding"]) => ok(branding::show(app, caller, t)),
        (Method::PUT, ["tenants", t, "branding"]) => {
            ok(branding::put(app, caller, t, call.json()?))
        }
        (Method::PUT, ["tenants", t, "branding", "logo"]) => {
            ok(branding::upload_logo(app, caller, t, call.body.clone()))
        }
        (Method::DELETE, ["tenants", t, "branding", "logo"]) => {
            ok(branding::remove_logo(app, caller, t))
        }
        (Method::GET, ["tenants", t, "groups"]) => ok(groups::list(app, caller, t).map(List::from)),
        (Method::POST, ["tenants", t, "groups"]) => {
            created(groups::create(app, caller, t, call.json()?))
        }
        (Method::GET, ["tenants", t, "groups", g]) => ok(groups::show(app, caller, t, g)),
        (Method::PATCH, ["tenants", t, "groups", g]) => {
            ok(groups::update(app, caller, t, g, call.json()?))
        }
        (Method::DELETE, ["tenants", t, "groups", g]) => {
            ok(groups::delete(app, caller, t, g, call.json_or_default()?))
        }
        (method @ (Method::PUT | Method::DELETE), ["tenants", t, "groups", g, "members", u]) => {
            let member = method == Method::PUT;
            let body = call.json_or_default()?;
            ok(groups::set_member(app, caller, (t, g, u), member, body))
        }
        (Method::GET, ["tenants", t, "subscription"]) => ok(subscription::show(app, caller, t)),
        (Method::PUT, ["tenants", t, "subscription"]) => {
            ok(subscription::change(app, caller, t, call.json()?))
        }
        (Method::GET, ["tenants", t, "policy"]) => ok(policy::show(app, caller, t)),
        (Method::PUT, ["tenants", t, "policy"]) => ok(policy::put(app, caller, t, call.json()?)),
        (Method::DELETE, ["tenants", t, "policy"]) => {
            ok(policy::reset(app, caller, t, call.json_or_default()?))
        }
        (Method::GET, ["tenants", t, "policy", "versions"]) => {
            ok(policy::versions(app, caller, t).map(List::from))
        }
        (Method::POST, ["tenants", t, "policy", "rollback"]) => {
            ok(policy::rollback(app, caller, t, call.json()?))
        }
        (Method::GET, ["tenants", t, "logs"]) => ok(views::logs(app, caller, t, &call.query)),
        (Method::GET, ["tenants", t, "usage"]) => ok(views::usage(app, caller, t, &call.query)),
        (Method::GET, ["tenants", t, "events"]) => ok(views::events(app, caller, t, &call.query)),
        (_, _) => Err(ApiError::not_found(format!(
            "no admin route for {} /admin/v1/{}",
            call.method, call.path
        ))),
    }
}
