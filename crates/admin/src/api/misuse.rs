//! A tenant's admins tune and correct misuse detection themselves:
//! - edit a task (title, description, keywords, example prompts);
//! - mark a flagged prompt on-task: its score comes off the user, and it
//!   becomes one of the task's examples, so prompts like it are on-task for
//!   this tenant from the next call on (no retraining, no other tenant
//!   affected);
//! - choose the deviation thresholds and shadow mode.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{audit, internal, Access, Caller};
use crate::app::App;
use crate::chain::Thresholds;
use crate::error::{ApiError, ErrorCode};
use crate::state::model::{MisuseSettings, Task, TASK_EXAMPLES_KEPT, TASK_EXAMPLE_CHARS};

fn find_task(app: &App, tenant: &str, id: &str) -> Result<Task, ApiError> {
    app.db
        .directory()
        .tenant(tenant)
        .and_then(|e| e.tasks.get(id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("no task '{id}' in tenant '{tenant}'")))
}

/// Stores `task` and hands its examples to the tenant's intent plugin.
fn save_task(app: &App, task: &Task) -> Result<(), ApiError> {
    app.db.put_task(task).map_err(internal)?;
    if let Some(chains) = &app.chains {
        chains
            .publish_examples(&task.tenant_id, &task.id, &task.examples)
            .map_err(internal)?;
    }
    Ok(())
}

/// Cleans a list of examples: trimmed, one line each, capped, no repeats,
/// the newest kept.
fn tidy(examples: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for example in examples {
        let one_line = example.split_whitespace().collect::<Vec<_>>().join(" ");
        let cut: String = one_line.chars().take(TASK_EXAMPLE_CHARS).collect();
        if !cut.is_empty() && !out.contains(&cut) {
            out.push(cut);
        }
    }
    let excess = out.len().saturating_sub(TASK_EXAMPLES_KEPT);
    out.drain(..excess);
    out
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskChanges {
    pub title: Option<String>,
    pub description: Option<String>,
    pub keywords: Option<Vec<String>>,
    pub endpoints: Option<Vec<String>>,
    pub models: Option<Vec<String>>,
    /// Providers its calls may go to; empty = any.
    pub providers: Option<Vec<String>>,
    /// Replaces the task's example prompts.
    pub examples: Option<Vec<String>>,
    pub reason: Option<String>,
}

/// `PATCH /admin/v1/tenants/{t}/tasks/{id}`: changes the fields given.
pub fn update_task(
    app: &App,
    caller: &Caller,
    tenant: &str,
    id: &str,
    changes: TaskChanges,
) -> Result<Task, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let mut task = find_task(app, tenant, id)?;
    let mut changed = Vec::new();
    if let Some(title) = changes.title {
        let title = title.trim().to_string();
        if title.is_empty() {
            return Err(ApiError::new(
                ErrorCode::InvalidTask,
                "a task needs a title",
            ));
        }
        task.title = title;
        changed.push("title");
    }
    if let Some(description) = changes.description {
        task.description = description.trim().to_string();
        changed.push("description");
    }
    let list = |items: Vec<String>| -> Vec<String> {
        items
            .into_iter()
            .map(|i| i.trim().to_string())
            .filter(|i| !i.is_empty())
            .collect()
    };
    if let Some(keywords) = changes.keywords {
        task.keywords = list(keywords);
        changed.push("keywords");
    }
    if let Some(endpoints) = changes.endpoints {
        task.endpoints = list(endpoints);
        changed.push("endpoints");
    }
    if let Some(models) = changes.models {
        task.models = list(models);
        changed.push("models");
    }
    if let Some(providers) = changes.providers {
        task.providers = list(providers);
        changed.push("providers");
    }
    if let Some(examples) = changes.examples {
        task.examples = tidy(examples);
        changed.push("examples");
    }
    if changed.is_empty() {
        return Err(ApiError::new(
            ErrorCode::NothingToChange,
            "give at least one of title, description, keywords, endpoints, models, providers, examples",
        ));
    }
    save_task(app, &task)?;
    // Tasks are cached in tenants' chains only through the directory, which
    // the next call reads: nothing to rebuild.
    audit(
        app,
        caller,
        tenant,
        "task.update",
        id,
        changes.reason,
        json!({ "changed": changed }),
    )?;
    Ok(task)
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    /// Shown to the user on their page.
    pub note: Option<String>,
}

