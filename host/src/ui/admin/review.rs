//! The review queue: flagged and blocked users (blocked first), each with
//! the evidence that put them there (the off-task prompts with their
//! labels, the score before and after, the usage signals) and the forms
//! to re-enable, block or change limits, each with a reason.

use hyper::Response;
use maud::{html, Markup};
use serde_json::Value;

use super::users::access_forms;
use super::Page;
use crate::http::Body;
use crate::state::model::{Event, User, UserStatus};
use crate::ui::layout::{flash, status_badge, tag};

/// Events scanned, newest first, for each user's evidence.
const EVIDENCE_SCAN: usize = 20_000;

fn evidence(page: &Page<'_>, event: Option<&Event>) -> Markup {
    let Some(event) = event else {
        return html! { p.muted { "No flag or block event was found for this user." } };
    };
    let d = &event.details;
    let number = |v: &Value| {
        v.as_f64()
            .map(|n| format!("{n:.2}"))
            .unwrap_or_else(|| "–".into())
    };
    let prompts = d["prompts"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    html! {
        p {
            strong { (event.action) } " by " (event.actor) " at " (page.local_time(event.at_ms))
            @if let Some(reason) = &event.reason { ": " (reason) }
        }
        @if !d["score"].is_null() {
            p.muted {
                "Score " (number(&d["score_before"])) " → " (number(&d["score"]))
                " · " (d["signals"]["requests_last_hour"].as_u64().unwrap_or(0)) " requests in the last hour (usual "
                (number(&d["signals"]["baseline_requests_per_hour"])) ")"
                " · " (d["signals"]["unrelated_last_ten_minutes"].as_u64().unwrap_or(0)) " unrelated in ten minutes"
            }
        }
        @if !prompts.is_empty() {
            ul.evidence {
                @for p in prompts {
                    li {
                        div.row {
                            (tag(p["label"].as_str())) (tag(p["drift"].as_str()))
                            span.muted { (number(&p["confidence"])) " confidence · task " (p["task_id"].as_str().unwrap_or("")) " · " (page.local_time(p["at_ms"].as_u64().unwrap_or(0))) }
                        }
                        div.prompt { (p["prompt"].as_str().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

pub fn page(page: &Page<'_>) -> Response<Body> {
    let directory = page.app.db.directory();
    let Some(entry) = directory.tenant(page.tenant) else {
        return page.not_found("no such tenant");
    };
    let mut users: Vec<&User> = entry
        .users
        .values()
        .filter(|u| u.status != UserStatus::Active)
        .collect();
    users.sort_by(|a, b| {
        (b.status == UserStatus::Blocked)
            .cmp(&(a.status == UserStatus::Blocked))
            .then_with(|| a.id.cmp(&b.id))
    });
    let ids: Vec<&str> = users.iter().map(|u| u.id.as_str()).collect();
    let events = page
        .app
        .db
        .latest_events(
            page.tenant,
            &ids,
            &["user.flag", "user.block"],
            EVIDENCE_SCAN,
        )
        .unwrap_or_default();
    let at = page.app.moment(page.tenant);
    let back = page.url("review");
    let body = html! {
        h1 { "Review queue" }
        p.sub { "Flagged and blocked users, with the prompts that put them here. Every decision asks for a reason, kept in the audit log." }
        (flash(&page.query))
        @if users.is_empty() { div.panel { p { "Nobody is waiting for review." } } }
        @for user in &users {
            @let (_, score, _) = page.app.activity.peek(page.tenant, &user.id, &at);
            div.panel.review id={ "review-" (user.id) } {
                div.spread {
                    h2 { a href=(page.url(&format!("users/{}", user.id))) { (user.name) } " " (status_badge(user.status)) }
                    span.muted { (user.id) " · score now " (format!("{score:.2}")) }
                }
                (evidence(page, events.get(&user.id)))
                (access_forms(page, user, &back))
            }
        }
    };
    page.render("Review queue", "review", body)
}
