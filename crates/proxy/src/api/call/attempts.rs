//! The forward phase's tries: a call's route is its targets in order; each
//! is tried, and tried again on a failure worth retrying (connection
//! error, timeout, 429, 5xx) with backoff, a short `Retry-After` honoured,
//! then the next target, all within `routing.deadline_secs`. The first
//! answer that is not such a failure is the call's; when every try failed,
//! the last failure is. Nothing is retried once a provider answered: a
//! stream that breaks after its first byte went out is not tried again.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::RETRY_AFTER;
use hyper::StatusCode;
use tokio::time::Instant;

use crate::api::shape::{ApiShape, Call};
use crate::app::App;
use crate::config::RoutingConfig;
use crate::domain::model::Attempt;
use crate::error::{ApiError, ErrorCode};
use crate::ledger::Ledger;
use crate::providers::Target;
use crate::translate::Translation;

/// The answer a call got, from which target, and how it comes back.
pub(super) struct Sent {
    pub response: reqwest::Response,
    pub translation: Option<Translation>,
}

/// A provider's answer that another try might better.
fn worth_retrying(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn unreachable(error: &ApiError) -> bool {
    matches!(
        error.code,
        ErrorCode::UpstreamUnavailable | ErrorCode::UpstreamTimeout
    )
}

/// The pause before retrying the same target: its `Retry-After` when short
/// enough, else exponential backoff with jitter.
fn pause(policy: &RoutingConfig, retry: u32, retry_after: Option<u64>) -> Option<Duration> {
    match retry_after {
        Some(secs) if secs > policy.max_retry_after_secs => None, // move on
        Some(secs) => Some(Duration::from_secs(secs)),
        None => {
            let base = policy.backoff_ms.saturating_mul(1 << retry.min(10));
            let jitter = rand::random_range(0..=base / 2);
            Some(Duration::from_millis(base + jitter))
        }
    }
}

fn retry_after(response: &reqwest::Response) -> Option<u64> {
    let value = response.headers().get(RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse().ok()
}

pub(super) async fn send<S: ApiShape>(
    app: &App,
    targets: &[Target],
    body: &Bytes,
    call: &Call<'_>,
    ledger: &mut Ledger,
) -> Result<Sent, ApiError> {
    let policy = &app.config.routing;
    let deadline = Instant::now() + Duration::from_secs(policy.deadline_secs);
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut last: Option<Result<Sent, ApiError>> = None;
    'targets: for (t, target) in targets.iter().enumerate() {
        let prepared = match S::prepare(body, call, target) {
            Ok(prepared) => prepared,
            Err(e) => {
                attempts.push(attempt(target, 0, Some(&e), Instant::now()));
                last = Some(Err(e));
                continue;
            }
        };
        for retry in 0..=policy.retries {
            let started = Instant::now();
            let send = target
                .provider
                .send(prepared.path, &target.model, prepared.body.clone());
            let outcome = match tokio::time::timeout_at(deadline, send).await {
                Ok(outcome) => outcome,
                Err(_) => Err(ApiError::gateway_timeout(format!(
                    "no provider answered within routing.deadline_secs ({}s)",
                    policy.deadline_secs
                ))),
            };
            let (failed, wait) = match &outcome {
                Ok(response) if !worth_retrying(response.status()) => {
                    attempts.push(attempt(target, response.status().as_u16(), None, started));
                    (false, None)
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    attempts.push(attempt(target, status, None, started));
                    (true, pause(policy, retry, retry_after(response)))
                }
                Err(e) if unreachable(e) => {
                    attempts.push(attempt(target, 0, Some(e), started));
                    (true, pause(policy, retry, None))
                }
                Err(e) => {
                    attempts.push(attempt(target, 0, Some(e), started));
                    (false, None)
                }
            };
            last = Some(outcome.map(|response| Sent {
                response,
                translation: prepared.translation.clone(),
            }));
            let more_targets = t + 1 < targets.len();
            if !failed || Instant::now() >= deadline {
                break 'targets;
            }
            match wait {
                Some(wait) if retry < policy.retries && Instant::now() + wait < deadline => {
                    tokio::time::sleep(wait).await;
                }
                _ if more_targets => continue 'targets,
                _ => break 'targets,
            }
        }
    }
    let record = ledger.record();
    if let Some(final_try) = attempts.last() {
        record.provider.clone_from(&final_try.provider);
        record.upstream_model.clone_from(&final_try.model);
    }
    if attempts.len() > 1 {
        record.attempts = attempts;
    }
    last.unwrap_or_else(|| {
        Err(ApiError::bad_gateway(
            "the route of this model has no targets",
        ))
    })
}

fn attempt(target: &Target, status: u16, error: Option<&ApiError>, started: Instant) -> Attempt {
    Attempt {
        provider: target.provider.name.clone(),
        model: target.model.clone(),
        status,
        error: error.map(|e| e.message.clone()),
        ms: started.elapsed().as_millis() as u64,
    }
}
