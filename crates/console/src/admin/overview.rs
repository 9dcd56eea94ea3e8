//! A tenant at a glance: requests, tokens and cost per day; top users and
//! tasks; who is warned, flagged or blocked; plugin health. Everything
//! comes from the daily rollups and the in-memory directory: no log scan.

use hyper::Response;
use maud::{html, Markup};

use super::Page;
use crate::chart;
use crate::http::Body;
use crate::layout::{csrf, int, tag, usd};
use crate::state::model::UserStatus;
use crate::state::{usage_report, DailyUsage, Grouping, UsageQuery, UsageRow};

/// The tenant's plan, status and users against the plan's limit, and why
/// calls are refused if they are.
fn subscription(page: &Page<'_>) -> Markup {
    let caller = page.viewer.caller();
    let Ok(view) = crate::admin_api::subscription::show(page.app, &caller, page.tenant) else {
        return html! {};
    };
    let (Some(subscription), Some(plan)) = (&view.subscription, &view.plan) else {
        return html! {};
    };
    let users = match plan.max_users {
        Some(max) => format!("{} of {max} users", view.users),
        None => format!("{} users", view.users),
    };
    html! {
        div.panel #subscription {
            div.spread {
                div { strong { (plan.name) " plan" } " · " (tag(Some(subscription.status.as_str()))) " · " (users)
                    @if let Some(end) = subscription.trial_ends_at {
                        @if subscription.status.as_str() == "trialing" { " · trial ends " (page.local_time(end)) }
                    }
                }
            }
            @if let Some(lapsed) = &view.lapsed { p.flash.bad { "Calls are refused: " (lapsed) "." } }
        }
    }
}

/// Days in the overview's charts.
const DAYS: u32 = 14;

/// Usage over `days` grouped one way, from the rollups.
pub(super) fn report(
    page: &Page<'_>,
    days: &[String],
    group: Grouping,
    user: Option<&str>,
    task: Option<&str>,
) -> (Vec<UsageRow>, DailyUsage) {
    let (Some(from), Some(to)) = (days.first(), days.last()) else {
        return Default::default();
    };
    usage_report(
        &page.app.db,
        &UsageQuery {
            tenant: page.tenant,
            from,
            to,
            user,
            task,
            group,
        },
    )
    .unwrap_or_default()
}

/// The values of `rows` (grouped by day) for each of `days`, zero where none.
pub(super) fn per_day(
    days: &[String],
    rows: &[UsageRow],
    value: impl Fn(&DailyUsage) -> f64,
) -> Vec<f64> {
    days.iter()
        .map(|d| {
            rows.iter()
                .find(|r| r.day.as_deref() == Some(d))
                .map_or(0.0, |r| value(&r.usage))
        })
        .collect()
}

fn top(
    rows: Vec<UsageRow>,
    name: impl Fn(&UsageRow) -> Option<&String>,
    link: impl Fn(&str) -> String,
) -> Markup {
    let mut rows = rows;
    rows.sort_by_key(|r| std::cmp::Reverse(r.usage.tokens_in + r.usage.tokens_out));
    html! {
        table {
            thead { tr { th { "Name" } th.num { "Requests" } th.num { "Tokens" } th.num { "Est. cost" } } }
            tbody {
                @for row in rows.iter().take(5) {
                    @let id = name(row).map_or("", String::as_str);
                    tr {
                        td { a href=(link(id)) { (id) } }
                        td.num { (int(row.usage.requests)) }
                        td.num { (int(row.usage.tokens_in + row.usage.tokens_out)) }
                        td.num { (usd(row.usage.cost_micro_usd)) }
                    }
                }
                @if rows.is_empty() { tr { td.muted colspan="4" { "No requests in these days." } } }
            }
        }
    }
}

