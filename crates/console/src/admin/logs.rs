//! The request log: filters, newest-first pages (a cursor, never an
//! offset), one request's full prompt, and CSV export streamed page by page.

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use maud::{html, Markup};

use super::{csv, Page};
use crate::app::App;
use crate::domain::Action;
use crate::error_page;
use crate::http::{Body, BoxError};
use crate::layout::{excerpt, int, tag, usd};
use crate::state::model::RequestRecord;
use crate::state::LogFilter;

const PAGE: usize = 50;
/// Rows fetched per step of a CSV export.
const CSV_BATCH: usize = 500;

/// The log table; `user` and `task` columns can be left out where the page
/// is already about one user or task.
pub(super) fn log_table(
    page: &Page<'_>,
    records: &[RequestRecord],
    show_user: bool,
    show_task: bool,
) -> Markup {
    html! {
        table.log {
            thead {
                tr {
                    th { "Time" }
                    @if show_user { th { "User" } }
                    @if show_task { th { "Task" } }
                    th { "Model" } th.num { "Status" } th.num { "Tokens" } th { "Intent" } th { "Drift" } th.num { "Score" } th { "Prompt" }
                }
            }
            tbody {
                @for r in records {
                    tr {
                        td.time { a href=(page.url(&format!("logs/{}/{}", r.at_ms, r.id))) { (page.local_time(r.at_ms)) } }
                        @if show_user { td { a href=(page.url(&format!("users/{}", r.user_id))) { (r.user_id) } } }
                        @if show_task { td { a href=(page.url(&format!("tasks/{}", r.task_id))) { (r.task_id) } } }
                        td.nowrap { (r.model) }
                        td.num { @if r.status >= 400 { span.badge.error { (r.status) } } @else { (r.status) } }
                        td.num { (int(r.tokens_in + r.tokens_out)) }
                        td { (tag(r.intent.map(|i| i.as_str()))) }
                        td.nowrap { (tag(r.drift.map(|d| d.as_str()))) @if let Some(a) = r.action.filter(|a| *a != Action::None) { " " (tag(Some(a.as_str()))) } }
                        td.num { (r.deviation_score.map(|s| format!("{s:.2}")).unwrap_or_default()) }
                        td.prompt { (excerpt(&r.prompt, 140)) }
                    }
                }
                @if records.is_empty() { tr { td.muted colspan="10" { "No requests match." } } }
            }
        }
    }
}

/// The filter of the page's query; dates are the tenant's local dates.
fn filter_of(page: &Page<'_>) -> Result<LogFilter, String> {
    let directory = page.app.db.directory();
    let calendar = &directory
        .tenant(page.tenant)
        .ok_or("no such tenant")?
        .calendar;
    let date = |key: &str, next_day: bool| -> Result<Option<u64>, String> {
        let Some(text) = page.param(key) else {
            return Ok(None);
        };
        let mut day: jiff::civil::Date = text
            .parse()
            .map_err(|_| format!("'{key}' must be a date like 2026-11-22"))?;
        if next_day {
            day = day.tomorrow().map_err(|e| e.to_string())?;
        }
        Ok(calendar.start_of(&day.to_string()))
    };
    Ok(LogFilter {
        user: page.param("user").map(String::from),
        task: page.param("task").map(String::from),
        intent: page.param("intent").map(String::from),
        status: page
            .param("status")
            .map(|s| {
                s.parse()
                    .map_err(|_| "'status' must be an HTTP status such as 403".to_string())
            })
            .transpose()?,
        since_ms: date("since", false)?,
        until_ms: date("until", true)?,
    })
}

/// The page's filters again, as a query string (for paging and CSV).
fn filter_query(page: &Page<'_>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for key in ["user", "task", "intent", "status", "since", "until"] {
        if let Some(v) = page.param(key) {
            query.append_pair(key, v);
        }
    }
    query.finish()
}

