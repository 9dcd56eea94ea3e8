//! A tenant's admin pages (`/ui/t/{tenant}/...`). The caller has already
//! checked that the viewer administers the tenant.

mod actions;
mod csv;
mod groups;
mod logs;
mod overview;
mod plugins;
mod policy;
mod providers;
mod review;
mod tasks;
mod tokens;
mod usage;
mod users;
mod webhooks;

use std::collections::HashMap;
use std::sync::Arc;

use hyper::{Method, Response, StatusCode};
use maud::{html, Markup};

use super::form::Form;
use super::layout::{self, Place};
use super::{error_page, html, Viewer};
use crate::admin_api::Access;
use crate::app::App;
use crate::http::Body;
use crate::state::model::UserStatus;

/// One admin page being answered.
pub struct Page<'a> {
    pub app: &'a Arc<App>,
    pub viewer: &'a Viewer,
    pub tenant: &'a str,
    pub query: HashMap<String, String>,
}

impl Page<'_> {
    /// A page of this tenant's console, with its navigation.
    fn render(&self, title: &str, section: &str, body: Markup) -> Response<Body> {
        let review_count = self.app.db.directory().tenant(self.tenant).map_or(0, |e| {
            e.users
                .values()
                .filter(|u| u.status != UserStatus::Active)
                .count()
        });
        let directory = self.app.db.directory();
        let branding = directory
            .tenant(self.tenant)
            .and_then(|e| e.tenant.as_ref())
            .map(|t| &t.branding);
        let place = Place {
            tenant: Some(self.tenant),
            section,
            review_count,
            branding,
        };
        html(
            StatusCode::OK,
            layout::page(title, self.viewer, &place, body),
        )
    }

    fn not_found(&self, what: &str) -> Response<Body> {
        error_page(StatusCode::NOT_FOUND, what, Some(self.viewer))
    }

    /// A URL of this tenant's console.
    fn url(&self, path: &str) -> String {
        if path.is_empty() {
            format!("/ui/t/{}", self.tenant)
        } else {
            format!("/ui/t/{}/{path}", self.tenant)
        }
    }

    /// A query parameter, when present and not blank.
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .get(key)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn local_time(&self, at_ms: u64) -> String {
        self.app
            .db
            .directory()
            .tenant(self.tenant)
            .map(|e| e.calendar.local_time(at_ms))
            .unwrap_or_default()
    }
}

/// What a section's pages need of the viewer's role: the same classes as
/// the admin API's operations (whose checks every form's action meets
/// again). A manager's pages about users show the users of their groups.
pub fn section_access(section: &str) -> Access {
    match section {
        "users" | "review" | "tasks" | "groups" | "tokens" | "logs" | "logs.csv" | "usage.csv" => {
            Access::Read
        }
        _ => Access::ReadSetup,
    }
}

impl Page<'_> {
    /// Whether the viewer's role has `access` here (to show a form or not).
    pub fn may(&self, access: Access) -> bool {
        access.allows(self.viewer.role)
    }

    /// Whether the viewer sees `user` (a manager: the users of their groups).
    pub fn reaches(&self, user: &crate::state::model::User) -> bool {
        self.viewer.caller().reaches(self.app, user)
    }

    fn forbidden(&self, message: &str) -> Response<Body> {
        error_page(StatusCode::FORBIDDEN, message, Some(self.viewer))
    }
}

pub async fn route(
    page: &Page<'_>,
    method: &Method,
    rest: &[&str],
    form: Option<Form>,
) -> Response<Body> {
    if page.app.db.directory().tenant(page.tenant).is_none() {
        return page.not_found(&format!("no tenant '{}'", page.tenant));
    }
    if *method == Method::GET {
        let access = section_access(rest.first().copied().unwrap_or(""));
        let caller = page.viewer.caller();
        if let Err(e) = caller.may(access, page.tenant) {
            return page.forbidden(&e.message);
        }
        // A manager reads the requests and usage of one user of theirs.
        if matches!(rest, ["logs"] | ["logs.csv"] | ["usage.csv"]) {
            if let Err(e) = caller.user_filter(page.app, page.tenant, &page.query) {
                return page.forbidden(&e.message);
            }
        }
    }
    match (method, rest, form) {
        (&Method::GET, [], _) => overview::page(page),
        (&Method::GET, ["users"], _) => users::list(page),
        (&Method::GET, ["users", user], _) => users::detail(page, user),
        (&Method::GET, ["review"], _) => review::page(page),
        (&Method::GET, ["tasks"], _) => tasks::list(page),
        (&Method::GET, ["tasks", id], _) => tasks::detail(page, id),
        (&Method::GET, ["groups"], _) => groups::list(page),
        (&Method::GET, ["tokens"], _) => tokens::list(page),
        (&Method::GET, ["logs"], _) => logs::list(page),
        (&Method::GET, ["logs.csv"], _) => logs::csv(page),
        (&Method::GET, ["usage.csv"], _) => usage::csv(page),
        (&Method::GET, ["logs", at, id], _) => logs::one(page, at, id),
        (&Method::GET, ["plugins"], _) => plugins::list(page),
        (&Method::GET, ["providers"], _) => providers::list(page),
        (&Method::GET, ["policy"], _) => policy::page(page),
        (&Method::GET, ["webhooks"], _) => webhooks::list(page),
        (&Method::POST, path, Some(form)) => actions::run(page, path, &form).await,
        _ => page.not_found("no such page"),
    }
}

/// `/ui/tenants`: every tenant, for a super_admin to switch between.
pub fn tenants_page(app: &App, viewer: &Viewer) -> Markup {
    let directory = app.db.directory();
    let mut tenants: Vec<_> = directory
        .tenants
        .values()
        .filter_map(|e| e.tenant.as_ref().map(|t| (t, e)))
        .collect();
    tenants.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    let body = html! {
        h1 { "Tenants" }
        p.sub { "As a super_admin you may open any tenant's console." }
        div.panel {
            table {
                thead { tr { th { "Tenant" } th { "Name" } th { "Status" } th { "Time zone" } th.num { "Users" } th.num { "Waiting for review" } } }
                tbody {
                    @for (tenant, entry) in &tenants {
                        tr {
                            td { a href={ "/ui/t/" (tenant.id) } { (tenant.id) } }
                            td { (tenant.name) }
                            td { (layout::tag(Some(&format!("{:?}", tenant.status).to_lowercase()))) }
                            td { (entry.calendar.name()) }
                            td.num { (entry.users.len()) }
                            td.num { (entry.users.values().filter(|u| u.status != UserStatus::Active).count()) }
                        }
                    }
                }
            }
        }
    };
    layout::page(
        "Tenants",
        viewer,
        &Place {
            tenant: None,
            section: "tenants",
            review_count: 0,
            branding: None,
        },
        body,
    )
}
