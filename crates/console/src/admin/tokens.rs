//! Tokens: issue one (shown once, with a copy button), the list of issued
//! tokens (records only: Warden never keeps a token), revoke.

use hyper::Response;
use maud::html;

use super::Page;
use crate::admin_api::Access;
use crate::http::Body;
use crate::layout::{csrf, flash, tag};

pub fn list(page: &Page<'_>) -> Response<Body> {
    let directory = page.app.db.directory();
    let Some(entry) = directory.tenant(page.tenant) else {
        return page.not_found("no such tenant");
    };
    let reached = |user: &str| entry.users.get(user).is_some_and(|u| page.reaches(u));
    let mut tokens = page.app.db.tokens_of(page.tenant).unwrap_or_default();
    tokens.retain(|t| reached(&t.user_id));
    let now_secs = page.app.clock.now_ms() / 1000;
    let manage = page.may(Access::ManageUsers);
    let mut users: Vec<&String> = entry.users.keys().filter(|u| reached(u)).collect();
    users.sort();
    let mut tasks: Vec<_> = entry.tasks.values().filter(|t| t.active).collect();
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    let body = html! {
        h1 { "Tokens" }
        p.sub { "A token is shown once, when it is issued. Revoking one refuses it at once, on every worker." }
        (flash(&page.query))
        @if manage { div.panel {
            h2 { "Issue a token" }
            form.stack method="post" action=(page.url("tokens")) {
                (csrf(page.viewer))
                label for="token-user" { "User" }
                select #token-user name="user" required {
                    @for u in &users { option value=(u) { (u) } }
                }
                label { "Tasks" }
                div.row {
                    @for t in &tasks {
                        label { input type="checkbox" name="tasks" value=(t.id); " " (t.id) }
                    }
                    @if tasks.is_empty() { span.muted { "Create a task first." } }
                }
                label for="token-models" { "Models, comma-separated (blank: the server's list)" }
                input #token-models name="models" placeholder="gpt-4o-mini";
                label for="token-ttl" { "Valid for (days)" }
                input #token-ttl name="ttl_days" value="30" inputmode="numeric" size="5";
                button type="submit" { "Issue token" }
            }
        } }
        div.panel {
            h2 { "Issued tokens" }
            table {
                thead { tr { th { "Token id" } th { "User" } th { "Tasks" } th { "Models" } th { "Issued" } th { "Expires" } th { "State" } th { "" } } }
                tbody {
                    @for t in &tokens {
                        @let state = if t.revoked { "revoked" } else if t.expires_at <= now_secs { "expired" } else { "live" };
                        tr {
                            td { code { (t.jti) } }
                            td { a href=(page.url(&format!("users/{}", t.user_id))) { (t.user_id) } }
                            td { (t.tasks.join(", ")) }
                            td.muted { (if t.models.is_empty() { "any".to_string() } else { t.models.join(", ") }) }
                            td { (page.local_time(t.issued_at * 1000)) }
                            td { (page.local_time(t.expires_at * 1000)) }
                            td { (tag(Some(state))) }
                            td {
                                @if state == "live" && manage {
                                    form.inline method="post" action=(page.url(&format!("tokens/{}/revoke", t.jti))) data-confirm="Revoke this token? Calls with it are refused at once." {
                                        (csrf(page.viewer))
                                        input name="reason" required placeholder="Reason" size="14";
                                        button.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        }
                    }
                    @if tokens.is_empty() { tr { td.muted colspan="8" { "No tokens issued yet." } } }
                }
            }
        }
    };
    page.render("Tokens", "tokens", body)
}
