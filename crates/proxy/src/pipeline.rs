//! A request's path through the five stages, in order:
//!
//! ```text
//!  token verified (host) ─▶ auth ─▶ task-validation ─▶ quota ─┬─▶ intent ─▶ deviation ─┬─▶ answer
//!                            │            │               │    └─▶ upstream ────────────┘
//!                           403          403         429+Retry   (label)   warn/flag/block(403)
//! ```
//!
//! [`admit`] runs stages 1–3 before the call is forwarded; [`judge`] runs
//! stages 4–5 beside the provider call, and the answer waits for its
//! verdict (a block withholds it).
//!
//! Each stage is a sandboxed plugin call; the host turns its verdict into a
//! status or a header and keeps the state (usage reservations, scores,
//! user status) the plugins only read.

use crate::adapters;
use crate::app::App;
use crate::chain::{StageSlot, TenantChain};
use crate::domain::groups::{group_pool, PoolLimits, PLAN_POOL};
use crate::domain::plans::LapseKind;
use crate::domain::{Action, DeviationOutcome, Drift, Intent, UsageStats};
use crate::error::{ApiError, ErrorCode};
use crate::ledger::Ledger;
use crate::ratelimit::RateLimitInfo;
use crate::runtime::bindings::{auth, deviation, intent, quota, task_validation, types};
use crate::runtime::{Embeddings, PluginError};
use crate::state::model::{Group, Task, Tenant, TenantStatus, User, UserStatus};
use crate::state::{HistoryItem, OffTaskPrompt, PastCall, Scored};
use crate::thresholds;
use crate::token::Claims;

/// What the host knows about a call before the chain runs.
pub struct CallFacts<'a> {
    pub request_id: &'a str,
    pub claims: &'a Claims,
    pub tenant: &'a Tenant,
    pub user: &'a User,
    /// The tenant's groups (the user's are in `user.groups`).
    pub groups: &'a std::collections::HashMap<String, Group>,
    pub task_id: &'a str,
    pub task: Option<&'a Task>,
    pub endpoint: &'static str,
    pub model: &'a str,
    pub prompt: &'a str,
    /// The prompt's estimated tokens, and the answer's cap as the client
    /// set it: with the user's remaining quota, what the call reserves.
    pub prompt_tokens: u64,
    pub completion_cap: Option<u64>,
    /// The answer's cap when the client sets none (a user with a token quota).
    pub max_output_tokens: u64,
    /// When the call arrived, in the tenant's quota windows.
    pub at: crate::calendar::Moment,
}

/// What an answer is assumed to take when nothing caps it (a user without
/// a token quota, a client without `max_tokens`): an estimate only.
const ANSWER_ESTIMATE: u64 = 512;

impl CallFacts<'_> {
    /// The tokens reserved for the answer, from the usage before the call,
    /// and the cap forwarded to the provider. The client's own cap is
    /// reserved as it is (the quota stage refuses it when it does not fit).
    /// A call without one, from a user with a token quota, is capped at what
    /// is left of the quota (at most `max_output_tokens`) and the cap is
    /// forwarded: the reservation bounds what the provider may produce, so
    /// the quota cannot be overshot by more than the prompt estimate's
    /// error. Without a token quota nothing is capped: the answer is only
    /// estimated.
    pub fn answer_budget(&self) -> crate::state::AnswerBudget {
        let limits = &self.user.limits;
        crate::state::AnswerBudget {
            fixed: self.completion_cap,
            tokens_per_day: limits.tokens_per_day,
            tokens_per_month: limits.tokens_per_month,
            prompt: self.prompt_tokens,
            max_output: self.max_output_tokens,
            estimate: ANSWER_ESTIMATE,
        }
    }

    /// Whether the answer's reservation is forwarded as its cap: no client
    /// cap, and a token quota to protect.
    fn caps_answer(&self) -> bool {
        let limits = &self.user.limits;
        self.completion_cap.is_none()
            && (limits.tokens_per_day.is_some() || limits.tokens_per_month.is_some())
    }
}

