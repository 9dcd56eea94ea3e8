//! Policy: what the tenant's chain runs, set by its admins here, one form
//! per section (sandbox limits, each stage, the guardrails in order, how
//! answers are screened), or as the whole policy file; with the version
//! history, rollback and a way back to the server's policy. Every form goes
//! through the admin API's `PUT …/policy`: checked, built, then live on the
//! next request, or refused with the running policy kept.

use hyper::Response;
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use super::Page;
use crate::admin_api::policy::{self, PolicyInput, PolicyView};
use crate::error::ApiError;
use crate::form::Form;
use crate::http::Body;
use crate::layout::{csrf, flash, tag};
use crate::runtime::Stage;

const STAGES: [Stage; 5] = [
    Stage::Auth,
    Stage::TaskValidation,
    Stage::Quota,
    Stage::Intent,
    Stage::Deviation,
];

pub fn page(page: &Page<'_>) -> Response<Body> {
    let caller = page.viewer.caller();
    let view = match policy::show(page.app, &caller, page.tenant) {
        Ok(view) => view,
        Err(e) => return page.not_found(&e.message),
    };
    let versions = policy::versions(page.app, &caller, page.tenant).unwrap_or_default();
    let available = page
        .app
        .chains
        .as_ref()
        .map(|c| c.available(page.tenant))
        .unwrap_or_default();
    let of_stage = |stage: Stage| -> Vec<&str> {
        available
            .iter()
            .filter(|(_, s, _)| *s == stage)
            .map(|(n, _, _)| n.as_str())
            .collect()
    };
    let p = &view.policy;
    let source = match view.source {
        "api" => format!("set here (version {})", view.version.unwrap_or_default()),
        "file" => "the server's file for this tenant".into(),
        _ => "the server's default".into(),
    };
    let body = html! {
        h1 { "Policy" }
        p.sub { "What every request of this tenant runs. Current policy: " strong { (source) } ". A change is checked and built before it goes live on the next request; one that does not build is refused and the running policy stays." }
        (flash(&page.query))
        div.panel {
            h2 { "Guardrails" }
            p.sub { "Run in this order after the five stages, on prompts and answers." }
            table {
                thead { tr { th { "#" } th { "Plugin" } th { "Config" } th { "" } } }
                tbody {
                    @for (i, g) in array(p, "guardrails").iter().enumerate() {
                        tr {
                            td { (i + 1) }
                            td { code { (g["plugin"].as_str().unwrap_or("")) } }
                            td.muted { (config_text(&g["config"])) }
                            td {
                                @if i > 0 {
                                    form.inline method="post" action=(page.url(&format!("policy/guardrails/{i}/up"))) {
                                        (csrf(page.viewer)) button.secondary type="submit" { "Move up" }
                                    }
                                }
                                form.inline method="post" action=(page.url(&format!("policy/guardrails/{i}/remove"))) {
                                    (csrf(page.viewer)) button.secondary type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                    @if array(p, "guardrails").is_empty() { tr { td.muted colspan="4" { "No guardrails." } } }
                }
            }
            form.stack method="post" action=(page.url("policy/guardrails")) {
                (csrf(page.viewer))
                label for="guardrail-plugin" { "Add a guardrail" }
                select #guardrail-plugin name="plugin" {
                    @for name in of_stage(Stage::Guardrail) { option value=(name) { (name) } }
                }
                label for="guardrail-config" { "Config, one key = value a line" }
                textarea #guardrail-config name="config" rows="2" placeholder="max_chars = 2000" {}
                button type="submit" { "Add guardrail" }
            }
        }
        div.panel {
            h2 { "Stages" }
            @for stage in STAGES {
                (stage_form(page, &view, stage, &of_stage(stage)))
            }
        }
        div.panel {
            h2 { "Sandbox limits" }
            p.sub { "For every plugin call of this tenant; this server allows at most "
                (view.limits.max_deadline_ms) " ms, " (view.limits.max_memory_mib) " MiB and "
                (view.limits.max_warm_instances) " warm instances." }
            form.stack method="post" action=(page.url("policy/sandbox")) {
                (csrf(page.viewer))
                @for (key, label) in [("deadline_ms", "Time budget of a call (ms)"), ("memory_mib", "Memory cap (MiB)"), ("max_reuse", "Calls per instance before it is recycled"), ("warm_instances", "Idle instances kept per plugin")] {
                    label for={ "sandbox-" (key) } { (label) }
                    input id={ "sandbox-" (key) } name=(key) type="number" min="1" value=(p["sandbox"][key].as_u64().unwrap_or(0));
                }
                button type="submit" { "Save limits" }
            }
        }
        div.panel {
            h2 { "Answers" }
            form.stack method="post" action=(page.url("policy/options")) {
                (csrf(page.viewer))
                label.check { input type="checkbox" name="screen_streamed_answers" value="true" checked[p["screen_streamed_answers"] != false]; " Hold a streamed answer until the guardrails have screened all of it" }
                label.check { input type="checkbox" name="embedded_intent" value="true" checked[p["embedded_intent"] == true]; " Ask the answering model to label each prompt too" }
                button type="submit" { "Save" }
            }
        }
        div.panel {
            h2 { "The policy file" }
            p.sub { "The whole policy in the format of the server's policy files." }
            form.stack method="post" action=(page.url("policy/toml")) {
                (csrf(page.viewer))
                textarea #policy-toml name="toml" rows="18" spellcheck="false" { (view.toml) }
                input name="reason" placeholder="Reason (kept in the history)";
                button type="submit" { "Save policy" }
            }
        }
        div.panel {
            h2 { "History" }
            table {
                thead { tr { th { "Version" } th { "When" } th { "By" } th { "Note" } th { "" } } }
                tbody {
                    @for v in &versions {
                        tr {
                            td { "v" (v.version) " " @if v.current { (tag(Some("live"))) } }
                            td { (page.local_time(v.created_at)) }
                            td { (v.actor) }
                            td.muted { (v.note.as_deref().unwrap_or("")) @if v.toml.is_none() { " (the server's policy)" } }
                            td {
                                @if !v.current {
                                    form.inline method="post" action=(page.url("policy/rollback")) data-confirm={ "Make version " (v.version) " the policy again?" } {
                                        (csrf(page.viewer))
                                        input type="hidden" name="version" value=(v.version);
                                        input name="reason" required placeholder="Reason" size="14";
                                        button.secondary type="submit" { "Roll back" }
                                    }
                                }
                            }
                        }
                    }
                    @if versions.is_empty() { tr { td.muted colspan="5" { "No version set here yet." } } }
                }
            }
            @if view.source == "api" {
                form.inline method="post" action=(page.url("policy/reset")) data-confirm="Drop this tenant's own policy and run the server's?" {
                    (csrf(page.viewer))
                    input name="reason" required placeholder="Reason" size="20";
                    button.secondary type="submit" { "Back to the server's policy" }
                }
            }
        }
    };
    page.render("Policy", "policy", body)
}

fn stage_form(page: &Page<'_>, view: &PolicyView, stage: Stage, plugins: &[&str]) -> Markup {
    let entry = &view.policy["stages"][stage.as_str()];
    let current = entry["plugin"].as_str().unwrap_or("");
    let choosable = view.limits.tenant_stages.contains(&stage);
    let scoring = matches!(stage, Stage::Intent | Stage::Deviation);
    let id = |field: &str| format!("stage-{}-{field}", stage.as_str());
    html! {
        form.stack method="post" action=(page.url(&format!("policy/stages/{}", stage.as_str()))) {
            (csrf(page.viewer))
            h3 { (stage.as_str()) }
            @if choosable {
                label for=(id("plugin")) { "Plugin" }
                select id=(id("plugin")) name="plugin" {
                    @for name in plugins { option value=(name) selected[*name == current] { (name) } }
                }
            } @else {
                p.muted { "Plugin " code { (current) } " (set by this server)." }
            }
            label for=(id("config")) { "Config, one key = value a line" }
            textarea id=(id("config")) name="config" rows="2" { (config_text(&entry["config"])) }
            @if scoring {
                label.check { input type="checkbox" name="fail_open" value="true" checked[entry["fail_open"] == true]; " If this plugin fails, let the request continue unscored" }
            }
            button.secondary type="submit" { "Save " (stage.as_str()) }
        }
    }
}

fn array<'a>(policy: &'a Value, key: &str) -> &'a [Value] {
    policy[key].as_array().map_or(&[], Vec::as_slice)
}

/// A config table as `key = value` lines.
fn config_text(config: &Value) -> String {
    let Some(map) = config.as_object() else {
        return String::new();
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k} = {s}"),
            other => format!("{k} = {other}"),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `key = value` lines as a config table (values as strings, as plugins
/// read them).
fn config_of(text: &str) -> Result<Value, String> {
    let mut map = Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("config line '{line}' is not key = value"))?;
        let value = value.trim().trim_matches('"');
        map.insert(key.trim().to_string(), Value::String(value.to_string()));
    }
    Ok(Value::Object(map))
}

/// Applies one section's form to the current policy and sets the result;
/// `None` when `path` is no policy form.
pub fn act(page: &Page<'_>, path: &[&str], form: &Form) -> Option<Result<(), ApiError>> {
    let (app, t, caller) = (page.app, page.tenant, &page.viewer.caller());
    let invalid = |m: String| ApiError::new(crate::error::ErrorCode::InvalidPolicy, m);
    let reason = form.get("reason").map(String::from);
    let edit = |change: &dyn Fn(&mut Value) -> Result<(), String>| -> Result<(), ApiError> {
        let mut p = policy::show(app, caller, t)?.policy;
        change(&mut p).map_err(invalid)?;
        let input = PolicyInput {
            policy: Some(p),
            reason: reason.clone(),
            ..PolicyInput::default()
        };
        policy::put(app, caller, t, input).map(|_| ())
    };
    let checked = |key: &str| form.get(key) == Some("true");
    Some(match path {
        ["policy", "toml"] => {
            let input = PolicyInput {
                toml: form.get("toml").map(String::from),
                reason: reason.clone(),
                ..PolicyInput::default()
            };
            policy::put(app, caller, t, input).map(|_| ())
        }
        ["policy", "guardrails"] => edit(&|p| {
            let plugin = form.get("plugin").ok_or("choose a plugin")?;
            let entry =
                json!({ "plugin": plugin, "config": config_of(form.get("config").unwrap_or(""))? });
            guardrails(p).push(entry);
            Ok(())
        }),
        ["policy", "guardrails", i, action] => edit(&|p| {
            let list = guardrails(p);
            let i: usize = i.parse().map_err(|_| "no such guardrail".to_string())?;
            if i >= list.len() {
                return Err("no such guardrail".into());
            }
            match *action {
                "remove" => drop(list.remove(i)),
                "up" if i > 0 => list.swap(i, i - 1),
                _ => return Err("no such change".into()),
            }
            Ok(())
        }),
        ["policy", "stages", stage] => edit(&|p| {
            let entry = p["stages"]
                .get_mut(*stage)
                .ok_or_else(|| format!("no stage '{stage}'"))?;
            if let Some(plugin) = form.get("plugin") {
                entry["plugin"] = plugin.into();
            }
            entry["config"] = config_of(form.get("config").unwrap_or(""))?;
            if matches!(*stage, "intent" | "deviation") {
                entry["fail_open"] = checked("fail_open").into();
            }
            Ok(())
        }),
        ["policy", "sandbox"] => edit(&|p| {
            for key in ["deadline_ms", "memory_mib", "max_reuse", "warm_instances"] {
                if let Some(n) = form.number(key)? {
                    p["sandbox"][key] = n.into();
                }
            }
            Ok(())
        }),
        ["policy", "options"] => edit(&|p| {
            p["screen_streamed_answers"] = checked("screen_streamed_answers").into();
            p["embedded_intent"] = checked("embedded_intent").into();
            Ok(())
        }),
        ["policy", "rollback"] => {
            let version = form.number("version").ok().flatten().unwrap_or(0) as u32;
            let input = policy::RollbackInput { version, reason };
            policy::rollback(app, caller, t, input).map(|_| ())
        }
        ["policy", "reset"] => {
            let input = PolicyInput {
                reason,
                ..PolicyInput::default()
            };
            policy::reset(app, caller, t, input).map(|_| ())
        }
        _ => return None,
    })
}

/// The policy's guardrail list, made if absent.
fn guardrails(p: &mut Value) -> &mut Vec<Value> {
    if !p["guardrails"].is_array() {
        p["guardrails"] = json!([]);
    }
    p["guardrails"].as_array_mut().expect("just made an array")
}
