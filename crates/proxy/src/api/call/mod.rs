//! The call path every API shape runs (see `api/shape.rs`), in phases over
//! one call:
//!
//! ```text
//! parse ─▶ authenticate ─▶ resolve ─▶ admit (stages 1–3) ─┬─▶ judge (stages 4–5) ──────────┬─▶ respond
//!                                                          └─▶ screen request ─▶ forward ─┘
//!                                    └─────────── the call's Ledger: finished once, on every exit ──┘
//! ```
//!
//! Before `resolve` a failure is only an answer (no tenant to log it
//! under); from there on the call's [`Ledger`] holds its record and quota
//! reservation and is finished exactly once: with the provider's usage,
//! with the error the client got, or on drop when the client went away.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

mod attempts;
mod body;
mod respond;

use super::header_value;
use super::shape::{ApiShape, Call, Forward};
use crate::app::App;
use crate::auth::authenticate;
use crate::chain::TenantChain;
use crate::embedded_intent::LabelSlot;
use crate::error::{ApiError, ErrorCode};
use crate::guardrails::{self, Guard};
use crate::http::Body;
use crate::ledger::Ledger;
use crate::pipeline::{self, Assessment, CallFacts};
use crate::state::model::{RequestRecord, Task, Tenant, User};
use crate::state::{Directory, TenantEntry};
use crate::token::Claims;
use body::truncate;
use body::{read_body, task_id_header};

/// Longest prompt text handed to the intent stage.
const INTENT_PROMPT_CAP: usize = 8 << 10;

/// One call of shape `S`, answered.
pub async fn handle<S: ApiShape>(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    app.metrics.request();
    let request_id = app.next_request_id();
    let mut response = proxy::<S>(app, req, &request_id, started)
        .await
        .unwrap_or_else(S::error_response);
    response
        .headers_mut()
        .insert("x-warden-request-id", header_value(&request_id));
    response
}

async fn proxy<S: ApiShape>(
    app: &Arc<App>,
    req: Request<Incoming>,
    request_id: &str,
    started: Instant,
) -> Result<Response<Body>, ApiError> {
    let claims = authenticate(app, &req)?;
    let admitted = app
        .admission
        .admit(&claims.tid)
        .inspect_err(|_| app.metrics.shed())?;
    let task_header = task_id_header(req.headers());
    let body = read_body(req, &app.config).await?;
    let request = S::parse(&body)?;
    let call = S::read(&request)?;
    let task_id = task_header.as_deref().or(call.task_id).ok_or_else(|| {
        ApiError::new(
            ErrorCode::MissingTaskId,
            "every call must name its task: set the X-Task-Id header or metadata.task_id in the body",
        )
    })?;
    let directory = app.stores.identity.snapshot();
    let party = resolve(&directory, &claims, task_id)?;
    let record = open_record(app, S::ENDPOINT, request_id, &party, &call, task_id);
    let mut ledger = Ledger::open(app, record, started, admitted);
    let exchange = Exchange::<S> {
        app,
        claims: &claims,
        party: &party,
        call: &call,
        task_id,
        request: &request,
        body: &body,
        request_id,
        shape: PhantomData,
    };
    match exchange.forward(&mut ledger).await {
        Ok(answer) => respond::respond::<S>(ledger, answer).await,
        Err(e) => {
            ledger.refuse(&e);
            Err(e)
        }
    }
}

/// Who is calling, for what: the token's tenant and user as they stand in
/// the directory now, and the task if it exists.
struct Party<'d> {
    /// Everything the tenant has (its providers and routes among it).
    entry: &'d TenantEntry,
    tenant: &'d Tenant,
    user: &'d User,
    task: Option<&'d Task>,
}

