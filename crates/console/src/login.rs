//! Signing in: with a Warden token (any user's: admins land on their
//! tenant, users on their own page), or with a one-time link printed by
//! `warden login-link`. Both forms are guarded by a double-submit cookie,
//! since there is no session yet to hold a CSRF token.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use maud::{html, Markup};

use super::form::Form;
use super::layout;
use super::session::{self, LOGIN_COOKIE, SESSION_COOKIE};
use super::{html, redirect, with_cookie};
use crate::app::App;
use crate::http::Body;
use crate::token;

/// A fresh double-submit token, in a cookie and in the form.
pub(crate) fn login_page(
    title: &str,
    secure: bool,
    status: StatusCode,
    body: impl FnOnce(&str) -> Markup,
) -> Response<Body> {
    branded_login_page(title, None, secure, status, body)
}

/// A sign-in style page in a tenant's colours, with its logo and name
/// (the invitation's page: the invitee has no session yet).
pub(crate) fn branded_login_page(
    title: &str,
    branding: Option<&crate::domain::branding::Branding>,
    secure: bool,
    status: StatusCode,
    body: impl FnOnce(&str) -> Markup,
) -> Response<Body> {
    let nonce = session::random_secret();
    let page = layout::bare_branded(
        title,
        branding,
        html! { div.login.panel { (body(&nonce)) } },
    );
    with_cookie(
        html(status, page),
        session::set_cookie(LOGIN_COOKIE, &nonce, 900, secure),
    )
}

pub fn form(
    query: &HashMap<String, String>,
    secure: bool,
    error: Option<(StatusCode, &str)>,
) -> Response<Body> {
    let ended = query.contains_key("ended");
    let status = error.map_or(StatusCode::OK, |e| e.0);
    login_page("Sign in", secure, status, |nonce| {
        html! {
            h1 { "Warden console" }
            p.sub { "Sign in with your Warden token, or open the one-time link your admin sent you." }
            @if let Some((_, message)) = error { p.flash.bad { (message) } }
            @if ended { p.flash.warn { "Your session has ended: sign in again." } }
            form.stack method="post" action="/ui/login" {
                input type="hidden" name="nonce" value=(nonce);
                label for="token" { "Token" }
                textarea id="token" name="token" class="token" required autocomplete="off" spellcheck="false" placeholder="eyJ…" {}
                button type="submit" { "Sign in" }
            }
        }
    })
}

fn signed_in(app: &App, secret: &str, home: &str) -> Response<Body> {
    let secure = app.config.tls.is_some();
    let response = with_cookie(
        redirect(home),
        session::set_cookie(
            SESSION_COOKIE,
            secret,
            session::session_max_age_secs(),
            secure,
        ),
    );
    with_cookie(response, session::set_cookie(LOGIN_COOKIE, "", 0, secure))
}

/// Reads a sign-in form, refusing it without the double-submit token.
pub(crate) async fn read_form(req: Request<Incoming>) -> Result<Form, Response<Body>> {
    let forged = !session::from_this_site(&req);
    let cookie = session::cookie(&req, LOGIN_COOKIE).map(String::from);
    let form = Form::read(req, false)
        .await
        .map_err(|m| super::error_page(StatusCode::BAD_REQUEST, &m, None))?;
    let nonce_ok = match (cookie.as_deref(), form.get("nonce")) {
        (Some(cookie), Some(field)) => session::same_secret(cookie, field),
        _ => false,
    };
    if forged || !nonce_ok {
        return Err(super::error_page(
            StatusCode::FORBIDDEN,
            "this sign-in form has expired or came from another site: open the sign-in page again",
            None,
        ));
    }
    Ok(form)
}

pub async fn with_token(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let secure = app.config.tls.is_some();
    let form = match read_form(req).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let Some(text) = form.get("token") else {
        return refused(secure, StatusCode::BAD_REQUEST, "paste your token");
    };
    match token::verify(&app.db.directory(), text) {
        Ok(claims) => open_session(
            app,
            &claims.tid,
            &claims.sub,
            Some(claims.jti.clone()),
            Some(claims.exp * 1000),
        ),
        Err(e) => refused(
            secure,
            StatusCode::UNAUTHORIZED,
            &format!("this token cannot sign in: {e}"),
        ),
    }
}

/// The sign-in form again, with why the last attempt was refused.
fn refused(secure: bool, status: StatusCode, message: &str) -> Response<Body> {
    form(&HashMap::new(), secure, Some((status, message)))
}

const LINK_GONE: &str = "this sign-in link was used already or has expired: ask for a new one";

/// Opens a session for a user who still exists, and sends them home.
pub(crate) fn open_session(
    app: &App,
    tenant_id: &str,
    user_id: &str,
    jti: Option<String>,
    token_expires_ms: Option<u64>,
) -> Response<Body> {
    let secure = app.config.tls.is_some();
    let Some(home) = session::user_home(app, tenant_id, user_id) else {
        return refused(
            secure,
            StatusCode::UNAUTHORIZED,
            "this user no longer exists",
        );
    };
    match session::open(app, tenant_id, user_id, jti, token_expires_ms) {
        Ok(secret) => signed_in(app, &secret, &home),
        Err(e) => super::error_page(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}"), None),
    }
}

/// `GET /ui/link?code=…`: a button, not a sign-in: link previews and
/// prefetchers must not use the code up.
pub fn link_form(app: &App, query: &HashMap<String, String>, secure: bool) -> Response<Body> {
    let code = query.get("code").map(String::as_str).unwrap_or("");
    if !app.db.login_code_valid(code, app.clock.now_ms()) {
        return refused(secure, StatusCode::GONE, LINK_GONE);
    }
    login_page("Sign in", secure, StatusCode::OK, |nonce| {
        html! {
            h1 { "Warden console" }
            p.sub { "This one-time link signs you in once, then stops working." }
            form.stack method="post" action="/ui/link" {
                input type="hidden" name="nonce" value=(nonce);
                input type="hidden" name="code" value=(code);
                button type="submit" { "Sign in" }
            }
        }
    })
}

pub async fn with_link(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let secure = app.config.tls.is_some();
    let form = match read_form(req).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let now = app.clock.now_ms();
    match app.db.take_login_code(form.get("code").unwrap_or(""), now) {
        Ok(Some(login)) => open_session(app, &login.tenant_id, &login.user_id, None, None),
        Ok(None) => refused(secure, StatusCode::GONE, LINK_GONE),
        Err(e) => super::error_page(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}"), None),
    }
}
