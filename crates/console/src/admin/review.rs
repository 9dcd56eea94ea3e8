//! The review queue: flagged and blocked users (blocked first), each with
//! the evidence that put them there (the off-task prompts with their
//! labels, the score before and after, the usage signals) and the forms
//! to re-enable, block or change limits, each with a reason.

use hyper::{Response, StatusCode};
use maud::{html, Markup};
use serde_json::Value;

use super::users::access_forms;
use super::Page;
use crate::admin_api::Access;
use crate::error_page;
use crate::http::Body;
use crate::layout::{csrf, flash, status_badge, tag};
use crate::state::model::Event;

/// "This was on-task" for a prompt still held against the user.
fn on_task_form(page: &Page<'_>, user: &str, request_id: &str) -> Markup {
    html! {
        form.inline.on-task method="post" action=(page.url(&format!("users/{user}/prompts/{request_id}/on-task"))) {
            (csrf(page.viewer))
            input name="note" placeholder="Note to the user (optional)" size="24";
            button.secondary type="submit" { "This was on-task" }
        }
    }
}

/// The tenant's detection settings: thresholds and shadow mode.
fn settings_form(page: &Page<'_>) -> Markup {
    let own = page
        .app
        .db
        .directory()
        .tenant(page.tenant)
        .and_then(|e| e.tenant.as_ref().map(|t| t.misuse.clone()))
        .unwrap_or_default();
    let effective = page
        .app
        .chains
        .as_ref()
        .map(|c| c.deviation_thresholds(page.tenant))
        .unwrap_or_default();
    let value = |own: Option<f32>, name: &str| {
        let named = effective.named();
        own.or_else(|| named.iter().find(|(n, _)| *n == name).and_then(|(_, v)| *v))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    html! {
        details.panel #misuse-settings {
            summary { "Detection settings" @if own.shadow == Some(true) { " " span.badge.warn { "shadow mode" } } }
            p.muted { "Each off-task prompt adds to a user's score (a major one up to 1, weighed by the classifier's confidence); the score halves every half-life. Users are warned, then flagged, then blocked, one step per call at most. In shadow mode Warden scores and flags but never blocks." }
            form.stack method="post" action=(page.url("misuse")) {
                (csrf(page.viewer))
                div.row {
                    label.field { "Warn at" input name="warn_at" inputmode="decimal" size="6" value=(value(own.warn_at, "warn")); }
                    label.field { "Flag at" input name="flag_at" inputmode="decimal" size="6" value=(value(own.flag_at, "flag")); }
                    label.field { "Block at" input name="block_at" inputmode="decimal" size="6" value=(value(own.block_at, "block")); }
                    label.field { "Half-life (minutes)" input name="half_life_minutes" inputmode="decimal" size="6" value=(own.half_life_minutes.map(|v| v.to_string()).unwrap_or_default()); }
                }
                label.check { input type="checkbox" name="shadow" checked[own.shadow == Some(true)]; " Shadow mode: never block" }
                input name="reason" placeholder="Reason (optional, kept in the audit log)";
                button type="submit" { "Save settings" }
            }
        }
    }
}

fn evidence(page: &Page<'_>, user: &str, event: Option<&Event>) -> Markup {
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
    // Prompts an admin already marked on-task are no longer held.
    let held: Vec<String> = page
        .app
        .activity
        .notes(page.tenant, user)
        .0
        .into_iter()
        .map(|p| p.request_id)
        .collect();
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
                        @if let Some(request_id) = p["request_id"].as_str().filter(|r| held.iter().any(|h| h == r)) {
                            @if page.may(Access::ManageUsers) { (on_task_form(page, user, request_id)) }
                        } @else {
                            span.muted.released { "no longer held against the user" }
                        }
                    }
                }
            }
        }
    }
}

pub fn page(page: &Page<'_>) -> Response<Body> {
    let queue = match crate::admin_api::review_queue(page.app, page.tenant) {
        Ok(mut queue) => {
            queue.retain(|(user, _)| page.reaches(user));
            queue
        }
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
        @if page.may(Access::Administer) { (settings_form(page)) }
        @if queue.is_empty() { div.panel { p { "Nobody is waiting for review." } } }
        @for (user, event) in &queue {
            @let (_, score, _) = page.app.activity.peek(page.tenant, &user.id, &at);
            div.panel.review id={ "review-" (user.id) } {
                div.spread {
                    h2 { a href=(page.url(&format!("users/{}", user.id))) { (user.name) } " " (status_badge(user.status)) }
                    span.muted { (user.id) " · score now " (format!("{score:.2}")) }
                }
                (evidence(page, &user.id, event.as_ref()))
                @if page.may(Access::ManageUsers) { (access_forms(page, user, &back)) }
            }
        }
    };
    page.render("Review queue", "review", body)
}