fn resolve<'d>(
    directory: &'d Directory,
    claims: &Claims,
    task_id: &str,
) -> Result<Party<'d>, ApiError> {
    let entry = directory.tenant(&claims.tid);
    let found = entry.and_then(|e| Some((e, e.tenant.as_ref()?, e.users.get(&claims.sub)?)));
    let Some((entry, tenant, user)) = found else {
        return Err(ApiError::unauthorized("the token's user no longer exists"));
    };
    let task = entry.tasks.get(task_id);
    Ok(Party {
        entry,
        tenant,
        user,
        task,
    })
}

fn open_record(
    app: &App,
    endpoint: &str,
    request_id: &str,
    party: &Party<'_>,
    call: &Call<'_>,
    task_id: &str,
) -> RequestRecord {
    RequestRecord {
        id: request_id.to_string(),
        at_ms: crate::clock::now_ms(),
        tenant_id: party.tenant.id.clone(),
        user_id: party.user.id.clone(),
        task_id: task_id.to_string(),
        endpoint: endpoint.into(),
        model: call.model.to_string(),
        prompt: truncate(&call.prompt, app.config.prompt_log_cap_bytes).to_string(),
        stream: call.stream,
        ..RequestRecord::default()
    }
}

/// One call on its way to the provider: what the phases before `respond`
/// read.
struct Exchange<'a, 'b, S: ApiShape> {
    app: &'a Arc<App>,
    claims: &'a Claims,
    party: &'a Party<'a>,
    call: &'a Call<'a>,
    task_id: &'a str,
    request: &'a S::Request<'b>,
    body: &'a Bytes,
    request_id: &'a str,
    shape: PhantomData<S>,
}

/// The provider's answer on its way back, and how to pass it on.
pub(super) struct Answer {
    upstream: reqwest::Response,
    /// The provider speaks the other dialect: its answer is translated.
    translation: Option<crate::translate::Translation>,
    assessment: Assessment,
    stream: bool,
    /// Warden asked for the stream's usage chunk: hide it from the client.
    hide_usage: bool,
    /// Where the answering model's own label lands (embedded classification).
    model_label: Option<LabelSlot>,
    chain: Option<Arc<TenantChain>>,
    guard: Option<Guard>,
}

impl<S: ApiShape> Exchange<'_, '_, S> {
    /// route ─▶ admit (stages 1–3) ─▶ judge (stages 4–5) beside
    /// screen request ─▶ send; the answer waits for the verdict.
    async fn forward(&self, ledger: &mut Ledger) -> Result<Answer, ApiError> {
        let targets = self.route()?;
        let chain = self.tenant_chain()?;
        let facts = self.facts();
        let started = Instant::now();
        let admitted = match chain.as_deref() {
            Some(chain) => Some(self.admit(chain, &facts, ledger).await?),
            None => {
                self.token_names_task()?;
                None
            }
        };
        let admit_took = started.elapsed();
        let call = self.call;
        // A streamed answer carries token counts only when asked for: ask
        // for them, and hide that extra chunk from a client that did not.
        let hide_usage = call.stream && !call.include_usage;
        // Embedded classification: the answering model labels the prompt too.
        let embedded_task = self
            .party
            .task
            .filter(|_| chain.as_deref().is_some_and(|c| c.embedded_intent));
        // The body goes out untouched unless it carried our metadata.
        let forward = Forward {
            ask_usage: hide_usage,
            embedded_task,
            output_cap: admitted.as_ref().and_then(|a| a.assessment.output_cap),
        };
        let rewritten = S::forward_body(self.body, self.request, forward)?;
        let body = rewritten.unwrap_or_else(|| self.body.clone());
        crate::failpoints::panic_point(&call.prompt);
        let guard = self.guard_context(chain.as_deref());
        let at_ms = ledger.record().at_ms;
        let sending = async {
            let mut body = body;
            if let (Some(chain), Some(context)) = (chain.as_deref(), &guard) {
                body = self.screen_request(chain, context, body, ledger).await?;
            }
            ledger.forwarded();
            attempts::send::<S>(self.app, &targets, &body, call, ledger).await
        };
        let (judged, sent) = match (chain.as_deref(), admitted) {
            (Some(chain), Some(admitted)) => {
                let judging = async {
                    let started = Instant::now();
                    let judged = pipeline::judge(self.app, chain, &facts, admitted).await;
                    self.app.metrics.chain_run(admit_took + started.elapsed());
                    self.noted(judged, at_ms)
                };
                beside(judging, sending).await
            }
            _ => (Ok(Assessment::default()), Some(sending.await)),
        };
        let assessment = judged?;
        note_assessment(ledger.record(), &assessment);
        if let Some(refusal) = assessment.blocked {
            ledger.withhold();
            return Err(refusal);
        }
        let sent = sent.expect("a call that was not refused was sent")?;
        Ok(Answer {
            upstream: sent.response,
            translation: sent.translation,
            assessment,
            stream: call.stream,
            hide_usage,
            model_label: embedded_task.map(|_| LabelSlot::default()),
            chain,
            guard,
        })
    }

