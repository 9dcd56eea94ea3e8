//! The console's forms, turned into admin API calls: the API's handlers
//! check, change and audit, exactly as for a `curl` or the CLI.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, Response, StatusCode};
use maud::html;
use serde_json::{json, Value};

use super::Page;
use crate::admin_api::{self, AdminCall};
use crate::form::Form;
use crate::http::Body;
use crate::{error_page, redirect};

fn call(method: Method, path: String, body: Value) -> AdminCall {
    AdminCall {
        method,
        path,
        query: Default::default(),
        body: Bytes::from(body.to_string()),
    }
}

/// Where to go after the action: the form's `back` page when it is one of
/// this tenant's pages, else `fallback`.
fn back(page: &Page<'_>, form: &Form, fallback: String) -> String {
    let own = page.url("");
    form.get("back")
        .filter(|b| *b == own || b.starts_with(&format!("{own}/")))
        .filter(|b| !b.contains(['?', '#', '\\']) && !b.contains("//"))
        .map_or(fallback, String::from)
}

/// Limits from the form's four fields; blank is unlimited.
fn limits(form: &Form) -> Result<Value, String> {
    Ok(json!({
        "requests_per_minute": form.number("requests_per_minute")?,
        "requests_per_day": form.number("requests_per_day")?,
        "tokens_per_day": form.number("tokens_per_day")?,
        "tokens_per_month": form.number("tokens_per_month")?,
    }))
}