pub fn list(page: &Page<'_>) -> Response<Body> {
    let filter = match filter_of(page) {
        Ok(f) => f,
        Err(m) => return error_page(StatusCode::BAD_REQUEST, &m, Some(page.viewer)),
    };
    let result = page
        .app
        .db
        .query_requests(page.tenant, &filter, page.param("cursor"), PAGE);
    let records = match result {
        Ok(p) => p,
        Err(e) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &format!("{e:#}"),
                Some(page.viewer),
            )
        }
    };
    let filters = filter_query(page);
    let (users, tasks) = {
        let directory = page.app.db.directory();
        let entry = directory.tenant(page.tenant);
        let mut users: Vec<String> = entry
            .map(|e| {
                e.users
                    .values()
                    .filter(|u| page.reaches(u))
                    .map(|u| u.id.clone())
                    .collect()
            })
            .unwrap_or_default();
        let mut tasks: Vec<String> = entry
            .map(|e| e.tasks.keys().cloned().collect())
            .unwrap_or_default();
        users.sort();
        tasks.sort();
        (users, tasks)
    };
    let value = |k: &str| page.param(k).unwrap_or("").to_string();
    let intents = ["code", "test", "doc", "analysis", "off_topic"];
    let body = html! {
        div.spread {
            h1 { "Request log" }
            a href={ (page.url("logs.csv")) @if !filters.is_empty() { "?" (filters) } } download { "Export CSV" }
        }
        p.sub { "Newest first. Click a time for the whole prompt." }
        div.panel {
            form.filters method="get" action=(page.url("logs")) {
                label { "User" input name="user" list="known-users" value=(value("user")) size="12"; }
                label { "Task" input name="task" list="known-tasks" value=(value("task")) size="12"; }
                label { "Intent" select name="intent" {
                    option value="" { "any" }
                    @for i in intents { option value=(i) selected[value("intent") == i] { (i) } }
                } }
                label { "Status" input name="status" value=(value("status")) size="5" inputmode="numeric"; }
                label { "From" input type="date" name="since" value=(value("since")); }
                label { "To" input type="date" name="until" value=(value("until")); }
                button type="submit" { "Filter" }
                a href=(page.url("logs")) { "Clear" }
                datalist #known-users { @for u in &users { option value=(u) {} } }
                datalist #known-tasks { @for t in &tasks { option value=(t) {} } }
            }
        }
        div.panel {
            (log_table(page, &records.data, true, true))
            div.pager {
                @if page.param("cursor").is_some() { a href={ (page.url("logs")) "?" (filters) } { "← Newest" } }
                @if let Some(next) = &records.next_cursor {
                    a #older href={ (page.url("logs")) "?" (filters) @if !filters.is_empty() { "&" } "cursor=" (next) } { "Older →" }
                }
            }
        }
    };
    page.render("Logs", "logs", body)
}

