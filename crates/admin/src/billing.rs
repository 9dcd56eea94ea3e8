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
use hmac::{Hmac, Mac};
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
    verify(
        &secret,
        header.as_deref(),
        &body,
        now_secs,
        app.config.billing.tolerance_secs,
    )?;
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

/// Checks `t=…,v1=…` against the body, in constant time, and the
/// timestamp against the tolerance.
fn verify(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now_secs: u64,
    tolerance_secs: u64,
) -> Result<(), ApiError> {
    let header = header.ok_or_else(|| unsigned("the event has no Warden-Signature header"))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<u64>().ok(),
            Some(("v1", v)) => signatures.push(v),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or_else(|| unsigned("the signature has no timestamp t="))?;
    if now_secs.abs_diff(timestamp) > tolerance_secs {
        return Err(unsigned(format!(
            "the signature's timestamp is {} s from now (tolerance {tolerance_secs} s): a replayed or delayed event",
            now_secs.abs_diff(timestamp)
        )));
    }
    let valid = signatures.iter().any(|hex| {
        let Some(given) = from_hex(hex) else {
            return false;
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
            .expect("HMAC takes a key of any length");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(&given).is_ok()
    });
    if !valid {
        return Err(unsigned("the signature does not match the event"));
    }
    Ok(())
}

fn from_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, t: u64, body: &[u8]) -> String {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("t={t},v1={hex}")
    }

    #[test]
    fn only_a_fresh_signature_of_this_body_under_this_secret_passes() {
        let body = br#"{"id":"evt_1"}"#;
        let header = sign("s3cret", 1000, body);
        assert!(verify("s3cret", Some(&header), body, 1000, 300).is_ok());
        assert!(verify("s3cret", Some(&header), body, 1299, 300).is_ok());
        let refused = |h: Option<&str>, b: &[u8], now, secret| {
            verify(secret, h, b, now, 300).unwrap_err().message
        };
        assert!(refused(None, body, 1000, "s3cret").contains("no Warden-Signature"));
        assert!(refused(Some(&header), body, 1301, "s3cret").contains("replayed"));
        assert!(refused(Some(&header), b"{}", 1000, "s3cret").contains("does not match"));
        assert!(refused(Some(&header), body, 1000, "other").contains("does not match"));
        assert!(refused(Some("t=1000,v1=zz"), body, 1000, "s3cret").contains("does not match"));
    }
}
