//! Default task-validation stage: every call names a task that is one of the
//! token's, exists, is active, and allows this endpoint and model. Each denial
//! says which rule failed.

wit_bindgen::generate!({ path: "../../wit", world: "warden:policy/task-validation-plugin@0.1.0" });

use exports::warden::policy::task_validation::{Guest, TaskRequest};
use warden::policy::types::Verdict;

struct TaskValidation;

/// An empty allow-list means "no restriction".
fn allowed(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|v| v == value || v == "*")
}

impl Guest for TaskValidation {
    fn validate(request: TaskRequest) -> Verdict {
        let id = &request.task_id;
        if !request.claims.tasks.iter().any(|t| t == id) {
            return Verdict::Deny(format!(
                "task '{id}' is not one of this token's tasks ({})",
                request.claims.tasks.join(", ")
            ));
        }
        let Some(task) = request.task else {
            return Verdict::Deny(format!("task '{id}' does not exist in this tenant"));
        };
        if !task.active {
            return Verdict::Deny(format!("task '{id}' is archived"));
        }
        if !allowed(&task.endpoints, &request.endpoint) {
            return Verdict::Deny(format!(
                "task '{id}' does not allow the '{}' endpoint",
                request.endpoint
            ));
        }
        if !allowed(&request.claims.models, &request.model) {
            return Verdict::Deny(format!(
                "this token may not use model '{}' (allowed: {})",
                request.model,
                request.claims.models.join(", ")
            ));
        }
        if !allowed(&task.models, &request.model) {
            return Verdict::Deny(format!(
                "task '{id}' does not allow model '{}' (allowed: {})",
                request.model,
                task.models.join(", ")
            ));
        }
        Verdict::Allow
    }
}

export!(TaskValidation);
