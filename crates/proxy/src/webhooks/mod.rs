//! Sends tenants' webhooks, off the request path.
//!
//! A thread of its own watches the audit log (sled's `watch_prefix`): an
//! event that is one of [`crate::domain::webhooks::EVENTS`] becomes one
//! stored delivery per webhook of its tenant that wants it. Deliveries are
//! POSTed signed (`Warden-Signature: t=…,v1=…`, see `signature.rs`) with
//! `Warden-Event` and `Warden-Delivery` headers; a receiver that does not
//! answer 2xx within `webhooks.timeout_secs` is tried again after
//! `retry_base_ms`, doubling, up to `max_attempts`, then the delivery is
//! `failed`. Every attempt is recorded on the delivery (status, error,
//! attempts), which the admin API and the console list; deliveries still
//! pending at a restart are resumed.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::domain::webhooks::{event_of, Delivery, DeliveryStatus, Webhook};
use crate::providers::reach::{PublicOnly, Reach};
use crate::state::model::Event;

/// Starts the sender; it stops when `stopped` turns true.
pub fn spawn(
    app: &Arc<App>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let app = app.clone();
    Ok(std::thread::Builder::new()
        .name("warden-webhooks".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(run(app, stopped)),
                Err(e) => tracing::error!(error = %e, "webhooks: no runtime, none are sent"),
            }
        })?)
}

async fn run(app: Arc<App>, mut stopped: tokio::sync::watch::Receiver<bool>) {
    let client = match client(&app) {
        Ok(client) => client,
        Err(e) => return tracing::error!(error = %e, "webhooks: no HTTP client, none are sent"),
    };
    let mut events = app.db.watch_events();
    let mut pending = app.db.pending_deliveries().unwrap_or_else(|e| {
        tracing::error!(error = %format!("{e:#}"), "webhooks: pending deliveries unreadable");
        Vec::new()
    });
    loop {
        let next = pending.iter().map(|d| d.next_attempt_at).min();
        let wait = next.map_or(Duration::from_secs(3600), |at| {
            Duration::from_millis(at.saturating_sub(crate::clock::now_ms()))
        });
        tokio::select! {
            event = &mut events => match event {
                Some(sled::Event::Insert { value, .. }) => {
                    match serde_json::from_slice::<Event>(&value) {
                        Ok(event) if app.made_here(&event) => pending.extend(enqueue(&app, &event)),
                        _ => {}
                    }
                }
                Some(sled::Event::Remove { .. }) => {}
                None => break,
            },
            _ = tokio::time::sleep(wait) => send_due(&app, &client, &mut pending).await,
            _ = stopped.changed() => break,
        }
    }
}

fn client(app: &App) -> reqwest::Result<reqwest::Client> {
    let config = &app.config.webhooks;
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(Duration::from_secs(config.timeout_secs));
    let builder = match app.providers.tenant_reach() {
        Reach::Anywhere => builder,
        Reach::PublicOnly => builder.dns_resolver(Arc::new(PublicOnly)),
    };
    builder.build()
}

/// The deliveries an audit event makes, stored before they are sent.
fn enqueue(app: &App, event: &Event) -> Vec<Delivery> {
    let Some(kind) = event_of(&event.action) else {
        return Vec::new();
    };
    let webhooks = app.db.webhooks(&event.tenant_id).unwrap_or_default();
    let now = crate::clock::now_ms();
    let mut made = Vec::new();
    for webhook in webhooks.iter().filter(|w| w.wants(kind)) {
        let id = format!("dlv_{}", crate::token::random_id(12));
        let body = serde_json::json!({
            "id": id,
            "type": kind,
            "tenant": event.tenant_id,
            "created_at": event.at_ms,
            "data": {
                "actor": event.actor,
                "action": event.action,
                "target": event.target,
                "reason": event.reason,
                "details": event.details,
            },
        });
        let delivery = Delivery {
            tenant_id: event.tenant_id.clone(),
            id,
            webhook_id: webhook.id.clone(),
            event: kind.to_string(),
            body: body.to_string(),
            created_at: now,
            status: DeliveryStatus::Pending,
            attempts: 0,
            last_status: None,
            last_error: None,
            next_attempt_at: now,
        };
        match app.db.put_delivery(&delivery) {
            Ok(()) => made.push(delivery),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "webhooks: cannot store a delivery")
            }
        }
    }
    made
}

/// Attempts every delivery that is due; the finished ones leave `pending`.
async fn send_due(app: &App, client: &reqwest::Client, pending: &mut Vec<Delivery>) {
    let now = crate::clock::now_ms();
    for delivery in pending.iter_mut().filter(|d| d.next_attempt_at <= now) {
        let webhook = app
            .db
            .webhooks(&delivery.tenant_id)
            .unwrap_or_default()
            .into_iter()
            .find(|w| w.id == delivery.webhook_id);
        attempt(app, client, webhook.as_ref(), delivery).await;
        if let Err(e) = app.db.put_delivery(delivery) {
            tracing::error!(error = %format!("{e:#}"), "webhooks: cannot record an attempt");
        }
    }
    pending.retain(|d| d.status == DeliveryStatus::Pending);
}

/// One POST of a delivery; records its outcome and when to try again.
async fn attempt(
    app: &App,
    client: &reqwest::Client,
    webhook: Option<&Webhook>,
    delivery: &mut Delivery,
) {
    let config = &app.config.webhooks;
    let Some(webhook) = webhook else {
        delivery.status = DeliveryStatus::Failed;
        delivery.last_error = Some("the webhook was removed".into());
        return;
    };
    delivery.attempts += 1;
    let signature = crate::signature::sign(
        &webhook.secret,
        crate::clock::now_secs(),
        delivery.body.as_bytes(),
    );
    let sent = client
        .post(&webhook.url)
        .header("content-type", "application/json")
        .header("user-agent", "warden-webhooks")
        .header("warden-signature", signature)
        .header("warden-event", &delivery.event)
        .header("warden-delivery", &delivery.id)
        .body(delivery.body.clone())
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => {
            delivery.status = DeliveryStatus::Delivered;
            delivery.last_status = Some(response.status().as_u16());
            delivery.last_error = None;
            return;
        }
        Ok(response) => {
            delivery.last_status = Some(response.status().as_u16());
            delivery.last_error = Some(format!("the receiver answered {}", response.status()));
        }
        Err(e) => {
            delivery.last_status = None;
            delivery.last_error = Some(format!("{e}"));
        }
    }
    if delivery.attempts >= config.max_attempts {
        delivery.status = DeliveryStatus::Failed;
    } else {
        let backoff = config.retry_base_ms << (delivery.attempts - 1).min(16);
        delivery.next_attempt_at = crate::clock::now_ms() + backoff;
    }
}