/// What the chain decided for a call that may go ahead.
#[derive(Default)]
pub struct Assessment {
    pub intent: Option<Intent>,
    pub deviation_delta: Option<f32>,
    pub score: Option<f32>,
    pub action: Option<Action>,
    pub warning: Option<String>,
    /// The cap on the answer's tokens to forward (a user with a token quota).
    pub output_cap: Option<u64>,
    /// Daily windows after this call's reservation, for the response headers.
    pub rate_limit: Option<RateLimitInfo>,
    /// Set when this call blocked the user: the refusal to answer with.
    pub blocked: Option<ApiError>,
    /// The subscription's notice (a failed payment, a trial's last days).
    pub subscription_notice: Option<String>,
}

fn identity(facts: &CallFacts<'_>) -> types::Identity {
    types::Identity {
        tenant_id: facts.tenant.id.clone(),
        user_id: facts.user.id.clone(),
        role: facts.user.role.into(),
    }
}

fn failed(err: PluginError) -> ApiError {
    crate::throttled!(warn, stage = %err.stage, plugin = %err.plugin, kind = ?err.kind, detail = %err.detail, "plugin failed");
    ApiError::plugin_failed(format!("{err}; the request was refused (fail closed)"))
}

/// `Ok(None)` when a fail-open stage failed and the request goes on unscored.
fn tolerate<T>(slot: &StageSlot, result: Result<T, PluginError>) -> Result<Option<T>, ApiError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if slot.fail_open => {
            crate::throttled!(warn, stage = %e.stage, plugin = %e.plugin, kind = ?e.kind, "plugin failed; continuing (fail open)");
            Ok(None)
        }
        Err(e) => Err(failed(e)),
    }
}

/// Off-task prompts quoted in a blocked user's refusal.
const QUOTED_PROMPTS: usize = 3;

/// The refusal a blocked user gets: why, the off-task prompts that did it
/// (latest first), and how to get access back.
async fn blocked(app: &App, facts: &CallFacts<'_>, reason: &str) -> ApiError {
    let (tenant, user) = (&facts.tenant.id, &facts.user.id);
    let off_task = app
        .stores
        .deviation
        .off_task(tenant, user, &facts.at)
        .get()
        .await;
    let quoted: Vec<String> = off_task
        .iter()
        .rev()
        .filter(|p| p.drift == Drift::Major)
        .take(QUOTED_PROMPTS)
        .map(|p| format!("\"{}\"", p.prompt.chars().take(80).collect::<String>()))
        .collect();
    let evidence = if quoted.is_empty() {
        String::new()
    } else {
        format!(" Off-task prompts: {}.", quoted.join(", "))
    };
    ApiError::new(
        ErrorCode::UserBlocked,
        format!(
            "{reason}.{evidence} An admin must re-enable the account: contact an admin of \
             tenant '{tenant}' (your page /ui/me shows the evidence)."
        ),
    )
}

/// What stages 1–3 let through: the assessment so far, and what stages
/// 4–5 read.
pub struct Admitted {
    pub assessment: Assessment,
    who: types::Identity,
    task: types::Task,
}

/// Stages 1–3 (auth, task, quota): whether the call may go to the provider
/// at all. Every exit leaves the quota reservation on `ledger`, which the
/// caller finishes: nothing here gives it back by hand, except the quota
/// phase when it refuses the call.
pub async fn admit(
    app: &App,
    chain: &TenantChain,
    facts: &CallFacts<'_>,
    ledger: &mut Ledger,
) -> Result<Admitted, ApiError> {
    let subscription_notice = subscription_in_force(app, facts)?;
    let who = identity(facts);
    let token = adapters::claims(facts.claims);
    authorize(app, chain, facts, &who, token.clone()).await?;
    let task = validate_task(chain, facts, &who, token).await?;
    let (rate_limit, output_cap) = reserve_quota(app, chain, facts, &who, ledger).await?;
    let assessment = Assessment {
        rate_limit: Some(rate_limit),
        output_cap,
        subscription_notice,
        ..Assessment::default()
    };
    Ok(Admitted {
        assessment,
        who,
        task,
    })
}

