//! The console's forms, turned into the admin API's typed operations: they
//! check, change and audit, exactly as for a `curl` or the CLI.

use hyper::{Response, StatusCode};
use maud::html;

use super::Page;
use crate::admin_api::misuse::{Correction, NewSettings, TaskChanges};
use crate::admin_api::providers::{ProviderInput, Removal, RouteInput};
use crate::admin_api::tenants::{NewTask, Reason};
use crate::admin_api::tokens::IssueToken;
use crate::admin_api::users::{CreateUser, SetLimits};
use crate::admin_api::{misuse, plugins, providers, tenants, tokens, users};
use crate::domain::providers::{ProviderKind, ProviderSpec};
use crate::error::ApiError;
use crate::form::Form;
use crate::http::Body;
use crate::state::model::{Limits, Role, UserStatus};
use crate::{error_page, redirect};

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
fn limits(form: &Form) -> Result<Limits, String> {
    Ok(Limits {
        requests_per_minute: form.number("requests_per_minute")?,
        requests_per_day: form.number("requests_per_day")?,
        tokens_per_day: form.number("tokens_per_day")?,
        tokens_per_month: form.number("tokens_per_month")?,
    })
}

/// A form's lines, trimmed, blank ones left out.
fn lines(form: &Form, name: &str) -> Vec<String> {
    form.get(name)
        .map(|v| {
            v.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// A form's number that may be blank.
fn decimal(form: &Form, name: &str) -> Result<Option<f32>, String> {
    form.get(name)
        .filter(|v| !v.is_empty())
        .map(|v| {
            v.parse::<f32>()
                .map_err(|_| format!("'{name}' must be a number"))
        })
        .transpose()
}

fn role(form: &Form) -> Result<Role, String> {
    form.get("role").unwrap_or("user").parse()
}

/// A comma- or space-separated list of ids, as typed in a form.
fn ids(form: &Form, name: &str) -> Vec<String> {
    form.get(name)
        .unwrap_or("")
        .split([',', ' ', ';'])
        .filter(|id| !id.is_empty())
        .map(String::from)
        .collect()
}

/// A bad form field, in the console's words.
fn invalid(message: String) -> ApiError {
    ApiError::new(crate::error::ErrorCode::InvalidParameter, message)
}

/// What an action did and where the admin lands after it.
struct Done {
    what: &'static str,
    fallback: String,
}

pub async fn run(page: &Page<'_>, path: &[&str], form: &Form) -> Response<Body> {
    match path {
        ["tokens"] => return issue_token(page, form).await,
        ["plugins"] => return upload_plugin(page, form).await,
        ["branding", "logo"] => {
            let caller = page.viewer.caller();
            let image = form
                .file
                .as_ref()
                .map(|f| f.bytes.clone())
                .unwrap_or_default();
            return match crate::admin_api::branding::upload_logo(
                page.app,
                &caller,
                page.tenant,
                image,
            ) {
                Ok(_) => redirect(&format!("{}?ok=branding", page.url(""))),
                Err(e) => error_page(e.status(), &e.message, Some(page.viewer)),
            };
        }
        ["webhooks"] => return super::webhooks::create(page, form),
        ["invitations", "bulk"] => {
            return super::users::bulk_invite(page, form.get("csv").unwrap_or(""))
        }
        _ => {}
    }
    match act(page, path, form).await {
        Ok(Some(done)) => {
            let to = back(page, form, done.fallback);
            redirect(&format!("{to}?ok={}", done.what))
        }
        Ok(None) => page.not_found("no such action"),
        Err(e) => error_page(e.status(), &e.message, Some(page.viewer)),
    }
}

/// One form's operation; `None` for no such action.
async fn act(page: &Page<'_>, path: &[&str], form: &Form) -> Result<Option<Done>, ApiError> {
    let (app, t, caller) = (page.app, page.tenant, &page.viewer.caller());
    let reason = || Reason {
        reason: form.get("reason").map(String::from),
    };
    let done = |what, fallback| Ok(Some(Done { what, fallback }));
    if let Some(result) = super::policy::act(page, path, form) {
        result?;
        return done("policy", page.url("policy"));
    }
    if let Some(result) = super::groups::act(page, path, form) {
        result?;
        return done("group", page.url("groups"));
    }
    match path {
        ["users"] => {
            let new = CreateUser {
                id: form.get("id").unwrap_or("").to_string(),
                name: form.get("name").map(String::from),
                role: role(form).map_err(invalid)?,
                limits: Limits::default(),
                groups: ids(form, "groups"),
            };
            users::create(app, caller, t, new)?;
            done("user", page.url("tokens"))
        }
        ["providers"] => {
            let name = form.get("name").unwrap_or("").to_string();
            let text = |key: &str| form.get(key).filter(|v| !v.is_empty()).map(String::from);
            let kind = form.get("kind").unwrap_or("");
            let kind = ProviderKind::parse(kind)
                .ok_or_else(|| invalid(format!("unknown kind '{kind}'")))?;
            let input = ProviderInput {
                spec: ProviderSpec {
                    kind: Some(kind),
                    base_url: text("base_url"),
                    api_version: text("api_version"),
                    models: form.list("models"),
                    ..ProviderSpec::default()
                },
                api_key: text("api_key"),
            };
            providers::put(app, caller, t, &name, input)?;
            done("provider", page.url("providers"))
        }
        ["providers", name, "delete"] => {
            let removal = Removal {
                reason: reason().reason,
            };
            providers::delete(app, caller, t, name, removal)?;
            done("removed", page.url("providers"))
        }
        ["routes"] => {
            let model = form.get("model").unwrap_or("");
            let input = RouteInput {
                targets: form.list("targets"),
            };
            providers::put_route(app, caller, t, model, input)?;
            done("route", page.url("providers"))
        }
        ["routes", model, "delete"] => {
            let removal = Removal {
                reason: reason().reason,
            };
            providers::delete_route(app, caller, t, model, removal)?;
            done("removed", page.url("providers"))
        }
        ["users", u, "enable"] => {
            users::set_status(app, caller, t, u, UserStatus::Active, reason())?;
            done("enabled", page.url(&format!("users/{u}")))
        }
        ["users", u, "block"] => {
            users::set_status(app, caller, t, u, UserStatus::Blocked, reason())?;
            done("blocked", page.url(&format!("users/{u}")))
        }
        ["users", u, "limits"] => {
            let limits = limits(form).map_err(invalid)?;
            let reason = form.get("reason").map(String::from);
            users::set_limits(app, caller, t, u, SetLimits { limits, reason })?;
            done("limits", page.url(&format!("users/{u}")))
        }
        ["tasks"] => {
            let new = NewTask {
                id: form.get("id").unwrap_or("").to_string(),
                title: form.get("title").unwrap_or("").to_string(),
                description: form.get("description").unwrap_or("").to_string(),
                keywords: form.list("keywords"),
                endpoints: Vec::new(),
                models: form.list("models"),
                providers: form.list("providers"),
            };
            tenants::create_task(app, caller, t, new)?;
            done("task", page.url("tasks"))
        }
        ["tasks", id, "edit"] => {
            let text = |name: &str| Some(form.get(name).unwrap_or("").to_string());
            let changes = TaskChanges {
                title: text("title"),
                description: text("description"),
                keywords: Some(form.list("keywords")),
                examples: Some(lines(form, "examples")),
                reason: form.get("reason").map(String::from),
                ..TaskChanges::default()
            };
            misuse::update_task(app, caller, t, id, changes)?;
            done("task", page.url(&format!("tasks/{id}")))
        }
        ["users", u, "prompts", request, "on-task"] => {
            let note = form.get("note").map(String::from);
            misuse::mark_on_task(app, caller, t, u, request, Correction { note })?;
            done("on-task", page.url("review"))
        }
        ["misuse"] => {
            let number = |name: &str| decimal(form, name).map_err(invalid);
            let settings = NewSettings {
                warn_at: number("warn_at")?,
                flag_at: number("flag_at")?,
                block_at: number("block_at")?,
                half_life_minutes: number("half_life_minutes")?,
                shadow: Some(form.get("shadow") == Some("on")),
                reason: form.get("reason").map(String::from),
            };
            misuse::set_settings(app, caller, t, settings)?;
            done("settings", page.url("review"))
        }
        ["tasks", id, "archive"] => {
            tenants::archive_task(app, caller, t, id, reason())?;
            done("archived", page.url("tasks"))
        }
        ["tokens", jti, "revoke"] => {
            tokens::revoke(app, caller, t, jti, reason())?;
            done("revoked", page.url("tokens"))
        }
        ["invitations"] => {
            let new = crate::admin_api::invitations::NewInvitation {
                email: form.get("email").unwrap_or("").to_string(),
                name: form.get("name").unwrap_or("").to_string(),
                role: Some(role(form).map_err(invalid)?),
                groups: ids(form, "groups"),
            };
            crate::admin_api::invitations::create(app, caller, t, new)?;
            done("invited", page.url("users"))
        }
        ["branding"] => {
            let change = crate::admin_api::branding::BrandingChange {
                display_name: Some(form.get("display_name").unwrap_or("").to_string()),
                accent_color: Some(form.get("accent_color").unwrap_or("").to_string()),
                reason: None,
            };
            crate::admin_api::branding::put(app, caller, t, change)?;
            done("branding", page.url(""))
        }
        ["branding", "logo", "delete"] => {
            crate::admin_api::branding::remove_logo(app, caller, t)?;
            done("branding", page.url(""))
        }
        ["invitations", id, "resend"] => {
            crate::admin_api::invitations::resend(app, caller, t, id)?;
            done("invited", page.url("users"))
        }
        ["invitations", id, "cancel"] => {
            crate::admin_api::invitations::cancel(app, caller, t, id)?;
            done("removed", page.url("users"))
        }
        ["webhooks", id, "delete"] => {
            super::webhooks::delete(page, id)?;
            done("removed", page.url("webhooks"))
        }
        ["plugins", name, "rollback"] => {
            plugins::rollback(app, caller, t, name, reason()).await?;
            done("rollback", page.url("plugins"))
        }
        _ => Ok(None),
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
    let caller = page.viewer.caller();
    let upload = plugins::upload(page.app, &caller, page.tenant, name, file.bytes.clone());
    match upload.await {
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
    let request = IssueToken {
        user: form.get("user").unwrap_or("").to_string(),
        tasks: form.all("tasks"),
        models: form.list("models"),
        endpoints: Vec::new(),
        ttl_secs: Some(ttl_days * 86_400),
    };
    let issued = match tokens::issue(page.app, &page.viewer.caller(), page.tenant, request) {
        Ok(issued) => issued,
        Err(e) => return error_page(e.status(), &e.message, Some(page.viewer)),
    };
    let body = html! {
        h1 { "Token issued" }
        p.flash.warn { "Copy it now: Warden keeps only its record and cannot show it again." }
        div.panel {
            dl.facts {
                dt { "User" } dd { (issued.user) }
                dt { "Token id" } dd { code { (issued.jti) } }
                dt { "Expires" } dd { (page.local_time(issued.expires_at * 1000)) }
            }
            p {}
            textarea #issued-token .token readonly rows="4" { (issued.token) }
            div.row { button type="button" data-copy="issued-token" { "Copy" } a href=(page.url("tokens")) { "Back to tokens" } }
        }
    };
    page.render("Token issued", "tokens", body)
}
