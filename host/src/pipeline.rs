//! A request's path through the five stages, in order:
//!
//! ```text
//!  token verified (host) ─▶ auth ─▶ task-validation ─▶ quota ─▶ intent ─▶ deviation ─▶ upstream
//!                            │            │               │         │           │
//!                           403          403         429+Retry   (label)   warn/flag/block(403)
//! ```
//!
//! Each stage is a sandboxed plugin call; the host turns its verdict into a
//! status or a header and keeps the state (usage reservations, scores,
//! user status) the plugins only read.

use crate::app::App;
use crate::chain::{drift_str, label_str, StageSlot, TenantChain};
use crate::error::ApiError;
use crate::runtime::bindings::{auth, deviation, intent, quota, task_validation, types};
use crate::runtime::PluginError;
use crate::state::model::{Role, Task, Tenant, TenantStatus, User, UserStatus};
use crate::state::HistoryItem;
use crate::state::OffTaskPrompt;
use crate::token::Claims;

/// What the host knows about a call before the chain runs.
pub struct CallFacts<'a> {
    pub request_id: &'a str,
    pub claims: &'a Claims,
    pub tenant: &'a Tenant,
    pub user: &'a User,
    pub task_id: &'a str,
    pub task: Option<&'a Task>,
    pub endpoint: &'static str,
    pub model: &'a str,
    pub prompt: &'a str,
    pub estimated_tokens: u64,
    /// When the call arrived, in the tenant's quota windows.
    pub at: crate::calendar::Moment,
}

/// What the chain decided for a call that may go ahead.
#[derive(Default)]
pub struct Assessment {
    pub intent: Option<types::Intent>,
    pub deviation_delta: Option<f32>,
    pub score: Option<f32>,
    pub action: Option<types::Action>,
    pub warning: Option<String>,
    /// Tokens reserved against the quota, to reconcile with real usage.
    pub reserved_tokens: u64,
    /// Daily windows after this call's reservation, for the response headers.
    pub rate_limit: Option<crate::ratelimit::RateLimitInfo>,
    /// Set when this call blocked the user: the refusal to answer with
    /// (nothing is reserved any more).
    pub blocked: Option<ApiError>,
}

pub(crate) fn wit_role(role: Role) -> types::Role {
    match role {
        Role::SuperAdmin => types::Role::SuperAdmin,
        Role::Admin => types::Role::Admin,
        Role::User => types::Role::User,
    }
}

fn identity(facts: &CallFacts<'_>) -> types::Identity {
    types::Identity {
        tenant_id: facts.tenant.id.clone(),
        user_id: facts.user.id.clone(),
        role: wit_role(facts.user.role),
    }
}

fn claims(c: &Claims) -> types::TokenClaims {
    types::TokenClaims {
        token_id: c.jti.clone(),
        issued_at: c.iat,
        expires_at: c.exp,
        tasks: c.tasks.clone(),
        endpoints: c.endpoints.clone(),
        models: c.models.clone(),
    }
}

fn task(t: &Task) -> types::Task {
    types::Task {
        id: t.id.clone(),
        title: t.title.clone(),
        description: t.description.clone(),
        keywords: t.keywords.clone(),
        endpoints: t.endpoints.clone(),
        models: t.models.clone(),
        active: t.active,
    }
}

fn failed(err: PluginError) -> ApiError {
    tracing::warn!(stage = %err.stage, plugin = %err.plugin, kind = ?err.kind, detail = %err.detail, "plugin failed");
    ApiError::plugin_failed(format!("{err}; the request was refused (fail closed)"))
}

/// `Ok(None)` when a fail-open stage failed and the request goes on unscored.
fn tolerate<T>(slot: &StageSlot, result: Result<T, PluginError>) -> Result<Option<T>, ApiError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if slot.fail_open => {
            tracing::warn!(stage = %e.stage, plugin = %e.plugin, kind = ?e.kind, "plugin failed; continuing (fail open)");
            Ok(None)
        }
        Err(e) => Err(failed(e)),
    }
}

/// Off-task prompts quoted in a blocked user's refusal.
const QUOTED_PROMPTS: usize = 3;

