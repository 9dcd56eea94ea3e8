//! Users: the list with standing and today's usage against quota; one
//! user's page with charts, per-task usage, score timeline, audit events,
//! request log, and the forms that change their access.

use hyper::Response;
use maud::{html, Markup};

use super::logs::log_table;
use super::overview::{per_day, report};
use super::Page;
use crate::admin_api::Access;
use crate::chart;
use crate::http::Body;
use crate::layout::{csrf, excerpt, flash, int, quota, status_badge, tag, usd};
use crate::state::model::{Role, User, UserStatus};
use crate::state::{EventFilter, Grouping, LogFilter};

/// The roles a tenant admin gives, as a select's options (`user` first).
pub fn role_options() -> Markup {
    html! {
        @for role in Role::TENANT.iter().rev() {
            option value=(role.as_str()) { (role.as_str()) }
        }
    }
}

pub fn list(page: &Page<'_>) -> Response<Body> {
    let directory = page.app.db.directory();
    let Some(entry) = directory.tenant(page.tenant) else {
        return page.not_found("no such tenant");
    };
    let mut users: Vec<&User> = entry.users.values().filter(|u| page.reaches(u)).collect();
    users.sort_by(|a, b| a.id.cmp(&b.id));
    let at = page.app.moment(page.tenant);
    let administer = page.may(Access::Administer);
    let body = html! {
        h1 { "Users" }
        p.sub {
            (users.len()) " users · today's usage against their daily quota"
            @if page.viewer.role == Role::Manager { " · the users of your groups" }
        }
        (flash(&page.query))
        div.panel {
            table #users {
                thead { tr { th { "User" } th { "Role" } th { "Groups" } th { "Status" } th { "Requests today" } th { "Tokens today" } th.num { "Score" } th { "Last warning" } } }
                tbody {
                    @for user in &users {
                        @let (usage, score, warning) = page.app.activity.peek(page.tenant, &user.id, &at);
                        tr {
                            td { a href=(page.url(&format!("users/{}", user.id))) { (user.id) } br; span.muted { (user.name) } }
                            td { (user.role.as_str()) }
                            td { (user.groups.join(", ")) }
                            td { (status_badge(user.status)) }
                            td { (quota(usage.requests_today, user.limits.requests_per_day)) }
                            td { (quota(usage.tokens_today, user.limits.tokens_per_day)) }
                            td.num { (format!("{score:.2}")) }
                            td.muted { (warning.as_deref().map(|w| excerpt(w, 80)).unwrap_or_default()) }
                        }
                    }
                }
            }
        }
        @if administer { div.panel {
            h2 { "Add a user" }
            form.stack method="post" action=(page.url("users")) {
                (csrf(page.viewer))
                label for="new-id" { "User id" }
                input #new-id name="id" required pattern="[A-Za-z0-9._@-]{1,64}" placeholder="ali";
                label for="new-name" { "Name" }
                input #new-name name="name" placeholder="Ali Hassan";
                label for="new-role" { "Role" }
                select #new-role name="role" { (role_options()) }
                label for="new-groups" { "Groups (ids, comma-separated; optional)" }
                input #new-groups name="groups" placeholder="support, berlin";
                button type="submit" { "Add user" }
            }
        } }
        @if administer { (invitations_panel(page)) }
    };
    page.render("Users", "users", body)
}