pub fn page(page: &Page<'_>) -> Response<Body> {
    let app = page.app;
    let directory = app.db.directory();
    let Some(entry) = directory.tenant(page.tenant) else {
        return page.not_found("no such tenant");
    };
    let now = app.clock.now_ms();
    let days = entry.calendar.last_days(now, DAYS);
    let by_day = Grouping::by_day();
    let (daily, totals) = report(page, &days, by_day, None, None);
    let today = daily
        .last()
        .filter(|r| r.day.as_ref() == days.last())
        .map(|r| r.usage)
        .unwrap_or_default();
    let (by_user, _) = report(page, &days, Grouping::by_user(), None, None);
    let (by_task, _) = report(page, &days, Grouping::by_task(), None, None);

    let at = app.moment(page.tenant);
    let (mut warned, mut flagged, mut blocked) = (0, 0, 0);
    for user in entry.users.values() {
        match user.status {
            UserStatus::Blocked => blocked += 1,
            UserStatus::Flagged => flagged += 1,
            UserStatus::Active => {
                if app.activity.peek(page.tenant, &user.id, &at).2.is_some() {
                    warned += 1
                }
            }
        }
    }
    let slots = app.chains.as_ref().map(|c| c.describe(page.tenant));
    let failures = app
        .chains
        .as_ref()
        .map(|c| c.failures(page.tenant))
        .unwrap_or_default();
    let tokens = |u: &DailyUsage| (u.tokens_in + u.tokens_out) as f64;
    // Invoices are per month: this month so far, and the whole last one.
    let (_, month_start) = entry.calendar.today_and_month_start(now);
    let last_month = month_start
        .parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.yesterday().ok())
        .map(|end| (end.first_of_month(), end));

    let body = html! {
        div.spread {
            h1 { "Overview" }
            div.row #usage-exports {
                "Usage CSV:"
                a href=(page.url("usage.csv")) download { "this month" }
                @if let Some((from, to)) = last_month {
                    a href={ (page.url("usage.csv")) "?from=" (from) "&to=" (to) } download { "last month" }
                }
            }
        }
        p.sub { "Tenant " (page.tenant) " · last " (DAYS) " days · times in " (entry.calendar.name()) }
        (subscription(page))
        div.grid {
            div.panel.stat { div.label { "Requests today" } div.value { (int(today.requests)) } div.note { (int(today.failed)) " refused or failed" } }
            div.panel.stat { div.label { "Tokens today" } div.value { (int(today.tokens_in + today.tokens_out)) } div.note { (int(totals.tokens_in + totals.tokens_out)) " in " (DAYS) " days" } }
            div.panel.stat { div.label { "Est. cost today" } div.value { (usd(today.cost_micro_usd)) } div.note { (usd(totals.cost_micro_usd)) " in " (DAYS) " days" } }
            div.panel.stat {
                div.label { "Users needing attention" }
                div.value { a href=(page.url("review")) { (flagged + blocked) } }
                div.note #standing-counts { (warned) " warned · " (flagged) " flagged · " (blocked) " blocked" }
            }
        }
        div.grid {
            div.panel { h2 { "Requests per day" } (chart::daily_bars(&days, &per_day(&days, &daily, |u| u.requests as f64), |v| int(v as u64))) }
            div.panel { h2 { "Tokens per day" } (chart::daily_bars(&days, &per_day(&days, &daily, tokens), |v| int(v as u64))) }
            div.panel { h2 { "Estimated cost per day" } (chart::daily_bars(&days, &per_day(&days, &daily, |u| u.cost_micro_usd as f64), |v| usd(v as u64))) }
        }
        div.grid {
            div.panel { h2 { "Top users" } (top(by_user, |r| r.user.as_ref(), |id| page.url(&format!("users/{id}")))) }
            div.panel { h2 { "Top tasks" } (top(by_task, |r| r.task.as_ref(), |id| page.url(&format!("tasks/{id}")))) }
        }
        div.panel {
            div.spread { h2 { "Plugin health" } a href=(page.url("plugins")) { "Plugins →" } }
            @match slots {
                None => p.muted { "This server runs without the plugin chain." },
                Some(Err(e)) => p.flash.bad { "The tenant's policy does not load: " (format!("{e:#}")) },
                Some(Ok(slots)) => {
                    div.row {
                        @for slot in &slots {
                            span { (slot.stage.as_str()) " " (tag(Some(if slot.loaded { "ok" } else { "missing" }))) }
                        }
                    }
                    @if let Some(last) = failures.first() {
                        p.flash.bad { (failures.len()) " recent plugin failure(s); the last at " (page.local_time(last.at_ms)) ": " (last.message) }
                    } @else {
                        p.muted { "No plugin failure since the server started." }
                    }
                }
            }
        }
        (branding(page))
    };
    page.render("Overview", "", body)
}

/// The tenant's branding: what its pages and e-mails show, and (for its
/// admins) the forms that change it.
fn branding(page: &Page<'_>) -> Markup {
    let caller = page.viewer.caller();
    let Ok(view) = crate::admin_api::branding::show(page.app, &caller, page.tenant) else {
        return html! {};
    };
    let b = &view.branding;
    let administer = page.may(crate::admin_api::Access::Administer);
    html! {
        div.panel #branding {
            h2 { "Branding" }
            p.muted { "Your display name, accent colour and logo, in this console and in the e-mails Warden sends your people." }
            @if let Some(url) = &view.logo_url { p { img.logo-preview src=(url) alt="logo"; } }
            @if administer {
                form.stack method="post" action=(page.url("branding")) {
                    (csrf(page.viewer))
                    div.row {
                        label.field { "Display name" input name="display_name" value=(b.display_name.as_deref().unwrap_or("")) placeholder="Acme Corp"; }
                        label.field { "Accent colour" input name="accent_color" type="color" value=(b.accent_color.as_deref().unwrap_or("#2f5bd3")); }
                    }
                    button.secondary type="submit" { "Save branding" }
                }
                form.stack method="post" action=(page.url("branding/logo")) enctype="multipart/form-data" {
                    (csrf(page.viewer))
                    label for="logo-file" { "Logo (PNG, JPEG or WebP, up to 256 KiB)" }
                    input #logo-file type="file" name="file" accept="image/png,image/jpeg,image/webp" required;
                    button.secondary type="submit" { "Upload logo" }
                }
                @if b.logo.is_some() {
                    form.inline method="post" action=(page.url("branding/logo/delete")) {
                        (csrf(page.viewer)) button.secondary type="submit" { "Remove logo" }
                    }
                }
            } @else {
                p { "Display name: " (b.display_name.as_deref().unwrap_or("—")) " · accent " (b.accent_color.as_deref().unwrap_or("default")) }
            }
        }
    }
}
