//! Groups: each with its members and what they have used of the limits
//! they share; admins create, rename, limit, fill and delete them. A
//! manager sees their own groups.

use hyper::Response;
use maud::{html, Markup};

use super::Page;
use crate::admin_api::groups::{self, GroupChange, GroupView, NewGroup};
use crate::admin_api::tenants::Reason;
use crate::admin_api::Access;
use crate::error::{ApiError, ErrorCode};
use crate::form::Form;
use crate::http::Body;
use crate::layout::{csrf, flash, quota};
use crate::state::model::PoolLimits;

pub fn list(page: &Page<'_>) -> Response<Body> {
    let caller = page.viewer.caller();
    let groups = groups::list(page.app, &caller, page.tenant).unwrap_or_default();
    let administer = page.may(Access::Administer);
    let body = html! {
        h1 { "Groups" }
        p.sub { "Teams and departments. A group's limits are shared by all its members, on top of each member's own; a manager manages the users of their groups." }
        (flash(&page.query))
        @if groups.is_empty() { div.panel { p.muted { "No groups yet." } } }
        @for group in &groups { (group_panel(page, group, administer)) }
        @if administer {
            div.panel {
                h2 { "New group" }
                form.stack method="post" action=(page.url("groups")) {
                    (csrf(page.viewer))
                    label for="group-id" { "Id" }
                    input #group-id name="id" required pattern="[A-Za-z0-9._-]{1,64}" placeholder="support";
                    label for="group-name" { "Name" }
                    input #group-name name="name" placeholder="Customer support";
                    (limit_fields(&PoolLimits::default()))
                    button type="submit" { "Create group" }
                }
            }
        }
    };
    page.render("Groups", "groups", body)
}

fn limit_fields(limits: &PoolLimits) -> Markup {
    let value = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    html! {
        div.row {
            label.field { "Requests / day" input name="requests_per_day" inputmode="numeric" size="9" value=(value(limits.requests_per_day)); }
            label.field { "Requests / month" input name="requests_per_month" inputmode="numeric" size="9" value=(value(limits.requests_per_month)); }
            label.field { "Tokens / day" input name="tokens_per_day" inputmode="numeric" size="9" value=(value(limits.tokens_per_day)); }
            label.field { "Tokens / month" input name="tokens_per_month" inputmode="numeric" size="9" value=(value(limits.tokens_per_month)); }
        }
        p.muted { "Blank is unlimited. Days and months are the tenant's local calendar." }
    }
}

fn group_panel(page: &Page<'_>, view: &GroupView, administer: bool) -> Markup {
    let (g, used) = (&view.group, &view.usage);
    let url = |rest: &str| page.url(&format!("groups/{}{rest}", g.id));
    html! {
        div.panel id={ "group-" (g.id) } {
            h2 { (g.name) " " span.muted { (g.id) } }
            div.grid {
                div.stat { div.label { "Requests today" } div.note { (quota(used.requests_today, g.limits.requests_per_day)) } }
                div.stat { div.label { "Requests this month" } div.note { (quota(used.requests_this_month, g.limits.requests_per_month)) } }
                div.stat { div.label { "Tokens today" } div.note { (quota(used.tokens_today, g.limits.tokens_per_day)) } }
                div.stat { div.label { "Tokens this month" } div.note { (quota(used.tokens_this_month, g.limits.tokens_per_month)) } }
            }
            table {
                thead { tr { th { "Member" } th { "Role" } th { "" } } }
                tbody {
                    @for m in &view.members {
                        tr {
                            td { a href=(page.url(&format!("users/{}", m.id))) { (m.id) } " " span.muted { (m.name) } }
                            td { (m.role.as_str()) }
                            td {
                                @if administer {
                                    form.inline method="post" action=(url(&format!("/members/{}/remove", m.id))) {
                                        (csrf(page.viewer)) button.secondary type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                    @if view.members.is_empty() { tr { td.muted colspan="3" { "No members." } } }
                }
            }
            @if administer {
                form.inline method="post" action=(url("/members")) {
                    (csrf(page.viewer))
                    input name="user" required placeholder="User id" size="14";
                    button.secondary type="submit" { "Add member" }
                }
                details {
                    summary { "Rename, change limits or delete" }
                    form.stack method="post" action=(url("/edit")) {
                        (csrf(page.viewer))
                        label { "Name" input name="name" value=(g.name); }
                        (limit_fields(&g.limits))
                        input name="reason" placeholder="Reason (kept in the audit log)";
                        button type="submit" { "Save" }
                    }
                    form.inline method="post" action=(url("/delete")) data-confirm="Delete this group? Its members stay, without it." {
                        (csrf(page.viewer))
                        input name="reason" placeholder="Reason" size="14";
                        button.danger type="submit" { "Delete group" }
                    }
                }
            }
        }
    }
}

fn pool_limits(form: &Form) -> Result<PoolLimits, ApiError> {
    let number = |name: &str| {
        form.number(name)
            .map_err(|m| ApiError::new(ErrorCode::InvalidParameter, m))
    };
    Ok(PoolLimits {
        requests_per_day: number("requests_per_day")?,
        requests_per_month: number("requests_per_month")?,
        tokens_per_day: number("tokens_per_day")?,
        tokens_per_month: number("tokens_per_month")?,
    })
}

/// The groups page's forms; `None` when `path` is not one of them.
pub fn act(page: &Page<'_>, path: &[&str], form: &Form) -> Option<Result<(), ApiError>> {
    let (app, t, caller) = (page.app, page.tenant, &page.viewer.caller());
    let reason = || Reason {
        reason: form
            .get("reason")
            .filter(|r| !r.trim().is_empty())
            .map(String::from),
    };
    let result = match path {
        ["groups"] => pool_limits(form).and_then(|limits| {
            let new = NewGroup {
                id: form.get("id").unwrap_or("").to_string(),
                name: form.get("name").map(String::from),
                limits,
            };
            groups::create(app, caller, t, new).map(|_| ())
        }),
        ["groups", id, "edit"] => pool_limits(form).and_then(|limits| {
            let change = GroupChange {
                name: form.get("name").map(String::from),
                limits: Some(limits),
                reason: reason().reason,
            };
            groups::update(app, caller, t, id, change).map(|_| ())
        }),
        ["groups", id, "delete"] => groups::delete(app, caller, t, id, reason()).map(|_| ()),
        ["groups", id, "members"] => {
            let user = form.get("user").unwrap_or("").trim();
            groups::set_member(app, caller, (t, id, user), true, reason()).map(|_| ())
        }
        ["groups", id, "members", user, "remove"] => {
            groups::set_member(app, caller, (t, id, user), false, reason()).map(|_| ())
        }
        _ => return None,
    };
    Some(result)
}