/// Stages 4–5 (intent, deviation) and what the host makes of them. They
/// run beside the provider call (the intent stage's sentence vectors take
/// milliseconds): their verdict decides whether its answer is given.
pub async fn judge(
    app: &App,
    chain: &TenantChain,
    facts: &CallFacts<'_>,
    admitted: Admitted,
) -> Result<Assessment, ApiError> {
    let Admitted {
        mut assessment,
        who,
        task,
    } = admitted;
    let Some(intent) = classify(chain, facts, task).await? else {
        return Ok(assessment);
    };
    assessment.intent = Some(intent);
    let Some(scored) = score_deviation(app, chain, facts, who, intent).await? else {
        return Ok(assessment);
    };
    act(app, facts, scored, &mut assessment).await;
    Ok(assessment)
}

/// The operator's check, before any plugin (a tenant's own auth plugin
/// cannot skip it): a tenant whose trial has ended or whose subscription is
/// cancelled gets 402, a suspended one 403, each saying what to do. A call
/// that goes ahead may carry a notice (`X-Warden-Subscription`).
fn subscription_in_force(app: &App, facts: &CallFacts<'_>) -> Result<Option<String>, ApiError> {
    let Some(subscription) = &facts.tenant.subscription else {
        return Ok(None);
    };
    let plan = app.config.plan(&subscription.plan);
    let name = plan.map_or(subscription.plan.as_str(), |p| p.name.as_str());
    let now = app.clock.now_ms();
    let Some(lapse) = subscription.lapse(name, now) else {
        return Ok(subscription.notice(name, now));
    };
    let code = match lapse.kind {
        LapseKind::TrialEnded => ErrorCode::TrialEnded,
        LapseKind::Cancelled => ErrorCode::SubscriptionInactive,
        LapseKind::Suspended => ErrorCode::SubscriptionSuspended,
    };
    Err(ApiError::new(code, lapse.message))
}

/// Stage 1, auth: the user and tenant may call at all.
async fn authorize(
    app: &App,
    chain: &TenantChain,
    facts: &CallFacts<'_>,
    who: &types::Identity,
    token: types::TokenClaims,
) -> Result<(), ApiError> {
    let request = auth::AuthRequest {
        identity: who.clone(),
        claims: token,
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
    let types::Verdict::Deny(reason) = chain.auth.plugin.auth(&request).await.map_err(failed)?
    else {
        return Ok(());
    };
    // Every call of a blocked user gets the code of the call that
    // blocked them, and the evidence.
    if facts.user.status == UserStatus::Blocked {
        let reason = format!("user '{}' is blocked", facts.user.id);
        return Err(blocked(app, facts, &reason).await);
    }
    Err(ApiError::new(ErrorCode::AccessDenied, reason))
}

/// Stage 2, task validation: the task exists, is active, and allows this call.
async fn validate_task(
    chain: &TenantChain,
    facts: &CallFacts<'_>,
    who: &types::Identity,
    token: types::TokenClaims,
) -> Result<types::Task, ApiError> {
    let request = task_validation::TaskRequest {
        identity: who.clone(),
        claims: token,
        task_id: facts.task_id.to_string(),
        endpoint: facts.endpoint.to_string(),
        model: facts.model.to_string(),
        task: facts.task.map(Into::into),
    };
    let plugin = &chain.task_validation.plugin;
    let verdict = plugin.validate_task(&request).await.map_err(failed)?;
    if let types::Verdict::Deny(reason) = verdict {
        return Err(ApiError::new(ErrorCode::TaskNotAllowed, reason));
    }
    Ok(request
        .task
        .expect("task validation allows only existing tasks"))
}

/// A pool the call counts in besides the user's own windows: one of the
/// user's groups, or the tenant plan's monthly allowance (borrowed from the
/// snapshot and the config: only its counter key is allocated).
struct SharedPool<'a> {
    limits: PoolLimits,
    owner: thresholds::Owner<'a>,
}

