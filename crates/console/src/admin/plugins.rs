//! Plugins: what runs at each stage for this tenant and where it comes
//! from, the tenant's own uploads with their versions, recent failures,
//! and rollback.

use hyper::Response;
use maud::html;

use super::Page;
use crate::http::Body;
use crate::layout::{csrf, flash, int, tag};
use crate::plugin_store::PluginStore;
use crate::runtime::Stage;

pub fn list(page: &Page<'_>) -> Response<Body> {
    let Some(chains) = page.app.chains.as_ref() else {
        let body = html! { h1 { "Plugins" } div.panel { p { "This server runs without the plugin chain." } } };
        return page.render("Plugins", "plugins", body);
    };
    let slots = chains.describe(page.tenant);
    let store = PluginStore::new(chains.plugin_dir(), page.tenant);
    let own = store.list();
    let failures = chains.failures(page.tenant);
    let available = chains.available(page.tenant);
    let body = html! {
        h1 { "Plugins" }
        p.sub { "The chain every request of this tenant runs, in order. An upload is checked, compiled and self-tested in the sandbox before it goes live; a failing one is refused and the running version stays." }
        (flash(&page.query))
        div.panel {
            h2 { "Chain" }
            @match &slots {
                Err(e) => p.flash.bad { "The tenant's policy does not load: " (format!("{e:#}")) },
                Ok(slots) => table {
                    thead { tr { th { "Stage" } th { "Plugin" } th { "Source" } th { "Live version" } th { "Status" } th { "On failure" } } }
                    tbody {
                        @for slot in slots {
                            @let live = own.iter().find(|p| p.name == slot.plugin).and_then(|p| p.live);
                            tr {
                                td { (slot.stage.as_str()) }
                                td { code { (slot.plugin) } }
                                td { (if slot.own { "this tenant's" } else { "shared" }) }
                                td { (live.map(|v| format!("v{v}")).unwrap_or_else(|| "–".into())) }
                                td { (tag(Some(if slot.loaded { "ok" } else { "missing" }))) }
                                td { (if slot.fail_open { "request continues" } else { "request refused" }) }
                            }
                        }
                    }
                },
            }
        }
        div.panel {
            h2 { "Recent failures" }
            @if failures.is_empty() { p.muted { "No plugin failure since the server started." } }
            ul.evidence {
                @for f in &failures { li { span.muted { (page.local_time(f.at_ms)) } " " (f.message) } }
            }
        }
        div.panel {
            h2 { "Upload a plugin" }
            form.stack method="post" action=(page.url("plugins")) enctype="multipart/form-data" {
                (csrf(page.viewer))
                label for="plugin-name" { "Name (as the tenant's policy names it)" }
                input #plugin-name name="name" required pattern="[A-Za-z0-9_-]{1,64}" placeholder="pii-redactor";
                label for="plugin-file" { "Component (.wasm)" }
                input #plugin-file type="file" name="file" accept=".wasm" required;
                button type="submit" { "Upload" }
            }
        }
        div.panel {
            h2 { "This tenant's uploads" }
            @if own.is_empty() { p.muted { "None: every stage runs a shared plugin." } }
            @for plugin in &own {
                @let in_use = chains.policy_uses(page.tenant, &plugin.name);
                @let guardrail = available.iter().any(|(n, s, own)| *own && *n == plugin.name && *s == Stage::Guardrail);
                div.spread {
                    h2 { code { (plugin.name) } " " (tag(Some(if plugin.live.is_some() { "live" } else { "missing" }))) " " (tag(Some(if in_use { "in use" } else { "not in use" }))) }
                    @if guardrail && !in_use {
                        form.inline method="post" action=(page.url("policy/guardrails")) {
                            (csrf(page.viewer))
                            input type="hidden" name="plugin" value=(plugin.name);
                            button type="submit" { "Add to my guardrails" }
                        }
                    }
                    @if plugin.versions.len() > 1 && plugin.live.is_some_and(|l| plugin.versions.first().is_some_and(|f| f.version < l)) {
                        form.inline method="post" action=(page.url(&format!("plugins/{}/rollback", plugin.name))) data-confirm="Put the previous version live again?" {
                            (csrf(page.viewer))
                            input name="reason" required placeholder="Reason" size="16";
                            button.secondary type="submit" { "Roll back" }
                        }
                    }
                }
                table {
                    thead { tr { th { "Version" } th.num { "Size" } th { "Uploaded" } th { "" } } }
                    tbody {
                        @for v in plugin.versions.iter().rev() {
                            tr {
                                td { "v" (v.version) }
                                td.num { (int(v.bytes / 1024)) " KiB" }
                                td { (page.local_time(v.uploaded_at * 1000)) }
                                td { @if plugin.live == Some(v.version) { (tag(Some("live"))) } }
                            }
                        }
                    }
                }
            }
        }
    };
    page.render("Plugins", "plugins", body)
}
