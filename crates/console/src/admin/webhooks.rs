//! Webhooks: the URLs this tenant's events are sent to, the form to add
//! one (its signing secret shown once) or remove one, and the latest
//! deliveries with their status, attempts and the receiver's last answer.

use hyper::Response;
use maud::html;

use super::Page;
use crate::admin_api::tenants::Reason;
use crate::admin_api::webhooks::{self, NewWebhook};
use crate::domain::webhooks::DeliveryStatus;
use crate::error_page;
use crate::form::Form;
use crate::http::Body;
use crate::layout::{csrf, flash, tag};

pub fn list(page: &Page<'_>) -> Response<Body> {
    let caller = page.viewer.caller();
    let hooks = match webhooks::list(page.app, &caller, page.tenant) {
        Ok(hooks) => hooks,
        Err(e) => return page.not_found(&e.message),
    };
    let deliveries = webhooks::deliveries(page.app, &caller, page.tenant, &Default::default())
        .unwrap_or_default();
    let body = html! {
        h1 { "Webhooks" }
        p.sub { "URLs told about this tenant's events. Each delivery is signed (" code { "Warden-Signature: t=…,v1=…" } ", HMAC-SHA256 of " code { "t.body" } " under the webhook's secret) and tried again, with growing pauses, until the receiver answers 2xx." }
        (flash(&page.query))
        div.panel {
            table {
                thead { tr { th { "URL" } th { "Events" } th { "Description" } th { "" } } }
                tbody {
                    @for hook in &hooks.data {
                        tr {
                            td { code { (hook.url) } }
                            td { @if hook.events.is_empty() { "all" } @else { (hook.events.join(", ")) } }
                            td.muted { (hook.description) }
                            td {
                                form.inline method="post" action=(page.url(&format!("webhooks/{}/delete", hook.id))) data-confirm="Remove this webhook?" {
                                    (csrf(page.viewer))
                                    button.secondary type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                    @if hooks.data.is_empty() { tr { td.muted colspan="4" { "No webhooks yet." } } }
                }
            }
        }
        div.panel {
            h2 { "Add a webhook" }
            form.stack method="post" action=(page.url("webhooks")) {
                (csrf(page.viewer))
                label for="webhook-url" { "URL" }
                input #webhook-url name="url" required placeholder="https://hooks.example.com/warden";
                label { "Events (none ticked: all)" }
                @for event in &hooks.events {
                    label.check { input type="checkbox" name="events" value=(event); " " (event) }
                }
                label for="webhook-description" { "Description" }
                input #webhook-description name="description" placeholder="Slack relay";
                button type="submit" { "Add webhook" }
            }
        }
        div.panel {
            h2 { "Recent deliveries" }
            table #deliveries {
                thead { tr { th { "When" } th { "Event" } th { "Status" } th.num { "Attempts" } th { "Last answer" } } }
                tbody {
                    @for d in &deliveries {
                        tr {
                            td { (page.local_time(d.created_at)) }
                            td { code { (d.event) } }
                            td { (tag(Some(status_name(d.status)))) }
                            td.num { (d.attempts) }
                            td.muted {
                                @if let Some(status) = d.last_status { "HTTP " (status) " " }
                                (d.last_error.as_deref().unwrap_or(""))
                            }
                        }
                    }
                    @if deliveries.is_empty() { tr { td.muted colspan="5" { "No deliveries yet." } } }
                }
            }
        }
    };
    page.render("Webhooks", "webhooks", body)
}

fn status_name(status: DeliveryStatus) -> &'static str {
    match status {
        DeliveryStatus::Delivered => "delivered",
        DeliveryStatus::Pending => "pending",
        DeliveryStatus::Failed => "failed",
    }
}

/// Adds a webhook and shows its secret, once.
pub fn create(page: &Page<'_>, form: &Form) -> Response<Body> {
    let new = NewWebhook {
        url: form.get("url").unwrap_or("").to_string(),
        events: form.all("events"),
        description: form.get("description").unwrap_or("").to_string(),
    };
    let made = match webhooks::create(page.app, &page.viewer.caller(), page.tenant, new) {
        Ok(made) => made,
        Err(e) => return error_page(e.status(), &e.message, Some(page.viewer)),
    };
    let body = html! {
        h1 { "Webhook added" }
        p.flash.warn { "Copy its signing secret now: it is not shown again." }
        div.panel {
            dl.facts { dt { "URL" } dd { code { (made.url) } } dt { "Id" } dd { code { (made.id) } } }
            p {}
            textarea #webhook-secret .token readonly rows="2" { (made.secret.unwrap_or_default()) }
            div.row { button type="button" data-copy="webhook-secret" { "Copy" } a href=(page.url("webhooks")) { "Back to webhooks" } }
        }
    };
    page.render("Webhook added", "webhooks", body)
}

/// Removes a webhook.
pub fn delete(page: &Page<'_>, id: &str) -> Result<(), crate::error::ApiError> {
    let removal = Reason { reason: None };
    webhooks::delete(page.app, &page.viewer.caller(), page.tenant, id, removal).map(|_| ())
}