/// The user's groups (limited or not: their usage is shown either way)
/// and, when its plan has allowances, the tenant's plan, with their counter
/// keys. Nothing is allocated for a user in no group of a tenant without
/// allowances.
fn shared_pools<'a>(app: &'a App, facts: &CallFacts<'a>) -> (Vec<SharedPool<'a>>, Vec<String>) {
    let (mut pools, mut keys) = (Vec::new(), Vec::new());
    for group in facts
        .user
        .groups
        .iter()
        .filter_map(|id| facts.groups.get(id))
    {
        let owner = thresholds::Owner::Group {
            id: &group.id,
            name: &group.name,
        };
        pools.push(SharedPool {
            limits: group.limits,
            owner,
        });
        keys.push(group_pool(&group.id));
    }
    let plan = facts
        .tenant
        .subscription
        .as_ref()
        .and_then(|s| app.config.plan(&s.plan));
    if let Some(plan) = plan {
        let limits = PoolLimits {
            requests_per_month: plan.requests_per_month,
            tokens_per_month: plan.tokens_per_month,
            ..PoolLimits::default()
        };
        if !limits.is_unlimited() {
            let owner = thresholds::Owner::Plan {
                id: &plan.id,
                name: &plan.name,
            };
            pools.push(SharedPool { limits, owner });
            keys.push(PLAN_POOL.into());
        }
    }
    (pools, keys)
}

