//! `POST /v1/chat/completions`, in phases over one call:
//!
//! ```text
//! parse ─▶ authenticate ─▶ resolve ─▶ assess (the chain) ─▶ screen request ─▶ forward ─▶ respond
//!                                    └─────────── the call's Ledger: finished once, on every exit ──┘
//! ```
//!
//! Before `resolve` a failure is only an answer (no tenant to log it
//! under); from there on the call's [`Ledger`] holds its record and quota
//! reservation and is finished exactly once: with the provider's usage,
//! with the error the client got, or on drop when the client went away.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};

mod request;
mod respond;

use super::header_value;
use crate::app::App;
use crate::auth::authenticate;
use crate::chain::TenantChain;
use crate::domain::ChatMessage;
use crate::embedded_intent::LabelSlot;
use crate::error::{ApiError, ErrorCode};
use crate::guardrails::{self, Guard};
use crate::http::Body;
use crate::ledger::Ledger;
use crate::pipeline::{self, Assessment, CallFacts};
use crate::state::model::{RequestRecord, Task, Tenant, User};
use crate::state::Directory;
use crate::token::Claims;
use request::{read_body, rewrite_body, task_id_header, truncate, ChatCall, ChatRequest};

const ENDPOINT: &str = "chat.completions";
/// Longest prompt text handed to the intent stage.
const INTENT_PROMPT_CAP: usize = 8 << 10;

pub async fn handle(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    app.metrics.request();
    let request_id = app.next_request_id();
    let mut response = proxy(app, req, &request_id, started)
        .await
        .unwrap_or_else(ApiError::into_response);
    response
        .headers_mut()
        .insert("x-warden-request-id", header_value(&request_id));
    response
}

async fn proxy(
    app: &Arc<App>,
    req: Request<Incoming>,
    request_id: &str,
    started: Instant,
) -> Result<Response<Body>, ApiError> {
    let claims = authenticate(app, &req)?;
    let task_header = task_id_header(req.headers());
    let body = read_body(req, app.config.max_body_bytes).await?;
    let chat = ChatRequest::parse(&body)?;
    let call = ChatCall::read(&chat, task_header.as_deref())?;
    let directory = app.stores.identity.snapshot();
    let party = resolve(&directory, &claims, call.task_id)?;
    let record = open_record(app, request_id, &party, &call);
    let mut ledger = Ledger::open(app, record, started);
    let exchange = Exchange {
        app,
        claims: &claims,
        party: &party,
        call: &call,
        chat: &chat,
        body: &body,
        request_id,
    };
    match exchange.forward(&mut ledger).await {
        Ok(answer) => respond::respond(ledger, answer).await,
        Err(e) => {
            ledger.refuse(&e);
            Err(e)
        }
    }
}

/// Who is calling, for what: the token's tenant and user as they stand in
/// the directory now, and the task if it exists.
struct Party<'d> {
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
    let found = entry.and_then(|e| Some((e.tenant.as_ref()?, e.users.get(&claims.sub)?)));
    let Some((tenant, user)) = found else {
        return Err(ApiError::unauthorized("the token's user no longer exists"));
    };
    let task = entry.and_then(|e| e.tasks.get(task_id));
    Ok(Party { tenant, user, task })
}

fn open_record(
    app: &App,
    request_id: &str,
    party: &Party<'_>,
    call: &ChatCall<'_>,
) -> RequestRecord {
    RequestRecord {
        id: request_id.to_string(),
        at_ms: crate::clock::now_ms(),
        tenant_id: party.tenant.id.clone(),
        user_id: party.user.id.clone(),
        task_id: call.task_id.to_string(),
        endpoint: ENDPOINT.into(),
        model: call.model.to_string(),
        prompt: truncate(&call.prompt, app.config.prompt_log_cap_bytes).to_string(),
        stream: call.stream,
        ..RequestRecord::default()
    }
}

/// One call on its way to the provider: what the phases before `respond`
/// read.
struct Exchange<'a> {
    app: &'a Arc<App>,
    claims: &'a Claims,
    party: &'a Party<'a>,
    call: &'a ChatCall<'a>,
    chat: &'a ChatRequest<'a>,
    body: &'a Bytes,
    request_id: &'a str,
}

/// The provider's answer on its way back, and how to pass it on.
pub(super) struct Answer {
    upstream: reqwest::Response,
    assessment: Assessment,
    stream: bool,
    /// Warden asked for the stream's usage chunk: hide it from the client.
    hide_usage: bool,
    /// Where the answering model's own label lands (embedded classification).
    model_label: Option<LabelSlot>,
    chain: Option<Arc<TenantChain>>,
    guard: Option<Guard>,
}

