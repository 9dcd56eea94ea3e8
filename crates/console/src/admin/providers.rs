//! Providers: the tenant's own LLM providers (the key shown by its last four
//! characters only) and routes, the server's providers they may also use,
//! and the forms to add, route and remove them.

use hyper::Response;
use maud::html;

use super::Page;
use crate::admin_api::providers;
use crate::domain::providers::ProviderKind;
use crate::http::Body;
use crate::layout::{csrf, flash};

pub fn list(page: &Page<'_>) -> Response<Body> {
    let caller = page.viewer.caller();
    let catalog = match providers::list(page.app, &caller, page.tenant) {
        Ok(catalog) => catalog,
        Err(e) => return page.not_found(&e.message),
    };
    let body = html! {
        h1 { "Providers" }
        p.sub { "Where this tenant's calls go. Your own providers come first; the server's are there for every tenant: "
            @if catalog.server_providers.is_empty() { "none." } @else { code { (catalog.server_providers.join(", ")) } "." } }
        (flash(&page.query))
        div.panel {
            table {
                thead { tr { th { "Name" } th { "Kind" } th { "Base URL" } th { "Models" } th { "Key" } th { "" } } }
                tbody {
                    @for p in &catalog.providers {
                        tr {
                            td { code { (p.spec.name) } }
                            td { (p.spec.kind().as_str()) }
                            td.muted { (p.spec.base_url.as_deref().unwrap_or("(default)")) }
                            td { (p.spec.models.join(", ")) }
                            td { @match &p.key { Some(hint) => code { (hint) }, None => span.muted { "none" } } }
                            td {
                                form.inline method="post" action=(page.url(&format!("providers/{}/delete", p.spec.name))) data-confirm={ "Remove provider " (p.spec.name) "?" } {
                                    (csrf(page.viewer))
                                    button.secondary type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                    @if catalog.providers.is_empty() { tr { td.muted colspan="6" { "No providers of this tenant's own yet." } } }
                }
            }
        }
        div.panel {
            h2 { "Add a provider" }
            form.stack method="post" action=(page.url("providers")) autocomplete="off" {
                (csrf(page.viewer))
                label for="provider-name" { "Name" }
                input #provider-name name="name" required pattern="[A-Za-z0-9._-]{1,64}" placeholder="our-openai";
                label for="provider-kind" { "Kind" }
                select #provider-kind name="kind" {
                    @for kind in ProviderKind::ALL { option value=(kind.as_str()) { (kind.as_str()) } }
                }
                label for="provider-base" { "Base URL (required for azure_openai and openai_compatible)" }
                input #provider-base name="base_url" placeholder="https://api.openai.com/v1";
                label for="provider-version" { "API version (Azure's api-version; Anthropic's anthropic-version)" }
                input #provider-version name="api_version" placeholder="2024-10-21";
                label for="provider-models" { "Models it serves, comma-separated (* patterns allowed)" }
                input #provider-models name="models" required placeholder="gpt-4o-mini, gpt-4o*";
                label for="provider-key" { "API key (sealed on the server; never shown again)" }
                input #provider-key name="api_key" type="password" placeholder="sk-…";
                button type="submit" { "Save provider" }
            }
        }
        div.panel {
            h2 { "Routes" }
            p.sub { "A model name and its targets in order: the first is tried first, the others are its fallbacks." }
            table {
                thead { tr { th { "Model" } th { "Targets" } th { "" } } }
                tbody {
                    @for r in &catalog.routes {
                        tr {
                            td { code { (r.model) } }
                            td { (r.targets.join(" → ")) }
                            td {
                                form.inline method="post" action=(page.url(&format!("routes/{}/delete", r.model))) {
                                    (csrf(page.viewer))
                                    button.secondary type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                    @if catalog.routes.is_empty() { tr { td.muted colspan="3" { "No routes of this tenant's own." } } }
                }
            }
            form.stack method="post" action=(page.url("routes")) {
                (csrf(page.viewer))
                label for="route-model" { "Model name callers use" }
                input #route-model name="model" required placeholder="fast";
                label for="route-targets" { "Targets, comma-separated: provider or provider/model" }
                input #route-targets name="targets" required placeholder="our-openai/gpt-4o-mini, anthropic/claude-3-5-haiku-latest";
                button type="submit" { "Save route" }
            }
        }
    };
    page.render("Providers", "providers", body)
}
