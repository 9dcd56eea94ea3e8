//! `GET /v1/me`: a user's own standing: status, tasks, usage today, remaining
//! quota, deviation score, the last warning with the prompts that earned
//! it, and the admin's note.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;

use crate::app::App;
use crate::error::ApiError;
use crate::http::{json_response, Body};

pub fn handle(app: &App, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let claims = crate::auth::authenticate(app, req)?;
    let directory = app.db.directory();
    let entry = directory.tenant(&claims.tid);
    let user = entry
        .and_then(|e| e.users.get(&claims.sub))
        .ok_or_else(|| ApiError::unauthorized("the token's user no longer exists"))?;
    let tasks: Vec<_> = claims
        .tasks
        .iter()
        .map(|id| {
            let task = entry.and_then(|e| e.tasks.get(id));
            json!({ "id": id, "title": task.map(|t| t.title.as_str()), "active": task.is_some_and(|t| t.active) })
        })
        .collect();
    let at = app.moment(&claims.tid);
    let (usage, score, warning) = app.activity.peek(&claims.tid, &claims.sub, &at);
    let (requests_week, tokens_week) = app.activity.week_of(&claims.tid, &claims.sub, &at);
    let (off_task, admin_note) = app.activity.notes(&claims.tid, &claims.sub);
    // The user's own prompts that moved their score: what earned a warning.
    let off_task: Vec<_> = off_task
        .iter()
        .map(|p| {
            json!({ "at_ms": p.at_ms, "request_id": p.request_id, "task": p.task_id,
                    "prompt": p.prompt, "drift": p.drift, "confidence": p.confidence })
        })
        .collect();
    let remaining = |limit: Option<u64>, used: u64| limit.map(|l| l.saturating_sub(used));
    let limits = &user.limits;
    let body = json!({
        "tenant": claims.tid,
        "user": claims.sub,
        "status": user.status,
        "tasks": tasks,
        "models": claims.models,
        "token_expires_at": claims.exp,
        "usage": {
            "requests_today": usage.requests_today,
            "tokens_today": usage.tokens_today,
            "requests_this_week": requests_week,
            "tokens_this_week": tokens_week,
            "tokens_this_month": usage.tokens_this_month,
        },
        "limits": limits,
        "remaining": {
            "requests_today": remaining(limits.requests_per_day, usage.requests_today),
            "tokens_today": remaining(limits.tokens_per_day, usage.tokens_today),
            "tokens_this_month": remaining(limits.tokens_per_month, usage.tokens_this_month),
        },
        "resets_in_secs": { "day": usage.day_resets_in, "month": usage.month_resets_in },
        "deviation_score": score,
        "warning": warning,
        "off_task_prompts": off_task,
        "admin_note": admin_note,
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}
