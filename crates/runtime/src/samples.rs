//! Typical calls of each stage, made up of plausible values: an upload's
//! self-test calls a new plugin with them before it may go live, and the
//! chain benchmark times the stages with them.

use super::bindings::{auth, deviation, guardrail, intent, quota, task_validation, types};
use super::{PluginError, Stage, TenantPlugin};

pub const TASK: &str = "invoice-backend";
const PROMPT: &str =
    "Write the REST endpoint that creates an invoice with tax lines and stores it in postgres";

pub fn identity(tenant_id: &str) -> types::Identity {
    types::Identity {
        tenant_id: tenant_id.to_string(),
        user_id: "sample-user".into(),
        role: types::Role::User,
    }
}

pub fn claims() -> types::TokenClaims {
    types::TokenClaims {
        token_id: "0123456789abcdef0123456789abcdef".into(),
        issued_at: 1_700_000_000,
        expires_at: 1_800_000_000,
        tasks: vec![TASK.into()],
        endpoints: vec!["chat.completions".into()],
        models: vec!["gpt-4o-mini".into()],
    }
}

pub fn task() -> types::Task {
    types::Task {
        id: TASK.into(),
        title: "Invoice backend".into(),
        description:
            "Build the REST API and database layer that creates, stores and sends invoices.".into(),
        keywords: [
            "invoice", "billing", "api", "rest", "postgres", "pdf", "tax",
        ]
        .map(String::from)
        .to_vec(),
        endpoints: vec![],
        models: vec!["gpt-4o-mini".into()],
        active: true,
    }
}

pub fn auth_request(tenant_id: &str) -> auth::AuthRequest {
    auth::AuthRequest {
        identity: identity(tenant_id),
        claims: claims(),
        user_status: types::UserStatus::Active,
        tenant_status: types::TenantStatus::Active,
        endpoint: "chat.completions".into(),
    }
}

pub fn task_request(tenant_id: &str) -> task_validation::TaskRequest {
    task_validation::TaskRequest {
        identity: identity(tenant_id),
        claims: claims(),
        task_id: TASK.into(),
        endpoint: "chat.completions".into(),
        model: "gpt-4o-mini".into(),
        task: Some(task()),
    }
}

pub fn quota_request(tenant_id: &str) -> quota::QuotaRequest {
    quota::QuotaRequest {
        identity: identity(tenant_id),
        limits: types::Limits {
            requests_per_minute: Some(60),
            requests_per_day: Some(200),
            tokens_per_day: Some(300_000),
            tokens_per_month: None,
        },
        usage: types::Usage {
            requests_this_minute: 1,
            requests_today: 10,
            tokens_today: 5_000,
            tokens_this_month: 50_000,
            minute_resets_in: 30,
            day_resets_in: 3_600,
            month_resets_in: 86_400,
        },
        estimated_tokens: 600,
    }
}

pub fn intent_request() -> intent::IntentRequest {
    intent::IntentRequest {
        prompt: PROMPT.into(),
        task: task(),
    }
}

/// A deviation request with `history` earlier on-task requests.
pub fn deviation_request(tenant_id: &str, history: u64) -> deviation::DeviationRequest {
    deviation::DeviationRequest {
        identity: identity(tenant_id),
        task_id: TASK.into(),
        current: types::Intent {
            label: types::IntentLabel::Code,
            confidence: 0.9,
            drift: types::Drift::OnTask,
        },
        history: (0..history)
            .map(|n| types::HistoryEntry {
                at_ms: 1_700_000_000_000 + n * 60_000,
                same_task: true,
                label: types::IntentLabel::Code,
                drift: types::Drift::OnTask,
            })
            .collect(),
        stats: types::UsageStats {
            requests_last_hour: 10,
            baseline_requests_per_hour: 8.0,
            unrelated_last_ten_minutes: 0,
        },
        score: 0.3,
        score_updated_at_ms: 1_700_000_000_000,
    }
}

pub fn guardrail_context(tenant_id: &str) -> guardrail::CallContext {
    guardrail::CallContext {
        identity: identity(tenant_id),
        task_id: TASK.into(),
        endpoint: "chat.completions".into(),
        model: "gpt-4o-mini".into(),
    }
}

pub fn guardrail_messages() -> Vec<guardrail::Message> {
    vec![
        guardrail::Message {
            role: "system".into(),
            content: "You help build the invoice backend.".into(),
        },
        guardrail::Message {
            role: "user".into(),
            content: PROMPT.into(),
        },
    ]
}

/// One typical call of whatever stage `plugin` implements (for a
/// guardrail, `on-request` then `on-response`); any answer is fine, a
/// failure is returned.
pub async fn call(plugin: &TenantPlugin, tenant_id: &str) -> Result<(), PluginError> {
    match plugin.stage() {
        Stage::Auth => plugin.auth(&auth_request(tenant_id)).await.map(drop),
        Stage::TaskValidation => plugin
            .validate_task(&task_request(tenant_id))
            .await
            .map(drop),
        Stage::Quota => plugin.quota(&quota_request(tenant_id)).await.map(drop),
        Stage::Intent => plugin.intent(&intent_request()).await.map(drop),
        Stage::Deviation => plugin
            .deviation(&deviation_request(tenant_id, 20))
            .await
            .map(drop),
        Stage::Guardrail => {
            let context = guardrail_context(tenant_id);
            plugin.on_request(&context, &guardrail_messages()).await?;
            plugin
                .on_response(&context, "Here is the endpoint.")
                .await
                .map(drop)
        }
    }
}