    /// Where the call may go: its model's route, narrowed to the providers
    /// its task allows.
    fn route(&self) -> Result<Vec<crate::providers::Target>, ApiError> {
        let mut targets = self
            .app
            .providers
            .route(self.party.entry, self.call.model)?;
        let allowed = self.party.task.map_or(&[][..], |t| t.providers.as_slice());
        if !allowed.is_empty() {
            targets.retain(|t| allowed.contains(&t.provider.name));
            if targets.is_empty() {
                let message = format!(
                    "task '{}' does not allow the providers of model '{}' (allowed: {})",
                    self.task_id,
                    self.call.model,
                    allowed.join(", ")
                );
                return Err(ApiError::new(ErrorCode::TaskNotAllowed, message));
            }
        }
        Ok(targets)
    }

    fn tenant_chain(&self) -> Result<Option<Arc<TenantChain>>, ApiError> {
        let Some(chains) = &self.app.chains else {
            return Ok(None);
        };
        let chain = chains.for_tenant(&self.party.tenant.id).map_err(|e| {
            ApiError::plugin_failed(format!("the tenant's policy chain is unavailable: {e:#}"))
        })?;
        Ok(Some(chain))
    }

    /// Without a chain (a benchmark reference) only the token's own task
    /// list is checked.
    fn token_names_task(&self) -> Result<(), ApiError> {
        if self.claims.tasks.iter().any(|t| t == self.task_id) {
            return Ok(());
        }
        let message = format!("task '{}' is not one of this token's tasks", self.task_id);
        Err(ApiError::new(ErrorCode::TaskNotAllowed, message))
    }

