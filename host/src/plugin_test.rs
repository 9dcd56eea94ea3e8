//! `warden plugin test`: runs a component locally, in the same sandbox a
//! tenant's calls get, against a sample request (an OpenAI chat body) and
//! an optional answer text, and reports what it decided. No server, no
//! state: the plugin's key-value store is a temporary one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::runtime::bindings::guardrail::{
    CallContext, Message, RequestDecision, ResponseDecision,
};
use crate::runtime::bindings::types;
use crate::runtime::{
    scratch_kv_tree, PluginRuntime, PluginScope, RuntimeConfig, SandboxLimits, Stage,
};

/// The messages of a chat body, their content flattened to text.
fn messages_of(request: &Value) -> Vec<Message> {
    request["messages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| Message {
            role: m["role"].as_str().unwrap_or("user").to_string(),
            content: match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => String::new(),
            },
        })
        .collect()
}

/// Compiles `wasm`, calls it like the proxy would, and reports the result.
pub async fn run(
    name: &str,
    wasm: &[u8],
    request: &Value,
    response: Option<&str>,
    config: HashMap<String, String>,
) -> anyhow::Result<Value> {
    let runtime = PluginRuntime::new(&RuntimeConfig::local())?;
    let compiled = Arc::new(runtime.compile(name, wasm)?);
    let stage = compiled.stage;
    if stage != Stage::Guardrail {
        return Ok(
            json!({ "plugin": name, "stage": stage.as_str(), "note": "compiled; sample calls are run for guardrails only so far" }),
        );
    }
    let scope = Arc::new(PluginScope::new(
        Arc::from("test"),
        Arc::from(name),
        config,
        scratch_kv_tree()?,
    ));
    let limits = SandboxLimits::default();
    // The decisions come from a first call, which is cold (code and memory
    // image touched for the first time) and gets the instantiation budget.
    let cold = runtime.instantiate_for_tenant(compiled.clone(), scope.clone(), limits.cold_start());
    let context = CallContext {
        identity: types::Identity {
            tenant_id: "test".into(),
            user_id: "test".into(),
            role: types::Role::User,
        },
        task_id: request["metadata"]["task_id"]
            .as_str()
            .unwrap_or("test")
            .to_string(),
        endpoint: "chat.completions".into(),
        model: request["model"].as_str().unwrap_or("test").to_string(),
    };
    let messages = messages_of(request);
    let failed = |e: crate::runtime::PluginError| anyhow::anyhow!("{e}: {}", e.detail);
    let on_request = match cold.on_request(&context, &messages).await.map_err(failed)? {
        RequestDecision::Allow => json!("allow"),
        RequestDecision::Deny(reason) => json!({ "deny": reason }),
        RequestDecision::Rewrite(messages) => json!({ "rewrite": messages
            .iter()
            .map(|m| json!({ "role": m.role, "content": m.content }))
            .collect::<Vec<_>>() }),
    };
    let on_response = match response {
        None => Value::Null,
        Some(text) => match cold.on_response(&context, text).await.map_err(failed)? {
            ResponseDecision::Allow => json!("allow"),
            ResponseDecision::Deny(reason) => json!({ "deny": reason }),
            ResponseDecision::Redact(text) => json!({ "redact": text }),
        },
    };
    // What `on-request` costs within the default limits: on a fresh
    // instance, then on the warm one (the proxy reuses instances). A busy
    // machine can push one call past the deadline, so a fresh instance gets
    // three tries; a plugin that is really too slow fails all of them.
    let over_limit = |e: crate::runtime::PluginError| {
        anyhow::anyhow!(
            "{e} (the default limits: {} ms, {} MiB; a tenant's policy can raise them): {}",
            limits.deadline.as_millis(),
            limits.memory_bytes >> 20,
            e.detail
        )
    };
    let mut measured = None;
    for _ in 0..FRESH_TRIES {
        let instance =
            runtime.instantiate_for_tenant(compiled.clone(), scope.clone(), limits.clone());
        let started = Instant::now();
        match instance.on_request(&context, &messages).await {
            Ok(_) => {
                measured = Some(Ok((instance, started.elapsed().as_secs_f64() * 1e6)));
                break;
            }
            Err(e) => measured = Some(Err(e)),
        }
    }
    let (timed, fresh) = measured.expect("at least one try").map_err(over_limit)?;
    let mut micros = Vec::with_capacity(WARM_CALLS);
    for _ in 0..WARM_CALLS {
        let started = Instant::now();
        timed
            .on_request(&context, &messages)
            .await
            .map_err(over_limit)?;
        micros.push(started.elapsed().as_secs_f64() * 1e6);
    }
    micros.sort_by(f64::total_cmp);
    Ok(json!({
        "plugin": name,
        "stage": stage.as_str(),
        "on_request": on_request,
        "on_response": on_response,
        "on_request_micros": {
            "fresh_instance": fresh.round(),
            "warm_instance_median": micros[micros.len() / 2].round(),
        },
    }))
}

/// Calls timed on the warm instance.
const WARM_CALLS: usize = 21;
/// Fresh instances tried before a call over the deadline is the plugin's fault.
const FRESH_TRIES: usize = 3;