pub async fn run(page: &Page<'_>, path: &[&str], form: &Form) -> Response<Body> {
    let t = page.tenant;
    let reason = json!({ "reason": form.get("reason") });
    let (call, done, fallback) = match path {
        ["users"] => {
            let id = form.get("id").unwrap_or("");
            let body = json!({ "id": id, "name": form.get("name"), "role": form.get("role").unwrap_or("user") });
            (
                call(Method::POST, format!("tenants/{t}/users"), body),
                "user",
                page.url("tokens"),
            )
        }
        ["users", u, "enable"] => (
            call(
                Method::POST,
                format!("tenants/{t}/users/{u}/enable"),
                reason,
            ),
            "enabled",
            page.url(&format!("users/{u}")),
        ),
        ["users", u, "block"] => (
            call(Method::POST, format!("tenants/{t}/users/{u}/block"), reason),
            "blocked",
            page.url(&format!("users/{u}")),
        ),
        ["users", u, "limits"] => {
            let limits = match limits(form) {
                Ok(l) => l,
                Err(m) => return error_page(StatusCode::BAD_REQUEST, &m, Some(page.viewer)),
            };
            (
                call(
                    Method::PUT,
                    format!("tenants/{t}/users/{u}/limits"),
                    json!({ "limits": limits, "reason": form.get("reason") }),
                ),
                "limits",
                page.url(&format!("users/{u}")),
            )
        }
        ["tasks"] => {
            let body = json!({
                "id": form.get("id").unwrap_or(""),
                "title": form.get("title").unwrap_or(""),
                "description": form.get("description").unwrap_or(""),
                "keywords": form.list("keywords"),
                "models": form.list("models"),
            });
            (
                call(Method::POST, format!("tenants/{t}/tasks"), body),
                "task",
                page.url("tasks"),
            )
        }
        ["tasks", id, "edit"] => {
            let lines = |name: &str| -> Vec<String> {
                form.get(name)
                    .map(|v| {
                        v.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(String::from)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let body = json!({
                "title": form.get("title").unwrap_or(""),
                "description": form.get("description").unwrap_or(""),
                "keywords": form.list("keywords"),
                "examples": lines("examples"),
                "reason": form.get("reason"),
            });
            (
                call(Method::PATCH, format!("tenants/{t}/tasks/{id}"), body),
                "task",
                page.url(&format!("tasks/{id}")),
            )
        }
        ["users", u, "prompts", request, "on-task"] => (
            call(
                Method::POST,
                format!("tenants/{t}/users/{u}/prompts/{request}/on-task"),
                json!({ "note": form.get("note") }),
            ),
            "on-task",
            page.url("review"),
        ),
        ["misuse"] => {
            let number = |name: &str| -> Result<Option<f32>, String> {
                form.get(name)
                    .map(|v| {
                        v.parse::<f32>()
                            .map_err(|_| format!("'{name}' must be a number"))
                    })
                    .transpose()
            };
            let parsed = (|| -> Result<Value, String> {
                Ok(json!({
                    "warn_at": number("warn_at")?,
                    "flag_at": number("flag_at")?,
                    "block_at": number("block_at")?,
                    "half_life_minutes": number("half_life_minutes")?,
                    "shadow": form.get("shadow") == Some("on"),
                    "reason": form.get("reason"),
                }))
            })();
            let body = match parsed {
                Ok(b) => b,
                Err(m) => return error_page(StatusCode::BAD_REQUEST, &m, Some(page.viewer)),
            };
            (
                call(Method::PUT, format!("tenants/{t}/misuse"), body),
                "settings",
                page.url("review"),
            )
        }
        ["tasks", id, "archive"] => (
            call(
                Method::POST,
                format!("tenants/{t}/tasks/{id}/archive"),
                reason,
            ),
            "archived",
            page.url("tasks"),
        ),
        ["tokens"] => return issue_token(page, form).await,
        ["tokens", jti, "revoke"] => (
            call(
                Method::POST,
                format!("tenants/{t}/tokens/{jti}/revoke"),
                reason,
            ),
            "revoked",
            page.url("tokens"),
        ),
        ["plugins"] => return upload_plugin(page, form).await,
        ["plugins", name, "rollback"] => (
            call(
                Method::POST,
                format!("tenants/{t}/plugins/{name}/rollback"),
                reason,
            ),
            "rollback",
            page.url("plugins"),
        ),
        _ => return page.not_found("no such action"),
    };
    let to = back(page, form, fallback);
    match admin_api::execute(page.app, &page.viewer.caller(), call).await {
        Ok(_) => redirect(&format!("{to}?ok={done}")),
        Err(e) => error_page(e.status(), &e.message, Some(page.viewer)),
    }
}

/// Uploads a tenant's plugin: the admin API checks it against the WIT
/// worlds, compiles it, self-tests it, and only then makes it live.
async fn upload_plugin(page: &Page<'_>, form: &Form) -> Response<Body> {
    let (Some(name), Some(file)) = (form.get("name"), form.file.as_ref()) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "choose a name and a .wasm component to upload",
            Some(page.viewer),
        );
    };
    let call = AdminCall {
        method: Method::PUT,
        path: format!("tenants/{}/plugins/{name}", page.tenant),
        query: Default::default(),
        body: file.bytes.clone(),
    };
    match admin_api::execute(page.app, &page.viewer.caller(), call).await {
        Ok(_) => redirect(&format!("{}?ok=uploaded", page.url("plugins"))),
        Err(e) => error_page(e.status(), &e.message, Some(page.viewer)),
    }
}

/// Issues a token and shows it, once: the server keeps only its record.
async fn issue_token(page: &Page<'_>, form: &Form) -> Response<Body> {
    let ttl_days = match form.number("ttl_days") {
        Ok(d) => d.unwrap_or(30),
        Err(m) => return error_page(StatusCode::BAD_REQUEST, &m, Some(page.viewer)),
    };
    let body = json!({
        "user": form.get("user").unwrap_or(""),
        "tasks": form.all("tasks"),
        "models": form.list("models"),
        "ttl_secs": ttl_days * 86_400,
    });
    let call = call(
        Method::POST,
        format!("tenants/{}/tokens", page.tenant),
        body,
    );
    let response = match admin_api::execute(page.app, &page.viewer.caller(), call).await {
        Ok(r) => r,
        Err(e) => return error_page(e.status(), &e.message, Some(page.viewer)),
    };
    let issued: Value = match response.into_body().collect().await {
        Ok(b) => serde_json::from_slice(&b.to_bytes()).unwrap_or_default(),
        Err(e) => {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &e.to_string(),
                Some(page.viewer),
            )
        }
    };
    let text = |k: &str| issued[k].as_str().unwrap_or_default().to_string();
    let body = html! {
        h1 { "Token issued" }
        p.flash.warn { "Copy it now: Warden keeps only its record and cannot show it again." }
        div.panel {
            dl.facts {
                dt { "User" } dd { (text("user")) }
                dt { "Token id" } dd { code { (text("jti")) } }
                dt { "Expires" } dd { (page.local_time(issued["expires_at"].as_u64().unwrap_or(0) * 1000)) }
            }
            p {}
            textarea #issued-token .token readonly rows="4" { (text("token")) }
            div.row { button type="button" data-copy="issued-token" { "Copy" } a href=(page.url("tokens")) { "Back to tokens" } }
        }
    };
    page.render("Token issued", "tokens", body)
}
