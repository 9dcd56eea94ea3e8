//! A user's own page: standing, usage today and this week, what is left of
//! each quota, warnings, their tasks, and a ready snippet to call the API.

use hyper::body::Incoming;
use hyper::header::HOST;
use hyper::{Request, Response, StatusCode};
use maud::{html, Markup};

use super::layout::{self, int, quota, Place};
use super::{html, Viewer};
use crate::app::App;
use crate::domain::groups::group_pool;
use crate::http::Body;
use crate::state::model::{User, UserStatus};

fn secs(n: u64) -> String {
    match n {
        n if n >= 86_400 => format!("{}d {}h", n / 86_400, n % 86_400 / 3600),
        n if n >= 3600 => format!("{}h {}m", n / 3600, n % 3600 / 60),
        n => format!("{}m", n.div_ceil(60)),
    }
}

/// The tasks and models of the user's live tokens.
fn assigned(app: &App, viewer: &Viewer) -> (Vec<String>, Vec<String>) {
    let now_secs = app.clock.now_ms() / 1000;
    let mut tasks = Vec::new();
    let mut models = Vec::new();
    for token in app.db.tokens_of(&viewer.tenant_id).unwrap_or_default() {
        if token.user_id == viewer.user_id && !token.revoked && token.expires_at > now_secs {
            tasks.extend(token.tasks);
            models.extend(token.models);
        }
    }
    for list in [&mut tasks, &mut models] {
        list.sort();
        list.dedup();
    }
    (tasks, models)
}

fn snippet(base: &str, task: &str, model: &str) -> String {
    format!(
        "from openai import OpenAI\n\n\
         client = OpenAI(\n    base_url=\"{base}/v1\",\n    api_key=\"<your Warden token>\",\n    \
         default_headers={{\"X-Task-Id\": \"{task}\"}},\n)\n\
         answer = client.chat.completions.create(\n    model=\"{model}\",\n    \
         messages=[{{\"role\": \"user\", \"content\": \"Hello\"}}],\n)\n\
         print(answer.choices[0].message.content)\n"
    )
}

