//! The review queue: flagged and blocked users (blocked first), each with
//! the evidence that put them there (the off-task prompts with their
//! labels, the score before and after, the usage signals) and the forms
//! to re-enable, block or change limits, each with a reason.

use hyper::{Response, StatusCode};
use maud::{html, Markup};
use serde_json::Value;

use super::users::access_forms;
use super::Page;
use crate::http::Body;
use crate::state::model::Event;
use crate::ui::error_page;
use crate::ui::layout::{flash, status_badge, tag};

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
    let queue = match crate::admin_api::review_queue(page.app, page.tenant) {
        Ok(queue) => queue,
        Err(e) => {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("{e:#}"),
                Some(page.viewer),
            )
        }
    };
    let at = page.app.moment(page.tenant);
    let back = page.url("review");
    let body = html! {
        h1 { "Review queue" }
        p.sub { "Flagged and blocked users, with the prompts that put them here. Every decision asks for a reason, kept in the audit log." }
        (flash(&page.query))
        @if queue.is_empty() { div.panel { p { "Nobody is waiting for review." } } }
        @for (user, event) in &queue {
            @let (_, score, _) = page.app.activity.peek(page.tenant, &user.id, &at);
            div.panel.review id={ "review-" (user.id) } {
                div.spread {
                    h2 { a href=(page.url(&format!("users/{}", user.id))) { (user.name) } " " (status_badge(user.status)) }
                    span.muted { (user.id) " · score now " (format!("{score:.2}")) }
                }
                (evidence(page, event.as_ref()))
                (access_forms(page, user, &back))
            }
        }
    };
    page.render("Review queue", "review", body)
}