/// `POST /admin/v1/tenants/{t}/users/{u}/prompts/{request}/on-task`: the
/// admin says a prompt the detector held against the user was part of the
/// task.
pub fn mark_on_task(
    app: &App,
    caller: &Caller,
    tenant: &str,
    user: &str,
    request_id: &str,
    body: Correction,
) -> Result<Corrected, ApiError> {
    super::users::find(app, caller, Access::ManageUsers, tenant, user)?;
    let at = app.moment(tenant);
    let note = body
        .note
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let corrected = app
        .stores
        .deviation
        .take_back(tenant, user, &at, request_id, note.clone());
    let Some((prompt, score_before, score_after)) = corrected else {
        return Err(ApiError::not_found(format!(
            "request '{request_id}' is not among the off-task prompts held against '{user}'"
        )));
    };
    let mut task = find_task(app, tenant, &prompt.task_id)?;
    let mut examples = std::mem::take(&mut task.examples);
    examples.push(prompt.prompt.trim_end_matches('…').to_string());
    task.examples = tidy(examples);
    save_task(app, &task)?;
    audit(
        app,
        caller,
        tenant,
        "prompt.on_task",
        user,
        note,
        json!({
            "request_id": request_id,
            "task_id": task.id,
            "prompt": prompt.prompt,
            "was": { "drift": prompt.drift, "confidence": prompt.confidence },
            "score_before": score_before,
            "score": score_after,
        }),
    )?;
    Ok(Corrected {
        user: user.to_string(),
        task: task.id,
        score: score_after,
        examples: task.examples.len(),
    })
}

/// A prompt marked on-task: the user's score after, and how many examples
/// the task has now.
#[derive(Debug, Serialize)]
pub struct Corrected {
    pub user: String,
    pub task: String,
    pub score: f32,
    pub examples: usize,
}

/// The deviation settings in force for a tenant and the tenant's own.
#[derive(Debug, Serialize)]
pub struct SettingsView {
    pub tenant: String,
    pub own: MisuseSettings,
    /// The thresholds in force (the policy's, then the tenant's own); one
    /// left out is the plugin's own default.
    pub effective: Thresholds,
    pub shadow: bool,
}

fn settings_view(app: &App, tenant: &str, own: &MisuseSettings) -> SettingsView {
    let effective = app.chains.as_ref().map(|c| c.deviation_thresholds(tenant));
    SettingsView {
        tenant: tenant.to_string(),
        own: own.clone(),
        effective: effective.unwrap_or_default(),
        shadow: own.shadow.unwrap_or(false),
    }
}

/// `GET /admin/v1/tenants/{t}/misuse`.
pub fn show_settings(app: &App, caller: &Caller, tenant: &str) -> Result<SettingsView, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    let record = super::tenants::find(app, tenant)?;
    Ok(settings_view(app, tenant, &record.misuse))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSettings {
    pub warn_at: Option<f32>,
    pub flag_at: Option<f32>,
    pub block_at: Option<f32>,
    pub half_life_minutes: Option<f32>,
    pub shadow: Option<bool>,
    pub reason: Option<String>,
}

/// `PUT /admin/v1/tenants/{t}/misuse`: replaces the tenant's own settings
/// (fields left out fall back to the policy's).
pub fn set_settings(
    app: &App,
    caller: &Caller,
    tenant: &str,
    body: NewSettings,
) -> Result<SettingsView, ApiError> {
    caller.may(Access::Administer, tenant)?;
    let settings = MisuseSettings {
        warn_at: body.warn_at,
        flag_at: body.flag_at,
        block_at: body.block_at,
        half_life_minutes: body.half_life_minutes,
        shadow: body.shadow,
    };
    if let Some(problem) = settings.problem() {
        return Err(ApiError::new(ErrorCode::InvalidSettings, problem));
    }
    let mut record = super::tenants::find(app, tenant)?;
    let previous = std::mem::replace(&mut record.misuse, settings);
    app.db.put_tenant(&record).map_err(internal)?;
    if let Some(chains) = &app.chains {
        chains
            .set_misuse(tenant, &record.misuse)
            .map_err(internal)?;
    }
    audit(
        app,
        caller,
        tenant,
        "tenant.misuse",
        tenant,
        body.reason,
        json!({ "previous": previous, "new": record.misuse }),
    )?;
    Ok(settings_view(app, tenant, &record.misuse))
}
