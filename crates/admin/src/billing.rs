//! `POST /billing/v1/events`: the payment provider moves tenants'
//! subscriptions.
//!
//! Each event is signed: `Warden-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256 of "<t>.<body>">` under the secret in the environment
//! variable `billing.webhook_secret_env` names. A missing or wrong
//! signature is 401; one older than `billing.tolerance_secs` is 401 too (a
//! captured event replayed later); an event id already applied answers 200
//! `{"duplicate": true}` and changes nothing (providers retry until they
//! get a 2xx). The body:
//!
//! ```json
//! {"id": "evt_1", "type": "subscription.updated", "tenant": "acme",
//!  "status": "active", "plan": "pro", "period_ends_at": 1767225600000}
//! ```

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::domain::plans::{Subscription, SubscriptionStatus};
use crate::error::{ApiError, ErrorCode};
use crate::http::Body;

const MAX_EVENT_BYTES: usize = 64 << 10;
const SIGNATURE_HEADER: &str = "warden-signature";

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    tenant: String,
    status: String,
    plan: Option<String>,
    period_ends_at: Option<u64>,
}

pub async fn route(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    match handle(app, req).await {
        Ok(answer) => crate::http::json_response(StatusCode::OK, answer.to_string()),
        Err(e) => e.into_response(),
    }
}

async fn handle(app: &App, req: Request<Incoming>) -> Result<serde_json::Value, ApiError> {
    if req.uri().path().trim_end_matches('/') != "/billing/v1/events" {
        return Err(ApiError::not_found("no billing route here"));
    }
    if req.method() != Method::POST {
        return Err(ApiError::new(ErrorCode::MethodNotAllowed, "POST an event"));
    }
    let secret = app
        .config
        .billing
        .secret()
        .ok_or_else(|| ApiError::not_found("this server has no billing webhook configured"))?;
    let header = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let body = read(req).await?;
    let now_secs = app.clock.now_ms() / 1000;
    let tolerance = app.config.billing.tolerance_secs;
    crate::signature::verify(&secret, header.as_deref(), &body, now_secs, tolerance)
        .map_err(|refusal| unsigned(format!("the event is refused: {refusal}")))?;
    let event: Event = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("invalid event: {e}")))?;
    apply(app, &event, &body)
}

async fn read(req: Request<Incoming>) -> Result<Bytes, ApiError> {
    match Limited::new(req.into_body(), MAX_EVENT_BYTES)
        .collect()
        .await
    {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large(MAX_EVENT_BYTES))
        }
        Err(e) => Err(ApiError::new(ErrorCode::BodyReadFailed, e.to_string())),
    }
}

fn unsigned(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidSignature, message)
}

/// Applies an event once: the tenant's subscription takes its status (and
/// plan, and period end), audited with the actor `billing`.
fn apply(app: &App, event: &Event, body: &[u8]) -> Result<serde_json::Value, ApiError> {
    if event.kind != "subscription.updated" {
        // Other event types are acknowledged, so the provider stops sending them.
        return Ok(json!({ "ignored": event.kind }));
    }
    let status = SubscriptionStatus::parse(&event.status).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("unknown status '{}'", event.status),
        )
    })?;
    let mut tenant = app
        .db
        .directory()
        .tenant(&event.tenant)
        .and_then(|e| e.tenant.clone())
        .ok_or_else(|| ApiError::not_found(format!("no tenant '{}'", event.tenant)))?;
    let plan_id = event
        .plan
        .clone()
        .or_else(|| tenant.subscription.as_ref().map(|s| s.plan.clone()))
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidParameter, "the event names no plan"))?;
    let plan = app.config.plan(&plan_id).ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidParameter, format!("no plan '{plan_id}'"))
    })?;
    let fresh = app
        .db
        .record_billing_event(&event.id, body)
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    if !fresh {
        return Ok(json!({ "id": event.id, "duplicate": true }));
    }
    let now = app.clock.now_ms();
    let before = tenant.subscription.clone();
    let mut subscription = before
        .clone()
        .unwrap_or_else(|| Subscription::start(plan, now));
    subscription.plan = plan.id.clone();
    subscription.status = status;
    subscription.period_ends_at = event.period_ends_at.or(subscription.period_ends_at);
    subscription.updated_at = now;
    tenant.subscription = Some(subscription);
    app.db
        .put_tenant(&tenant)
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    let details = json!({ "event": event.id, "before": before, "after": tenant.subscription });
    let audit = app.event(
        &tenant.id,
        "billing".into(),
        "subscription.billing",
        &tenant.id,
        Some(format!("payment provider event {}", event.id)),
        details,
    );
    app.db
        .append_event(&audit)
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    Ok(json!({ "id": event.id, "applied": true, "status": status.as_str() }))
}