/// The people of the user's organisation: names, roles and groups only
/// (no usage, no status: that is for admins); and the user's own groups,
/// with what the group has used of the limits its members share.
fn team(app: &App, entry: Option<&crate::state::TenantEntry>, me: &User) -> Markup {
    let Some(entry) = entry else {
        return html! {};
    };
    let mut members: Vec<_> = entry.users.values().collect();
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let group_name = |id: &String| entry.groups.get(id).map_or(id.clone(), |g| g.name.clone());
    let mine: Vec<_> = me
        .groups
        .iter()
        .filter_map(|id| entry.groups.get(id))
        .collect();
    let at = app.moment(&me.tenant_id);
    html! {
        @if !mine.is_empty() {
            div.panel #groups {
                h2 { "Your groups" }
                p.muted { "A group's limits are shared by all its members, on top of your own." }
                table {
                    thead { tr { th { "Group" } th { "Requests today" } th { "Requests this month" } th { "Tokens today" } th { "Tokens this month" } } }
                    tbody {
                        @for group in &mine {
                            @let used = app.activity.pool_usage(&me.tenant_id, &group_pool(&group.id), &at);
                            tr {
                                td { (group.name) }
                                td { (quota(used.requests_today, group.limits.requests_per_day)) }
                                td { (quota(used.requests_this_month, group.limits.requests_per_month)) }
                                td { (quota(used.tokens_today, group.limits.tokens_per_day)) }
                                td { (quota(used.tokens_this_month, group.limits.tokens_per_month)) }
                            }
                        }
                    }
                }
            }
        }
        div.panel #team {
            h2 { "Your team" }
            table {
                thead { tr { th { "Name" } th { "Role" } th { "Groups" } } }
                tbody {
                    @for user in members {
                        tr {
                            td { (user.name) }
                            td { (user.role.as_str()) }
                            td.muted { (user.groups.iter().map(group_name).collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
        }
    }
}

/// The host the browser asked for, for the snippet's base URL.
pub fn host_of(req: &Request<Incoming>) -> String {
    req.headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or(req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("localhost:8080")
        .to_string()
}

pub fn page(app: &App, viewer: &Viewer, host: &str) -> Response<Body> {
    let tenant = &viewer.tenant_id;
    let at = app.moment(tenant);
    let (usage, score, warning) = app.activity.peek(tenant, &viewer.user_id, &at);
    let (requests_week, tokens_week) = app.activity.week_of(tenant, &viewer.user_id, &at);
    let (off_task, admin_note) = app.activity.notes(tenant, &viewer.user_id);
    let directory = app.db.directory();
    let entry = directory.tenant(tenant);
    let limits = entry
        .and_then(|e| e.users.get(&viewer.user_id))
        .map(|u| u.limits.clone())
        .unwrap_or_default();
    let (tasks, models) = assigned(app, viewer);
    let scheme = if app.config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{host}");
    let model = models
        .first()
        .or(app.config.upstream.models.first())
        .map_or("gpt-4o-mini", String::as_str);
    let remaining = |limit: Option<u64>, used: u64| -> Markup {
        match limit {
            Some(l) => html! { (int(l.saturating_sub(used))) },
            None => html! { "unlimited" },
        }
    };
    let body = html! {
        h1 { "Your usage" }
        p.sub { (viewer.name) " · tenant " (tenant) }
        @match viewer.status {
            UserStatus::Blocked => p.flash.bad { "Your access is blocked: your calls are refused until an admin re-enables you." },
            UserStatus::Flagged => p.flash.warn { "Your account is flagged for review: calls still work, and an admin will look at your recent prompts." },
            UserStatus::Active => {},
        }
        @if let Some(warning) = &warning { p.flash.warn { "Warning: " (warning) } }
        @if let Some(note) = &admin_note { p.flash #admin-note { "Note from your admin: " (note) } }
        @if !off_task.is_empty() {
            div.panel #off-task-prompts {
                h2 { "Prompts that moved your deviation score" }
                p.muted { "Warden judged these prompts off your task. If one was part of your work, tell your admin: they can mark it on-task, which takes its score back and teaches Warden for your team." }
                table {
                    thead { tr { th { "When" } th { "Task" } th { "Prompt" } th { "Judged" } } }
                    tbody {
                        @for p in &off_task {
                            tr {
                                td.muted { (entry.map(|e| e.calendar.local_time(p.at_ms)).unwrap_or_default()) }
                                td { code { (p.task_id) } }
                                td { (p.prompt) }
                                td { (p.drift) " (" (format!("{:.2}", p.confidence)) ")" }
                            }
                        }
                    }
                }
            }
        }
        div.grid {
            div.panel.stat {
                div.label { "Requests left today" }
                div.value #remaining-requests { (remaining(limits.requests_per_day, usage.requests_today)) }
                div.note { (quota(usage.requests_today, limits.requests_per_day)) }
            }
            div.panel.stat {
                div.label { "Tokens left today" }
                div.value #remaining-tokens { (remaining(limits.tokens_per_day, usage.tokens_today)) }
                div.note { (quota(usage.tokens_today, limits.tokens_per_day)) }
            }
            div.panel.stat {
                div.label { "Tokens left this month" }
                div.value { (remaining(limits.tokens_per_month, usage.tokens_this_month)) }
                div.note { (quota(usage.tokens_this_month, limits.tokens_per_month)) }
            }
            div.panel.stat {
                div.label { "This week" }
                div.value { (int(requests_week)) " requests" }
                div.note { (int(tokens_week)) " tokens · deviation score " (format!("{score:.2}")) }
            }
        }
        p.muted { "Daily quotas reset in " (secs(usage.day_resets_in)) ", monthly in " (secs(usage.month_resets_in)) "." }
        div.panel {
            h2 { "Your tasks" }
            @if tasks.is_empty() { p.muted { "No live token lists a task for you: ask your admin." } }
            table {
                thead { tr { th { "Task id (X-Task-Id)" } th { "Title" } th { "Description" } } }
                tbody {
                    @for id in &tasks {
                        @let task = entry.and_then(|e| e.tasks.get(id));
                        tr {
                            td { code { (id) } }
                            td { (task.map_or("", |t| t.title.as_str())) @if task.is_some_and(|t| !t.active) { " " span.badge.muted { "archived" } } }
                            td.muted { (task.map_or("", |t| t.description.as_str())) }
                        }
                    }
                }
            }
        }
        @if let Some(me) = entry.and_then(|e| e.users.get(&viewer.user_id)) { (team(app, entry, me)) }
        div.panel {
            div.spread { h2 { "Call the API" } button.secondary type="button" data-copy="snippet" { "Copy" } }
            p.muted { "Any OpenAI client works: point it at Warden, use your token as the API key, and name the task of every call." }
            pre.code #snippet { (snippet(&base, tasks.first().map_or("<task id>", String::as_str), model)) }
        }
    };
    let place = Place {
        tenant: viewer.is_admin().then_some(tenant.as_str()),
        section: "me",
        review_count: 0,
        branding: entry.and_then(|e| e.tenant.as_ref()).map(|t| &t.branding),
    };
    html(
        StatusCode::OK,
        layout::page("Your usage", viewer, &place, body),
    )
}