impl Exchange<'_> {
    /// assess ─▶ screen request ─▶ forward.
    async fn forward(&self, ledger: &mut Ledger) -> Result<Answer, ApiError> {
        let chain = self.tenant_chain()?;
        let assessment = self.assess(chain.as_deref(), ledger).await?;
        note_assessment(ledger.record(), &assessment);
        if let Some(refusal) = assessment.blocked {
            return Err(refusal);
        }
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
        let mut body = if self.chat.metadata.is_some() || hide_usage || embedded_task.is_some() {
            rewrite_body(self.body, hide_usage, embedded_task)?
        } else {
            self.body.clone()
        };
        crate::failpoints::panic_point(&call.prompt);
        let guard = self.guard_context(chain.as_deref());
        if let (Some(chain), Some(context)) = (chain.as_deref(), &guard) {
            body = self.screen_request(chain, context, body, ledger).await?;
        }
        ledger.forwarded();
        let upstream = self.app.upstream.chat(body).await?;
        Ok(Answer {
            upstream,
            assessment,
            stream: call.stream,
            hide_usage,
            model_label: embedded_task.map(|_| LabelSlot::default()),
            chain,
            guard,
        })
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

    /// The chain's five stages; without a chain (a benchmark reference),
    /// only the token's own task list.
    async fn assess(
        &self,
        chain: Option<&TenantChain>,
        ledger: &mut Ledger,
    ) -> Result<Assessment, ApiError> {
        let (app, call, party) = (self.app, self.call, self.party);
        let Some(chain) = chain else {
            if self.claims.tasks.iter().any(|t| t == call.task_id) {
                return Ok(Assessment::default());
            }
            let message = format!("task '{}' is not one of this token's tasks", call.task_id);
            return Err(ApiError::new(ErrorCode::TaskNotAllowed, message));
        };
        let facts = CallFacts {
            request_id: self.request_id,
            claims: self.claims,
            tenant: party.tenant,
            user: party.user,
            task_id: call.task_id,
            task: party.task,
            endpoint: ENDPOINT,
            model: call.model,
            prompt: truncate(&call.prompt, INTENT_PROMPT_CAP),
            prompt_tokens: call.prompt_tokens,
            completion_budget: call.completion_budget,
            at: app.moment(&party.tenant.id),
        };
        let chain_started = Instant::now();
        let assessment = pipeline::run(app, chain, &facts, ledger).await;
        app.metrics.chain_run(chain_started.elapsed());
        if let Err(e) = &assessment {
            if e.code == ErrorCode::PolicyPluginFailed {
                app.metrics.plugin_failure();
                if let Some(chains) = &app.chains {
                    chains.note_failure(&party.tenant.id, ledger.record().at_ms, &e.message);
                }
            }
        }
        assessment
    }

    fn guard_context(&self, chain: Option<&TenantChain>) -> Option<Guard> {
        let guardrails = chain.map_or(&[][..], |c| c.guardrails.as_slice());
        let (claims, party, call) = (self.claims, self.party, self.call);
        (!guardrails.is_empty())
            .then(|| guardrails::context(claims, party.user, call.task_id, ENDPOINT, call.model))
    }

    /// The tenant's guardrails see (and may rewrite) what is forwarded.
    async fn screen_request(
        &self,
        chain: &TenantChain,
        context: &Guard,
        body: Bytes,
        ledger: &mut Ledger,
    ) -> Result<Bytes, ApiError> {
        let original = self
            .call
            .messages
            .iter()
            .map(|m| ChatMessage {
                role: m.role.clone(),
                content: m.text().into_owned(),
            })
            .collect();
        let Some(rewritten) =
            guardrails::screen_request(&chain.guardrails, context, original).await?
        else {
            return Ok(body);
        };
        let body = guardrails::apply_rewrite(&body, &rewritten)?;
        // The log keeps what was forwarded, not what was redacted away.
        if let Some(last) = rewritten.iter().rev().find(|m| m.role == "user") {
            let cap = self.app.config.prompt_log_cap_bytes;
            ledger.record().prompt = truncate(&last.content, cap).to_string();
        }
        Ok(body)
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
    if let Some(rate_limit) = &assessment.rate_limit {
        rate_limit.apply(headers);
    }
}

/// A 5xx from the provider is a 502 from Warden; other statuses pass.
fn client_status(status: StatusCode) -> StatusCode {
    if status.is_server_error() {
        StatusCode::BAD_GATEWAY
    } else {
        status
    }
}

/// The provider refused *our* key; the caller's token was fine.
fn provider_refused_key(status: StatusCode) -> bool {
    matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)
}
