//! Who is looking at a page: the session cookie, the sign-in that opens it,
//! and the CSRF checks that guard every state-changing form.
//!
//! - The session cookie is HttpOnly, SameSite=Strict, scoped to `/ui`, and
//!   Secure when the server speaks TLS. Its value is 256 random bits; the
//!   database keeps only its hash (state/sessions.rs).
//! - Every signed-in form carries the session's CSRF token. Forms before
//!   sign-in (the token and link forms) use a double-submit cookie instead.
//! - Browsers that say where a request came from (`Sec-Fetch-Site`,
//!   `Origin`) must say "this site" too.

use hyper::body::Incoming;
use hyper::header::{HeaderValue, COOKIE, HOST, ORIGIN};
use hyper::Request;

use crate::admin_api::Caller;
use crate::app::App;
use crate::state::model::{Role, UserStatus};
use crate::state::Session;

pub const SESSION_COOKIE: &str = "warden_session";
/// Double-submit token of the sign-in forms.
pub const LOGIN_COOKIE: &str = "warden_login";
const SESSION_TTL_MS: u64 = 12 * 3600 * 1000;
pub use crate::state::sessions::random_secret;

/// The value of a cookie the browser sent.
pub fn cookie<'r>(req: &'r Request<Incoming>, name: &str) -> Option<&'r str> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value; `max_age_secs` 0 deletes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{secure}"
    ))
    .expect("cookie values are URL-safe base64")
}

/// Compares secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// False when the browser says the request came from another site:
/// `Sec-Fetch-Site` where the browser sends it, else `Origin` against `Host`.
pub fn from_this_site(req: &Request<Incoming>) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    let Some(origin) = header(ORIGIN.as_str()) else {
        return true;
    };
    // HTTP/2 sends :authority instead of Host.
    let host = header(HOST.as_str()).or(req.uri().authority().map(|a| a.as_str()));
    match (origin.split_once("://"), host) {
        (Some((_, origin_host)), Some(host)) => origin_host == host,
        _ => false,
    }
}

/// The signed-in person behind a request.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub tenant_id: String,
    pub user_id: String,
    pub name: String,
    pub role: Role,
    pub status: UserStatus,
    pub csrf: String,
    /// The session cookie's value (to end the session).
    pub secret: String,
}

impl Viewer {
    pub fn is_admin(&self) -> bool {
        admin_role(self.role, self.status)
    }

    /// Whether this viewer may open the admin pages of `tenant`.
    pub fn administers(&self, tenant: &str) -> bool {
        self.is_admin() && (self.role == Role::SuperAdmin || self.tenant_id == tenant)
    }

    /// The same identity as the admin API sees it: one code path checks
    /// and audits every change, whether it comes from the console or not.
    pub fn caller(&self) -> Caller {
        Caller {
            tenant_id: self.tenant_id.clone(),
            user_id: self.user_id.clone(),
            role: self.role,
        }
    }

    /// Where signing in lands.
    pub fn home(&self) -> String {
        home(&self.tenant_id, self.role, self.status)
    }
}

/// Whether a user may open the staff pages: an admin, manager or viewer
/// who is not blocked.
fn admin_role(role: Role, status: UserStatus) -> bool {
    role != Role::User && status != UserStatus::Blocked
}

/// Staff land on their tenant (a manager on its users), anyone else on
/// their own page.
fn home(tenant_id: &str, role: Role, status: UserStatus) -> String {
    match role {
        _ if !admin_role(role, status) => "/ui/me".into(),
        Role::Manager => format!("/ui/t/{tenant_id}/users"),
        _ => format!("/ui/t/{tenant_id}"),
    }
}

/// The viewer of a request with a live session: the session has not
/// expired, its token was not revoked, and the user still exists.
pub fn viewer(app: &App, req: &Request<Incoming>) -> Option<Viewer> {
    let secret = cookie(req, SESSION_COOKIE)?;
    let session = app.db.session(secret, app.clock.now_ms()).ok().flatten()?;
    let directory = app.db.directory();
    if session
        .jti
        .as_ref()
        .is_some_and(|jti| directory.revoked.contains(jti))
    {
        return None;
    }
    let user = directory
        .tenant(&session.tenant_id)?
        .users
        .get(&session.user_id)?;
    Some(Viewer {
        tenant_id: session.tenant_id,
        user_id: session.user_id,
        name: user.name.clone(),
        role: user.role,
        status: user.status,
        csrf: session.csrf,
        secret: secret.to_string(),
    })
}

/// Opens a session; returns the cookie value. It lasts 12 hours, or until
/// the token it was opened with expires if that comes first.
pub fn open(
    app: &App,
    tenant_id: &str,
    user_id: &str,
    jti: Option<String>,
    token_expires_ms: Option<u64>,
) -> anyhow::Result<String> {
    let now = app.clock.now_ms();
    // Opening a session is rare: a good moment to drop expired ones.
    app.db.prune_sessions(now)?;
    let secret = random_secret();
    let expires_ms =
        token_expires_ms.map_or(now + SESSION_TTL_MS, |exp| exp.min(now + SESSION_TTL_MS));
    app.db.put_session(
        &secret,
        &Session {
            tenant_id: tenant_id.into(),
            user_id: user_id.into(),
            csrf: random_secret(),
            jti,
            expires_ms,
        },
    )?;
    Ok(secret)
}

pub fn session_max_age_secs() -> u64 {
    SESSION_TTL_MS / 1000
}

/// Where a user lands after signing in; `None` if they do not exist.
pub fn user_home(app: &App, tenant_id: &str, user_id: &str) -> Option<String> {
    let directory = app.db.directory();
    let user = directory.tenant(tenant_id)?.users.get(user_id)?;
    Some(home(tenant_id, user.role, user.status))
}