/// The refusal of a call over a shared pool's limit, if any.
fn over_shared_limit(
    pools: &[SharedPool<'_>],
    used: &[crate::domain::groups::PoolUsage],
) -> Option<ApiError> {
    pools.iter().zip(used).find_map(|(pool, used)| {
        let over = pool.limits.exceeded(used)?;
        let message = format!(
            "{} has used its {} (shared by all its members); it resets in {} s",
            pool.owner.label(),
            over.limit,
            over.retry_after_secs
        );
        Some(ApiError::rate_limited(message, over.retry_after_secs))
    })
}

/// Stage 3, quota: take the snapshot and reserve this call's estimate in one
/// step, so concurrent calls each see the others' reservations and the
/// limit cannot be overshot by more than what is in flight. The user's
/// limits are the quota plugin's to judge; the shared pools' (groups, the
/// plan) the host's, first. A refusal (or a failed stage) takes the call
/// back out of every window.
async fn reserve_quota(
    app: &App,
    chain: &TenantChain,
    facts: &CallFacts<'_>,
    who: &types::Identity,
    ledger: &mut Ledger,
) -> Result<(RateLimitInfo, Option<u64>), ApiError> {
    let limits = &facts.user.limits;
    let answer = facts.answer_budget();
    let (pools, keys) = shared_pools(app, facts);
    let grace = chain.policy.counters_outage_grace;
    let reserved = ledger
        .reserve(&facts.at, keys, facts.prompt_tokens, &answer, grace)
        .await
        .map_err(|unavailable| ApiError::counters_unavailable(&unavailable.0))?;
    let (before, after) = (reserved.before, reserved.after);
    if let Some(refusal) = over_shared_limit(&pools, &reserved.pools) {
        ledger.unreserve(&facts.at);
        return Err(refusal);
    }
    let output_cap = facts.caps_answer().then(|| ledger.answer_tokens());
    let request = quota::QuotaRequest {
        identity: who.clone(),
        limits: types::Limits {
            requests_per_minute: limits.requests_per_minute,
            requests_per_day: limits.requests_per_day,
            tokens_per_day: limits.tokens_per_day,
            tokens_per_month: limits.tokens_per_month,
        },
        usage: before.into(),
        estimated_tokens: ledger.reserved_tokens(),
    };
    let verdict = chain.quota.plugin.quota(&request).await;
    match verdict {
        Ok(quota::QuotaVerdict::Allow) => {
            announce_thresholds(app, facts, &pools, &reserved, ledger.reserved_tokens());
            Ok((RateLimitInfo::new(limits, &after), output_cap))
        }
        Ok(quota::QuotaVerdict::Deny(d)) => {
            ledger.unreserve(&facts.at);
            let mut error = ApiError::rate_limited(d.reason, d.retry_after_secs);
            error.rate_limit = Some(Box::new(RateLimitInfo::new(limits, &before)));
            Err(error)
        }
        Err(e) => {
            ledger.unreserve(&facts.at);
            Err(failed(e))
        }
    }
}

/// The limits this admitted call took past 80 % or 100 % (see thresholds.rs).
fn announce_thresholds(
    app: &App,
    facts: &CallFacts<'_>,
    pools: &[SharedPool<'_>],
    reserved: &crate::state::Reserved,
    tokens: u64,
) {
    let tenant = &facts.tenant.id;
    let user = thresholds::Owner::User { id: &facts.user.id };
    let limits = &facts.user.limits;
    thresholds::user(
        app,
        tenant,
        &user,
        limits,
        &reserved.before,
        &reserved.after,
    );
    for (pool, used) in pools.iter().zip(&reserved.pools) {
        thresholds::pool(app, tenant, &pool.owner, &pool.limits, used, tokens);
    }
}

/// Stage 4, intent: what the prompt is about, and how far from the task.
/// `None` when a fail-open stage failed: the call goes on unscored.
async fn classify(
    chain: &TenantChain,
    facts: &CallFacts<'_>,
    task: types::Task,
) -> Result<Option<Intent>, ApiError> {
    let request = intent::IntentRequest {
        prompt: facts.prompt.to_string(),
        task,
    };
    // The sentence vectors the stage reads, embedded off its clock.
    if let Some(embeddings) = chain.intent.plugin.embeddings() {
        let texts = Embeddings::intent_texts(&request.prompt, &request.task);
        embeddings.prepare(texts.into()).await;
    }
    let result = chain.intent.plugin.intent(&request).await;
    Ok(tolerate(&chain.intent, result)?.map(Intent::from))
}

/// The deviation stage's answer and what the host made of it.
struct ScoredCall {
    outcome: DeviationOutcome,
    score: f32,
}

/// Stage 5, deviation: the user's score after this call, and the action. An
/// off-task prompt sent again (a retry, the same question twice) was scored
/// once already: the stage sees it as on-task (the standing rules still
/// apply, nothing is added) and it is not remembered twice. The request
/// log keeps its real intent. `None` when a fail-open stage failed.
async fn score_deviation(
    app: &App,
    chain: &TenantChain,
    facts: &CallFacts<'_>,
    identity: types::Identity,
    intent: Intent,
) -> Result<Option<ScoredCall>, ApiError> {
    let (tenant_id, user_id) = (facts.tenant.id.as_str(), facts.user.id.as_str());
    // Only off-task prompts are remembered, so only they are hashed.
    let prompt_hash = (intent.drift != Drift::OnTask).then(|| OffTaskPrompt::hash(facts.prompt));
    let recall = app
        .stores
        .deviation
        .recall(tenant_id, user_id, &facts.at, facts.task_id, prompt_hash)
        .get()
        .await;
    let repeat = recall.repeat && !in_a_run_of_misuse(&recall.history);
    let scored_as = if repeat {
        Intent {
            drift: Drift::OnTask,
            ..intent
        }
    } else {
        intent
    };
    let request = deviation::DeviationRequest {
        identity,
        task_id: facts.task_id.to_string(),
        current: scored_as.into(),
        history: adapters::history(&recall.history),
        stats: recall.stats.into(),
        score: recall.score,
        score_updated_at_ms: recall.score_updated_at_ms,
    };
    let result = chain.deviation.plugin.deviation(&request).await;
    let Some(outcome) = tolerate(&chain.deviation, result)? else {
        return Ok(None);
    };
    let outcome = DeviationOutcome::from(outcome);
    let seen = Seen {
        intent,
        repeat,
        prompt_hash: prompt_hash.unwrap_or(0),
        score_before: recall.score,
        stats: recall.stats,
    };
    let score = remember(app, facts, &seen, &outcome).await;
    Ok(Some(ScoredCall { outcome, score }))
}

/// Calls read for a run of misuse.
const RECENT_CALLS: usize = 20;

/// More than one in ten of the user's last twenty calls were major
/// deviations: a repeated off-task prompt then counts again. Counting a
/// prompt once protects an honest user from one misread question asked
/// twice; it must not hand a misuser free repeats.
fn in_a_run_of_misuse(history: &[PastCall]) -> bool {
    let recent = &history[history.len().saturating_sub(RECENT_CALLS)..];
    let majors = recent.iter().filter(|c| c.drift == Drift::Major).count();
    majors * 10 > recent.len()
}

/// What the deviation phase saw of a call, for its memory and evidence.
struct Seen {
    intent: Intent,
    repeat: bool,
    prompt_hash: u64,
    score_before: f32,
    stats: UsageStats,
}

/// Keeps the new score, the call in the user's history (a repeat only in
/// the score), and writes the evidence of an automatic action. Returns the
/// new score.
async fn remember(
    app: &App,
    facts: &CallFacts<'_>,
    seen: &Seen,
    outcome: &DeviationOutcome,
) -> f32 {
    let (tenant_id, user_id) = (facts.tenant.id.as_str(), facts.user.id.as_str());
    let now = facts.at.now_ms;
    let intent = seen.intent;
    let acted = outcome.action != Action::None;
    // A repeat counts once: only its score moves.
    let kept = !seen.repeat;
    let history = kept.then(|| HistoryItem {
        at_ms: now,
        task_id: facts.task_id.to_string(),
        label: intent.label,
        drift: intent.drift,
    });
    let off_task = (kept && intent.drift != Drift::OnTask).then(|| OffTaskPrompt {
        at_ms: now,
        request_id: facts.request_id.to_string(),
        task_id: facts.task_id.to_string(),
        prompt: OffTaskPrompt::excerpt(facts.prompt),
        label: intent.label,
        drift: intent.drift,
        confidence: intent.confidence,
        score_delta: outcome.score_delta.max(0.0),
        prompt_hash: seen.prompt_hash,
    });
    let scored = Scored {
        at_ms: now,
        score_delta: outcome.score_delta,
        history,
        off_task,
        warning: (kept && acted).then(|| outcome.reason.clone()),
    };
    let memory = &app.stores.deviation;
    let (new_score, evidence) = memory
        .remember(tenant_id, user_id, &facts.at, scored, kept && acted)
        .get()
        .await;
    if let Some(prompts) = evidence {
        let scoring = crate::evidence::Scoring {
            request_id: facts.request_id,
            task_id: facts.task_id,
            intent,
            outcome,
            score_before: seen.score_before,
            score_after: new_score,
            stats: &seen.stats,
            prompts,
        };
        crate::evidence::record(app, tenant_id, user_id, scoring);
    }
    new_score
}

/// Applies the deviation stage's action: a block disables the user and
/// refuses this call (returned in the assessment, not as an error, so the
/// log keeps this call's intent and score beside the refusal); a flag marks
/// an active user; a warning rides on the answer.
async fn act(app: &App, facts: &CallFacts<'_>, scored: ScoredCall, assessment: &mut Assessment) {
    let (tenant_id, user_id) = (facts.tenant.id.as_str(), facts.user.id.as_str());
    let ScoredCall { outcome, score } = scored;
    assessment.deviation_delta = Some(outcome.score_delta);
    assessment.score = Some(score);
    assessment.action = Some(outcome.action);
    let status = match outcome.action {
        Action::Block => Some(UserStatus::Blocked),
        Action::Flag if facts.user.status == UserStatus::Active => Some(UserStatus::Flagged),
        _ => None,
    };
    if let Some(status) = status {
        if let Err(e) = app
            .stores
            .identity
            .set_user_status(tenant_id, user_id, status)
        {
            tracing::error!(error = %e, ?status, "could not store a user's new status");
        }
    }
    if outcome.action == Action::Block {
        tracing::warn!(tenant = tenant_id, user = user_id, score, reason = %outcome.reason, "user blocked");
        let reason = format!(
            "access disabled: {} (deviation score {score:.2})",
            outcome.reason
        );
        assessment.blocked = Some(blocked(app, facts, &reason).await);
        return;
    }
    if outcome.action != Action::None {
        assessment.warning = Some(outcome.reason);
    }
}