/// One request, with its whole prompt (as logged, up to the log's cap).
pub fn one(page: &Page<'_>, at: &str, id: &str) -> Response<Body> {
    let record = at
        .parse()
        .ok()
        .and_then(|at_ms| page.app.db.request(page.tenant, at_ms, id).ok().flatten());
    let directory = page.app.db.directory();
    let owner = |r: &RequestRecord| {
        directory
            .tenant(page.tenant)
            .and_then(|e| e.users.get(&r.user_id))
            .is_some_and(|u| page.reaches(u))
    };
    let Some(r) = record.filter(|r| owner(r)) else {
        return page.not_found(&format!("no request '{id}'"));
    };
    let cost = page
        .app
        .db
        .pricing()
        .record_cost_micro_usd(&r, page.app.db.directory().provider_prices(&r));
    let body = html! {
        h1 { "Request " code { (r.id) } }
        p.sub { (page.local_time(r.at_ms)) }
        div.panel {
            dl.facts {
                dt { "User" } dd { a href=(page.url(&format!("users/{}", r.user_id))) { (r.user_id) } }
                dt { "Task" } dd { a href=(page.url(&format!("tasks/{}", r.task_id))) { (r.task_id) } }
                dt { "Endpoint" } dd { (r.endpoint) }
                dt { "Model" } dd { (r.model) @if r.stream { " (streamed)" } }
                @if !r.provider.is_empty() {
                    dt { "Provider" } dd { code { (r.provider) } " · " (r.upstream_model) }
                }
                @if !r.attempts.is_empty() {
                    dt { "Attempts" } dd {
                        @for a in &r.attempts {
                            div { code { (a.provider) "/" (a.model) } " → " @if a.status == 0 { "unreachable" } @else { (a.status) } " in " (a.ms) " ms" @if let Some(e) = &a.error { span.muted { " — " (e) } } }
                        }
                    }
                }
                dt { "Status" } dd { (r.status) @if let Some(e) = &r.error { " — " (e) } }
                dt { "Tokens" } dd { (int(r.tokens_in)) " in, " (int(r.tokens_out)) " out · est. " (usd(cost)) }
                dt { "Latency" } dd { (r.latency_ms) " ms" }
                dt { "Intent" } dd { (tag(r.intent.map(|i| i.as_str()))) @if let Some(c) = r.confidence { " " (format!("{:.0}%", c * 100.0)) } @if let Some(m) = &r.model_intent { " · the model said " (tag(Some(m))) } }
                dt { "Drift" } dd { (tag(r.drift.map(|d| d.as_str()))) }
                dt { "Deviation" } dd { (r.deviation_delta.map(|d| format!("+{d:.2}")).unwrap_or_default()) " → " (r.deviation_score.map(|s| format!("{s:.2}")).unwrap_or_default()) @if let Some(a) = r.action { " " (tag(Some(a.as_str()))) } }
            }
        }
        div.panel { div.spread { h2 { "Prompt" } button.secondary type="button" data-copy="full-prompt" { "Copy" } } pre.prompt #full-prompt { (r.prompt) } }
    };
    page.render("Request", "logs", body)
}

const CSV_HEADER: &str = "time,request_id,user,task,model,status,tokens_in,tokens_out,cost_usd,latency_ms,intent,drift,deviation_score,action,prompt\n";

fn csv_rows(app: &App, tenant: &str, records: &[RequestRecord]) -> String {
    let directory = app.db.directory();
    let calendar = directory.tenant(tenant).map(|e| &e.calendar);
    let pricing = app.db.pricing();
    let mut out = String::with_capacity(records.len() * 256);
    for r in records {
        let time = calendar.map(|c| c.local_time(r.at_ms)).unwrap_or_default();
        let cost = pricing.record_cost_micro_usd(r, directory.provider_prices(r)) as f64 / 1e6;
        let fields = [
            time,
            r.id.clone(),
            r.user_id.clone(),
            r.task_id.clone(),
            r.model.clone(),
            r.status.to_string(),
            r.tokens_in.to_string(),
            r.tokens_out.to_string(),
            format!("{cost:.6}"),
            r.latency_ms.to_string(),
            r.intent.map(|i| i.to_string()).unwrap_or_default(),
            r.drift.map(|d| d.to_string()).unwrap_or_default(),
            r.deviation_score
                .map(|s| format!("{s:.3}"))
                .unwrap_or_default(),
            r.action.map(|a| a.to_string()).unwrap_or_default(),
            r.prompt.clone(),
        ];
        csv::row(&mut out, &fields);
    }
    out
}

/// `logs.csv`: every matching request, streamed in batches, so an export
/// of a month holds one batch in memory at a time.
pub fn csv(page: &Page<'_>) -> Response<Body> {
    let filter = match filter_of(page) {
        Ok(f) => f,
        Err(m) => return error_page(StatusCode::BAD_REQUEST, &m, Some(page.viewer)),
    };
    let (app, tenant) = (page.app.clone(), page.tenant.to_string());
    // State: None before the first batch, Some(cursor) after; Done at the end.
    enum Step {
        Header,
        From(Option<String>),
        Done,
    }
    let body = stream::unfold((Step::Header, filter), move |(step, filter)| {
        let (app, tenant) = (app.clone(), tenant.clone());
        async move {
            let cursor = match step {
                Step::Done => return None,
                Step::Header => {
                    let frame = Frame::data(Bytes::from_static(CSV_HEADER.as_bytes()));
                    return Some((Ok::<_, BoxError>(frame), (Step::From(None), filter)));
                }
                Step::From(cursor) => cursor,
            };
            let page = match app
                .db
                .query_requests(&tenant, &filter, cursor.as_deref(), CSV_BATCH)
            {
                Ok(p) => p,
                Err(e) => return Some((Err(e.into()), (Step::Done, filter))),
            };
            let rows = csv_rows(&app, &tenant, &page.data);
            let next = match page.next_cursor {
                Some(c) => Step::From(Some(c)),
                None => Step::Done,
            };
            Some((Ok(Frame::data(Bytes::from(rows))), (next, filter)))
        }
    });
    csv::response(
        BodyExt::boxed_unsync(StreamBody::new(body)),
        &format!("warden-{}-requests.csv", page.tenant),
    )
}