    fn facts(&self) -> CallFacts<'_> {
        let (app, call, party) = (self.app, self.call, self.party);
        CallFacts {
            request_id: self.request_id,
            claims: self.claims,
            tenant: party.tenant,
            user: party.user,
            groups: &party.entry.groups,
            task_id: self.task_id,
            task: party.task,
            endpoint: S::ENDPOINT,
            model: call.model,
            prompt: truncate(&call.prompt, INTENT_PROMPT_CAP),
            prompt_tokens: call.prompt_tokens,
            completion_cap: call.completion_cap,
            max_output_tokens: app.config.upstream.max_output_tokens,
            at: app.moment(&party.tenant.id),
        }
    }

    /// The chain's stages 1–3.
    async fn admit(
        &self,
        chain: &TenantChain,
        facts: &CallFacts<'_>,
        ledger: &mut Ledger,
    ) -> Result<pipeline::Admitted, ApiError> {
        let at_ms = ledger.record().at_ms;
        let admitted = pipeline::admit(self.app, chain, facts, ledger).await;
        self.noted(admitted, at_ms)
    }

    /// A plugin's failure, counted and kept for the tenant's admins.
    fn noted<T>(&self, result: Result<T, ApiError>, at_ms: u64) -> Result<T, ApiError> {
        let app = self.app;
        if let Err(e) = &result {
            if e.code == ErrorCode::PolicyPluginFailed {
                app.metrics.plugin_failure();
                if let Some(chains) = &app.chains {
                    chains.note_failure(&self.party.tenant.id, at_ms, &e.message);
                }
            }
        }
        result
    }

    fn guard_context(&self, chain: Option<&TenantChain>) -> Option<Guard> {
        let guardrails = chain.map_or(&[][..], |c| c.guardrails.as_slice());
        let (claims, user, model) = (self.claims, self.party.user, self.call.model);
        (!guardrails.is_empty())
            .then(|| guardrails::context(claims, user, self.task_id, S::ENDPOINT, model))
    }

    /// The tenant's guardrails see (and may rewrite) what is forwarded.
    async fn screen_request(
        &self,
        chain: &TenantChain,
        context: &Guard,
        body: Bytes,
        ledger: &mut Ledger,
    ) -> Result<Bytes, ApiError> {
        let original = S::messages(self.request);
        let screened = guardrails::screen_request(&chain.guardrails, context, original).await?;
        let Some(rewritten) = screened else {
            return Ok(body);
        };
        let body = S::apply_rewrite(&body, &rewritten)?;
        // The log keeps what was forwarded, not what was redacted away.
        if let Some(last) = rewritten.iter().rev().find(|m| m.role == "user") {
            let cap = self.app.config.prompt_log_cap_bytes;
            ledger.record().prompt = truncate(&last.content, cap).to_string();
        }
        Ok(body)
    }
}

/// Stages 4–5 (`judging`) beside the provider call (`sending`): the
/// answer waits for their verdict, and a verdict that refuses the call
/// drops it, which cancels the provider's work. Returns the verdict and,
/// unless it refused, the provider's answer.
async fn beside(
    judging: impl Future<Output = Result<Assessment, ApiError>>,
    sending: impl Future<Output = Result<attempts::Sent, ApiError>>,
) -> (
    Result<Assessment, ApiError>,
    Option<Result<attempts::Sent, ApiError>>,
) {
    let (mut judging, mut sending) = (pin!(judging), pin!(sending));
    tokio::select! {
        judged = &mut judging => {
            let goes_ahead = matches!(&judged, Ok(a) if a.blocked.is_none());
            let sent = if goes_ahead { Some(sending.await) } else { None };
            (judged, sent)
        }
        sent = &mut sending => (judging.await, Some(sent)),
    }
}

/// The chain's findings, into the call's record.
fn note_assessment(record: &mut RequestRecord, assessment: &Assessment) {
    if let Some(intent) = &assessment.intent {
        record.intent = Some(intent.label);
        record.confidence = Some(intent.confidence);
        record.drift = Some(intent.drift);
    }
    record.deviation_delta = assessment.deviation_delta;
    record.deviation_score = assessment.score;
    record.action = assessment.action;
}

/// Warden's headers on an answer: the intent, the deviation score, a
/// warning, and the rate-limit windows.
fn annotate(
    response: &mut Response<Body>,
    assessment: &Assessment,
    stream: bool,
    content_type: Option<HeaderValue>,
) {
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        content_type.unwrap_or_else(|| HeaderValue::from_static("application/json")),
    );
    if stream {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    if let Some(intent) = &assessment.intent {
        let label = HeaderValue::from_static(intent.label.as_str());
        headers.insert("x-warden-intent", label);
    }
    if let Some(score) = assessment.score {
        let score = header_value(&format!("{score:.2}"));
        headers.insert("x-warden-deviation-score", score);
    }
    if let Some(warning) = &assessment.warning {
        headers.insert("x-warden-warning", header_value(warning));
    }
    if let Some(notice) = &assessment.subscription_notice {
        headers.insert("x-warden-subscription", header_value(notice));
    }
    if let Some(rate_limit) = &assessment.rate_limit {
        rate_limit.apply(headers);
    }
}

/// The provider refused *our* key; the caller's token was fine.
fn provider_refused_key(status: StatusCode) -> bool {
    matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
}
