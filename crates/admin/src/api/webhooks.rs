//! A tenant's webhooks: its admins register URLs for events (users warned,
//! flagged, blocked, re-enabled; plugins rejected; policy and subscription
//! changes), get the signing secret once, remove them, and read every
//! delivery with its attempts (`crate::webhooks` sends them).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::tenants::Reason;
use super::{audit, internal, Access, Caller};
use crate::app::App;
use crate::domain::plans::Feature;
use crate::domain::webhooks::{Delivery, Webhook, EVENTS};
use crate::error::{ApiError, ErrorCode};
use crate::providers::reach::{check_url, Reach};

/// Webhooks one tenant may have.
const MAX_WEBHOOKS: usize = 20;

/// A webhook as listed: never its secret.
#[derive(Debug, Serialize)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    pub created_at: u64,
    /// Only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<&Webhook> for WebhookView {
    fn from(w: &Webhook) -> Self {
        Self {
            id: w.id.clone(),
            url: w.url.clone(),
            events: w.events.clone(),
            description: w.description.clone(),
            created_at: w.created_at,
            secret: None,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct WebhookList {
    pub data: Vec<WebhookView>,
    /// The events a webhook may ask for.
    pub events: Vec<&'static str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    pub url: String,
    /// Empty: every event.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub description: String,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidParameter, message)
}

/// `GET /admin/v1/tenants/{t}/webhooks`.
pub fn list(app: &App, caller: &Caller, tenant: &str) -> Result<WebhookList, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    let webhooks = app.db.webhooks(tenant).map_err(internal)?;
    Ok(WebhookList {
        data: webhooks.iter().map(Into::into).collect(),
        events: EVENTS.iter().map(|(event, _)| *event).collect(),
    })
}

/// `POST /admin/v1/tenants/{t}/webhooks {url, events?, description?}`.
pub fn create(
    app: &App,
    caller: &Caller,
    tenant: &str,
    new: NewWebhook,
) -> Result<WebhookView, ApiError> {
    caller.may(Access::Administer, tenant)?;
    super::subscription::require_feature(app, tenant, Feature::Webhooks)?;
    let url = reqwest::Url::parse(new.url.trim())
        .map_err(|e| invalid(format!("'{}' is not a URL: {e}", new.url)))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(invalid("a webhook URL is http or https"));
    }
    if app.providers.tenant_reach() == Reach::PublicOnly {
        check_url(&url).map_err(|e| invalid(e.replace("provider", "webhook")))?;
    }
    if let Some(unknown) = new
        .events
        .iter()
        .find(|e| !EVENTS.iter().any(|(known, _)| known == e))
    {
        let known: Vec<&str> = EVENTS.iter().map(|(event, _)| *event).collect();
        return Err(invalid(format!(
            "no event '{unknown}'; webhooks may ask for {}",
            known.join(", ")
        )));
    }
    let existing = app.db.webhooks(tenant).map_err(internal)?;
    if existing.len() >= MAX_WEBHOOKS {
        return Err(invalid(format!(
            "a tenant may have {MAX_WEBHOOKS} webhooks"
        )));
    }
    let webhook = Webhook {
        tenant_id: tenant.to_string(),
        id: format!("wh_{}", crate::token::random_id(8)),
        url: url.to_string(),
        events: new.events,
        description: new.description,
        secret: format!("whsec_{}", crate::token::random_id(24)),
        created_at: crate::clock::now_ms(),
    };
    app.db.put_webhook(&webhook).map_err(internal)?;
    let details = json!({ "url": webhook.url, "events": webhook.events });
    audit(
        app,
        caller,
        tenant,
        "webhook.create",
        &webhook.id,
        None,
        details,
    )?;
    Ok(WebhookView {
        secret: Some(webhook.secret.clone()),
        ..WebhookView::from(&webhook)
    })
}

/// `DELETE /admin/v1/tenants/{t}/webhooks/{id}`.
pub fn delete(
    app: &App,
    caller: &Caller,
    tenant: &str,
    id: &str,
    removal: Reason,
) -> Result<serde_json::Value, ApiError> {
    caller.may(Access::Administer, tenant)?;
    if !app.db.delete_webhook(tenant, id).map_err(internal)? {
        return Err(ApiError::not_found(format!(
            "no webhook '{id}' in tenant '{tenant}'"
        )));
    }
    audit(
        app,
        caller,
        tenant,
        "webhook.delete",
        id,
        removal.reason,
        json!({}),
    )?;
    Ok(json!({ "id": id, "deleted": true }))
}

/// `GET /admin/v1/tenants/{t}/webhooks/deliveries?limit=`: newest first.
pub fn deliveries(
    app: &App,
    caller: &Caller,
    tenant: &str,
    query: &std::collections::HashMap<String, String>,
) -> Result<Vec<Delivery>, ApiError> {
    caller.may(Access::ReadSetup, tenant)?;
    let limit = match query.get("limit") {
        Some(l) => l
            .parse::<usize>()
            .map_err(|_| invalid("limit is a number"))?,
        None => 50,
    };
    app.db.deliveries(tenant, limit.min(500)).map_err(internal)
}