/// Invite by e-mail, and the invitations with cancel and resend.
fn invitations_panel(page: &Page<'_>) -> Markup {
    let caller = page.viewer.caller();
    let invitations =
        crate::admin_api::invitations::list(page.app, &caller, page.tenant).unwrap_or_default();
    html! {
        div.panel #invitations {
            h2 { "Invite by e-mail" }
            p.sub { "The e-mail's link works once, for 7 days; accepting it makes the account and signs them in." }
            form.stack method="post" action=(page.url("invitations")) {
                (csrf(page.viewer))
                label for="invite-email" { "E-mail" }
                input #invite-email name="email" type="email" required placeholder="sam@example.com";
                label for="invite-name" { "Name (optional)" }
                input #invite-name name="name" placeholder="Sam Lee";
                label for="invite-role" { "Role" }
                select #invite-role name="role" { (role_options()) }
                label for="invite-groups" { "Groups (ids, comma-separated; optional)" }
                input #invite-groups name="groups" placeholder="support";
                button type="submit" { "Send invitation" }
            }
            form.stack method="post" action=(page.url("invitations/bulk")) {
                (csrf(page.viewer))
                label for="invite-csv" { "Or many at once: one email,name,role,groups a line (all but the e-mail optional; groups separated by ';')" }
                textarea #invite-csv name="csv" rows="4" placeholder="email,name,role\nsam@example.com,Sam Lee,user" {}
                button.secondary type="submit" { "Send invitations" }
            }
            @if !invitations.is_empty() {
                table {
                    thead { tr { th { "E-mail" } th { "Role" } th { "Status" } th { "Expires" } th { "" } } }
                    tbody {
                        @for i in &invitations {
                            tr {
                                td { (i.email) }
                                td { (i.role.as_str()) }
                                td { (tag(Some(i.status))) @if let Some(user) = &i.user_id { " " code { (user) } } }
                                td { (page.local_time(i.expires_at)) }
                                td {
                                    @if i.status == "pending" || i.status == "expired" {
                                        form.inline method="post" action=(page.url(&format!("invitations/{}/resend", i.id))) {
                                            (csrf(page.viewer)) button.secondary type="submit" { "Resend" }
                                        }
                                    }
                                    @if i.status == "pending" {
                                        form.inline method="post" action=(page.url(&format!("invitations/{}/cancel", i.id))) {
                                            (csrf(page.viewer)) button.secondary type="submit" { "Cancel" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Sends a CSV's invitations and shows what happened to each row.
pub fn bulk_invite(page: &Page<'_>, csv: &str) -> Response<Body> {
    let input = crate::admin_api::invitations::BulkInvitations {
        csv: csv.to_string(),
    };
    let caller = page.viewer.caller();
    let report = match crate::admin_api::invitations::bulk(page.app, &caller, page.tenant, input) {
        Ok(report) => report,
        Err(e) => return crate::error_page(e.status(), &e.message, Some(page.viewer)),
    };
    let body = html! {
        h1 { "Invitations sent" }
        p.sub { (report.invited) " invited, " (report.refused) " refused." }
        div.panel {
            table #bulk-report {
                thead { tr { th.num { "Row" } th { "E-mail" } th { "Result" } } }
                tbody {
                    @for row in &report.data {
                        tr {
                            td.num { (row.row) }
                            td { (row.email) }
                            td { (tag(Some(row.status))) " " span.muted { (row.error.as_deref().unwrap_or("")) } }
                        }
                    }
                }
            }
            p { a href=(page.url("users")) { "Back to users" } }
        }
    };
    page.render("Invitations sent", "users", body)
}

/// Re-enable, block and limits forms, each asking for a reason.
pub(super) fn access_forms(page: &Page<'_>, user: &User, back: &str) -> Markup {
    let base = page.url(&format!("users/{}", user.id));
    let limit = |v: Option<u64>| v.map(|n| n.to_string()).unwrap_or_default();
    html! {
        div.actions {
            @if user.status != UserStatus::Active {
                form.enable method="post" action={ (base) "/enable" } {
                    (csrf(page.viewer))
                    input type="hidden" name="back" value=(back);
                    label for={ "enable-reason-" (user.id) } { "Re-enable " (user.id) }
                    input id={ "enable-reason-" (user.id) } name="reason" required placeholder="Reason (kept in the audit log)";
                    button type="submit" { "Re-enable" }
                }
            }
            @if user.status != UserStatus::Blocked {
                form.block method="post" action={ (base) "/block" } data-confirm={ "Block " (user.id) "? Their calls will be refused." } {
                    (csrf(page.viewer))
                    input type="hidden" name="back" value=(back);
                    label for={ "block-reason-" (user.id) } { "Block " (user.id) }
                    input id={ "block-reason-" (user.id) } name="reason" required placeholder="Reason (kept in the audit log)";
                    button.danger type="submit" { "Block" }
                }
            }
            form.limits method="post" action={ (base) "/limits" } {
                (csrf(page.viewer))
                input type="hidden" name="back" value=(back);
                label { "Limits (blank = unlimited)" }
                div.row {
                    label.field { "Requests / minute" input name="requests_per_minute" inputmode="numeric" size="9" value=(limit(user.limits.requests_per_minute)); }
                    label.field { "Requests / day" input name="requests_per_day" inputmode="numeric" size="9" value=(limit(user.limits.requests_per_day)); }
                }
                div.row {
                    label.field { "Tokens / day" input name="tokens_per_day" inputmode="numeric" size="9" value=(limit(user.limits.tokens_per_day)); }
                    label.field { "Tokens / month" input name="tokens_per_month" inputmode="numeric" size="9" value=(limit(user.limits.tokens_per_month)); }
                }
                input name="reason" required placeholder="Reason (kept in the audit log)";
                button.secondary type="submit" { "Change limits" }
            }
        }
    }
}

/// One audit event, as a table row.
pub(super) fn event_rows(page: &Page<'_>, events: &[crate::state::model::Event]) -> Markup {
    html! {
        @for event in events {
            tr {
                td { (page.local_time(event.at_ms)) }
                td { code { (event.action) } }
                td { (event.actor) }
                td { (event.reason.as_deref().unwrap_or("")) }
            }
        }
        @if events.is_empty() { tr { td.muted colspan="4" { "No events." } } }
    }
}

pub fn detail(page: &Page<'_>, user_id: &str) -> Response<Body> {
    let app = page.app;
    let directory = app.db.directory();
    let Some(entry) = directory.tenant(page.tenant) else {
        return page.not_found("no such tenant");
    };
    // A manager's page of a user outside their groups is as absent as one
    // of a user who does not exist.
    let Some(user) = entry.users.get(user_id).filter(|u| page.reaches(u)) else {
        return page.not_found(&format!("no user '{user_id}' in tenant '{}'", page.tenant));
    };
    let at = app.moment(page.tenant);
    let (usage, score, warning) = app.activity.peek(page.tenant, user_id, &at);
    let days = entry.calendar.last_days(app.clock.now_ms(), 30);
    let by_day = Grouping::by_day();
    let (daily, totals) = report(page, &days, by_day, Some(user_id), None);
    let (by_task, _) = report(page, &days, Grouping::by_task(), Some(user_id), None);
    let filter = LogFilter {
        user: Some(user_id.to_string()),
        ..Default::default()
    };
    let recent = app
        .db
        .query_requests(page.tenant, &filter, None, 200)
        .map(|p| p.data)
        .unwrap_or_default();
    let mut timeline: Vec<(u64, f32)> = recent
        .iter()
        .filter_map(|r| Some((r.at_ms, r.deviation_score?)))
        .collect();
    timeline.reverse();
    let thresholds = app
        .chains
        .as_ref()
        .map(|c| c.deviation_thresholds(page.tenant))
        .unwrap_or_default()
        .named();
    let events = app
        .db
        .query_events(
            page.tenant,
            &EventFilter {
                target: Some(user_id.to_string()),
                action: None,
            },
            None,
            20,
        )
        .map(|p| p.data)
        .unwrap_or_default();
    let back = page.url(&format!("users/{user_id}"));
    let body = html! {
        div.spread {
            div { h1 { (user.name) " " (status_badge(user.status)) } p.sub { (user.id) " · " (user.role.as_str()) @if !user.groups.is_empty() { " · groups " (user.groups.join(", ")) } " · deviation score " (format!("{score:.2}")) } }
            a href={ (page.url("logs")) "?user=" (user.id) } { "All requests →" }
        }
        (flash(&page.query))
        @if let Some(w) = &warning { p.flash.warn { "Last warning: " (w) } }
        div.grid {
            div.panel.stat { div.label { "Requests today" } div.value { (int(usage.requests_today)) } div.note { (quota(usage.requests_today, user.limits.requests_per_day)) } }
            div.panel.stat { div.label { "Tokens today" } div.value { (int(usage.tokens_today)) } div.note { (quota(usage.tokens_today, user.limits.tokens_per_day)) } }
            div.panel.stat { div.label { "Tokens this month" } div.value { (int(usage.tokens_this_month)) } div.note { (quota(usage.tokens_this_month, user.limits.tokens_per_month)) } }
            div.panel.stat { div.label { "Last 30 days" } div.value { (usd(totals.cost_micro_usd)) } div.note { (int(totals.requests)) " requests, estimated cost" } }
        }
        @if page.may(Access::ManageUsers) { div.panel { h2 { "Access" } (access_forms(page, user, &back)) } }
        div.grid {
            div.panel { h2 { "Tokens per day (30 days)" } (chart::daily_bars(&days, &per_day(&days, &daily, |u| (u.tokens_in + u.tokens_out) as f64), |v| int(v as u64))) }
            div.panel { h2 { "Deviation score" } (chart::score_line(&timeline, &thresholds)) }
        }
        div.grid {
            div.panel {
                h2 { "Per task (30 days)" }
                table {
                    thead { tr { th { "Task" } th.num { "Requests" } th.num { "Tokens" } th.num { "Est. cost" } } }
                    tbody {
                        @for row in &by_task {
                            @let task = row.task.as_deref().unwrap_or("");
                            tr {
                                td { a href=(page.url(&format!("tasks/{task}"))) { (task) } }
                                td.num { (int(row.usage.requests)) }
                                td.num { (int(row.usage.tokens_in + row.usage.tokens_out)) }
                                td.num { (usd(row.usage.cost_micro_usd)) }
                            }
                        }
                    }
                }
            }
            div.panel {
                h2 { "Events" }
                table { thead { tr { th { "When" } th { "Action" } th { "By" } th { "Reason" } } } tbody { (event_rows(page, &events)) } }
            }
        }
        div.panel { h2 { "Recent requests" } (log_table(page, &recent[..recent.len().min(50)], false, true)) }
    };
    page.render(&user.id, "users", body)
}
