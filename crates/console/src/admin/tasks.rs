//! Tasks: the list with 30 days of usage each, create and archive; one
//! task's page with usage per day and per user, and its request log.

use hyper::Response;
use maud::{html, Markup};

use super::logs::log_table;
use super::overview::{per_day, report};
use super::Page;
use crate::chart;
use crate::http::Body;
use crate::layout::{csrf, flash, int, usd};
use crate::state::model::Task;
use crate::state::{Grouping, LogFilter};

pub fn list(page: &Page<'_>) -> Response<Body> {
    let directory = page.app.db.directory();
    let Some(entry) = directory.tenant(page.tenant) else {
        return page.not_found("no such tenant");
    };
    let mut tasks: Vec<&Task> = entry.tasks.values().collect();
    tasks.sort_by(|a, b| b.active.cmp(&a.active).then_with(|| a.id.cmp(&b.id)));
    let days = entry.calendar.last_days(page.app.clock.now_ms(), 30);
    let (usage, _) = report(page, &days, Grouping::by_task(), None, None);
    let body = html! {
        h1 { "Tasks" }
        p.sub { "Every call names one of these. Usage over the last 30 days." }
        (flash(&page.query))
        div.panel {
            table {
                thead { tr { th { "Task" } th { "Title" } th { "Keywords" } th.num { "Requests" } th.num { "Tokens" } th.num { "Est. cost" } th { "" } } }
                tbody {
                    @for task in &tasks {
                        @let u = usage.iter().find(|r| r.task.as_deref() == Some(&task.id)).map(|r| r.usage).unwrap_or_default();
                        tr {
                            td { a href=(page.url(&format!("tasks/{}", task.id))) { code { (task.id) } } }
                            td { (task.title) @if !task.active { " " span.badge.muted { "archived" } } }
                            td.muted { (task.keywords.join(", ")) }
                            td.num { (int(u.requests)) }
                            td.num { (int(u.tokens_in + u.tokens_out)) }
                            td.num { (usd(u.cost_micro_usd)) }
                            td {
                                @if task.active {
                                    form.inline method="post" action=(page.url(&format!("tasks/{}/archive", task.id))) data-confirm={ "Archive " (task.id) "? Calls naming it will be refused." } {
                                        (csrf(page.viewer))
                                        input name="reason" required placeholder="Reason" size="14";
                                        button.secondary type="submit" { "Archive" }
                                    }
                                }
                            }
                        }
                    }
                    @if tasks.is_empty() { tr { td.muted colspan="7" { "No tasks yet." } } }
                }
            }
        }
        div.panel {
            h2 { "New task" }
            form.stack method="post" action=(page.url("tasks")) {
                (csrf(page.viewer))
                label for="task-id" { "Id (what callers send as X-Task-Id)" }
                input #task-id name="id" required pattern="[A-Za-z0-9._-]{1,64}" placeholder="invoice-backend";
                label for="task-title" { "Title" }
                input #task-title name="title" required placeholder="Invoice backend";
                label for="task-description" { "Description (the intent classifier reads it)" }
                textarea #task-description name="description" placeholder="REST API that stores invoices and sends reminders." {}
                label for="task-keywords" { "Keywords, comma-separated" }
                input #task-keywords name="keywords" placeholder="invoice, rust, postgres";
                label for="task-models" { "Models allowed (blank: any the token allows)" }
                input #task-models name="models" placeholder="gpt-4o-mini";
                button type="submit" { "Create task" }
            }
        }
    };
    page.render("Tasks", "tasks", body)
}

/// Title, description, keywords and example prompts: what the intent
/// classifier reads of the task. Examples are prompts the task's work
/// looks like; a prompt close to one is on-task for this tenant.
fn edit_form(page: &Page<'_>, task: &Task) -> Markup {
    html! {
        div.panel #edit-task {
            h2 { "Edit task" }
            form.stack method="post" action=(page.url(&format!("tasks/{}/edit", task.id))) {
                (csrf(page.viewer))
                label for="edit-title" { "Title" }
                input #edit-title name="title" required value=(task.title);
                label for="edit-description" { "Description (the intent classifier reads it)" }
                textarea #edit-description name="description" { (task.description) }
                label for="edit-keywords" { "Keywords, comma-separated" }
                input #edit-keywords name="keywords" value=(task.keywords.join(", "));
                label for="edit-examples" { "Example prompts, one per line (prompts like these are on-task; “This was on-task” in the review queue adds here)" }
                textarea #edit-examples name="examples" rows="6" { (task.examples.join("\n")) }
                input name="reason" placeholder="Reason (optional, kept in the audit log)";
                button type="submit" { "Save task" }
            }
        }
    }
}

pub fn detail(page: &Page<'_>, id: &str) -> Response<Body> {
    let directory = page.app.db.directory();
    let Some(entry) = directory.tenant(page.tenant) else {
        return page.not_found("no such tenant");
    };
    let Some(task) = entry.tasks.get(id) else {
        return page.not_found(&format!("no task '{id}'"));
    };
    let days = entry.calendar.last_days(page.app.clock.now_ms(), 30);
    let (daily, totals) = report(page, &days, Grouping::by_day(), None, Some(id));
    let (by_user, _) = report(page, &days, Grouping::by_user(), None, Some(id));
    let filter = LogFilter {
        task: Some(id.to_string()),
        ..Default::default()
    };
    let recent = page
        .app
        .db
        .query_requests(page.tenant, &filter, None, 50)
        .map(|p| p.data)
        .unwrap_or_default();
    let body = html! {
        div.spread {
            div { h1 { (task.title) @if !task.active { " " span.badge.muted { "archived" } } } p.sub { code { (task.id) } " · " (task.description) } }
            a href={ (page.url("logs")) "?task=" (task.id) } { "All requests →" }
        }
        (flash(&page.query))
        div.grid {
            div.panel.stat { div.label { "Requests (30 days)" } div.value { (int(totals.requests)) } }
            div.panel.stat { div.label { "Tokens (30 days)" } div.value { (int(totals.tokens_in + totals.tokens_out)) } }
            div.panel.stat { div.label { "Est. cost (30 days)" } div.value { (usd(totals.cost_micro_usd)) } }
        }
        div.panel { h2 { "Requests per day" } (chart::daily_bars(&days, &per_day(&days, &daily, |u| u.requests as f64), |v| int(v as u64))) }
        div.panel {
            h2 { "Per user" }
            table {
                thead { tr { th { "User" } th.num { "Requests" } th.num { "Tokens" } th.num { "Est. cost" } } }
                tbody {
                    @for row in &by_user {
                        @let user = row.user.as_deref().unwrap_or("");
                        tr { td { a href=(page.url(&format!("users/{user}"))) { (user) } } td.num { (int(row.usage.requests)) } td.num { (int(row.usage.tokens_in + row.usage.tokens_out)) } td.num { (usd(row.usage.cost_micro_usd)) } }
                    }
                }
            }
        }
        div.panel { h2 { "Recent requests" } (log_table(page, &recent, true, false)) }
        (edit_form(page, task))
    };
    page.render(&task.title, "tasks", body)
}