/// The refusal a blocked user gets: why, the off-task prompts that did it
/// (latest first), and how to get access back.
fn blocked(app: &App, facts: &CallFacts<'_>, reason: &str) -> ApiError {
    let (tenant, user) = (&facts.tenant.id, &facts.user.id);
    let quoted: Vec<String> = app.activity.with_user(tenant, user, &facts.at, |a| {
        a.off_task
            .iter()
            .rev()
            .filter(|p| p.drift == "major")
            .take(QUOTED_PROMPTS)
            .map(|p| format!("\"{}\"", p.prompt.chars().take(80).collect::<String>()))
            .collect()
    });
    let evidence = if quoted.is_empty() {
        String::new()
    } else {
        format!(" Off-task prompts: {}.", quoted.join(", "))
    };
    ApiError::forbidden(
        "user_blocked",
        format!(
            "{reason}.{evidence} An admin must re-enable the account: contact an admin of \
             tenant '{tenant}' (your page /ui/me shows the evidence)."
        ),
    )
}

pub async fn run(
    app: &App,
    chain: &TenantChain,
    facts: &CallFacts<'_>,
) -> Result<Assessment, ApiError> {
    let who = identity(facts);
    let token = claims(facts.claims);

    // 1. auth
    let request = auth::AuthRequest {
        identity: who.clone(),
        claims: token.clone(),
        user_status: match facts.user.status {
            UserStatus::Active => types::UserStatus::Active,
            UserStatus::Flagged => types::UserStatus::Flagged,
            UserStatus::Blocked => types::UserStatus::Blocked,
        },
        tenant_status: match facts.tenant.status {
            TenantStatus::Active => types::TenantStatus::Active,
            TenantStatus::Suspended => types::TenantStatus::Suspended,
        },
        endpoint: facts.endpoint.to_string(),
    };
    if let types::Verdict::Deny(reason) = chain.auth.plugin.auth(&request).await.map_err(failed)? {
        // Every call of a blocked user gets the code of the call that
        // blocked them, and the evidence.
        if facts.user.status == UserStatus::Blocked {
            let reason = format!("user '{}' is blocked", facts.user.id);
            return Err(blocked(app, facts, &reason));
        }
        return Err(ApiError::forbidden("access_denied", reason));
    }

    // 2. task validation
    let request = task_validation::TaskRequest {
        identity: who.clone(),
        claims: token,
        task_id: facts.task_id.to_string(),
        endpoint: facts.endpoint.to_string(),
        model: facts.model.to_string(),
        task: facts.task.map(task),
    };
    let verdict = chain
        .task_validation
        .plugin
        .validate_task(&request)
        .await
        .map_err(failed)?;
    if let types::Verdict::Deny(reason) = verdict {
        return Err(ApiError::forbidden("task_not_allowed", reason));
    }
    let task_record = request
        .task
        .expect("task validation allows only existing tasks");

    // 3. quota: take the snapshot and reserve this call's estimate in one
    // step, so concurrent calls each see the others' reservations and the
    // limit cannot be overshot by more than what is in flight; a refusal
    // gives the reservation back.
    let (tenant_id, user_id) = (facts.tenant.id.as_str(), facts.user.id.as_str());
    let at = &facts.at;
    let now = at.now_ms;
    let (usage, after) = app.activity.with_user(tenant_id, user_id, at, |a| {
        let before = a.usage(at);
        a.reserve(facts.estimated_tokens, now);
        (before, a.usage(at))
    });
    let unreserve = |app: &App| {
        app.activity.with_user(tenant_id, user_id, at, |a| {
            a.unreserve(facts.estimated_tokens)
        });
    };
    let request = quota::QuotaRequest {
        identity: who.clone(),
        limits: types::Limits {
            requests_per_minute: facts.user.limits.requests_per_minute,
            requests_per_day: facts.user.limits.requests_per_day,
            tokens_per_day: facts.user.limits.tokens_per_day,
            tokens_per_month: facts.user.limits.tokens_per_month,
        },
        usage,
        estimated_tokens: facts.estimated_tokens,
    };
    let verdict = chain.quota.plugin.quota(&request).await.map_err(|e| {
        unreserve(app);
        failed(e)
    })?;
    if let quota::QuotaVerdict::Deny(d) = verdict {
        unreserve(app);
        let mut error = ApiError::rate_limited(d.reason, d.retry_after_secs);
        error.rate_limit = Some(Box::new(crate::ratelimit::RateLimitInfo::new(
            &facts.user.limits,
            &request.usage,
        )));
        return Err(error);
    }
    let mut assessment = Assessment {
        reserved_tokens: facts.estimated_tokens,
        rate_limit: Some(crate::ratelimit::RateLimitInfo::new(
            &facts.user.limits,
            &after,
        )),
        ..Assessment::default()
    };
    let release = |app: &App| {
        app.activity.with_user(tenant_id, user_id, at, |a| {
            a.reconcile(facts.estimated_tokens, 0)
        });
    };

    // 4. intent
    let request = intent::IntentRequest {
        prompt: facts.prompt.to_string(),
        task: task_record,
    };
    let result = chain.intent.plugin.intent(&request).await;
    let Some(intent) = tolerate(&chain.intent, result).inspect_err(|_| release(app))? else {
        return Ok(assessment);
    };
    assessment.intent = Some(intent);

    // 5. deviation. An off-task prompt sent again (a retry, the same
    // question twice) was scored once already: the stage sees it as
    // on-task (the standing rules still apply, nothing is added) and it is
    // not remembered twice. The request log keeps its real intent.
    let off_task = intent.drift != types::Drift::OnTask;
    // Only off-task prompts are remembered, so only they are hashed.
    let prompt_hash = if off_task {
        OffTaskPrompt::hash(facts.prompt)
    } else {
        0
    };
    let (repeat, history, stats, score, updated) =
        app.activity.with_user(tenant_id, user_id, at, |a| {
            (
                off_task && a.repeats(facts.task_id, prompt_hash, now),
                a.history_for_plugin(facts.task_id),
                a.stats(now),
                a.counters.score,
                a.counters.score_updated_at_ms,
            )
        });
    let scored = if repeat {
        types::Intent {
            drift: types::Drift::OnTask,
            ..intent
        }
    } else {
        intent
    };
    let request = deviation::DeviationRequest {
        identity: who,
        task_id: facts.task_id.to_string(),
        current: scored,
        history,
        stats,
        score,
        score_updated_at_ms: updated,
    };
    let result = chain.deviation.plugin.deviation(&request).await;
    let Some(outcome) = tolerate(&chain.deviation, result).inspect_err(|_| release(app))? else {
        return Ok(assessment);
    };
    let warning = (outcome.action != types::Action::None).then(|| outcome.reason.clone());
    let (new_score, evidence) = app.activity.with_user(tenant_id, user_id, at, |a| {
        a.counters.score = (a.counters.score + outcome.score_delta).max(0.0);
        a.counters.score_updated_at_ms = now;
        let (label, drift) = (label_str(intent.label), drift_str(intent.drift));
        if repeat {
            return (a.counters.score, None);
        }
        a.remember(HistoryItem {
            at_ms: now,
            task_id: facts.task_id.to_string(),
            label: label.to_string(),
            drift: drift.to_string(),
        });
        if off_task {
            a.remember_off_task(OffTaskPrompt {
                at_ms: now,
                request_id: facts.request_id.to_string(),
                task_id: facts.task_id.to_string(),
                prompt: OffTaskPrompt::excerpt(facts.prompt),
                label: label.to_string(),
                drift: drift.to_string(),
                confidence: intent.confidence,
                score_delta: outcome.score_delta.max(0.0),
                prompt_hash,
            });
        }
        if warning.is_some() {
            a.last_warning = warning.clone();
        }
        let evidence = warning
            .is_some()
            .then(|| a.off_task.iter().cloned().collect());
        (a.counters.score, evidence)
    });
    if let Some(prompts) = evidence {
        crate::evidence::record(
            app,
            tenant_id,
            user_id,
            crate::evidence::Scoring {
                request_id: facts.request_id,
                task_id: facts.task_id,
                intent,
                outcome: &outcome,
                score_before: score,
                score_after: new_score,
                stats: &request.stats,
                prompts,
            },
        );
    }
    assessment.deviation_delta = Some(outcome.score_delta);
    assessment.score = Some(new_score);
    assessment.action = Some(outcome.action);
    match outcome.action {
        types::Action::Block => {
            release(app);
            if let Err(e) = app
                .db
                .set_user_status(tenant_id, user_id, UserStatus::Blocked)
            {
                tracing::error!(error = %e, "could not store a block");
            }
            tracing::warn!(tenant = tenant_id, user = user_id, score = new_score, reason = %outcome.reason, "user blocked");
            // Returned as an assessment, not an error, so the request log
            // keeps this call's intent and score beside the refusal.
            assessment.blocked = Some(blocked(
                app,
                facts,
                &format!(
                    "access disabled: {} (deviation score {new_score:.2})",
                    outcome.reason
                ),
            ));
            assessment.reserved_tokens = 0;
            return Ok(assessment);
        }
        types::Action::Flag if facts.user.status == UserStatus::Active => {
            if let Err(e) = app
                .db
                .set_user_status(tenant_id, user_id, UserStatus::Flagged)
            {
                tracing::error!(error = %e, "could not store a flag");
            }
        }
        _ => {}
    }
    assessment.warning = warning;
    Ok(assessment)
}
