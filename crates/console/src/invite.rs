//! `/ui/invite/{token}`: the page an invitation's e-mail links to. It shows
//! who invites the reader into which organisation as what, lets them choose
//! their account id and name, and accepting makes the account and signs
//! them in. An expired, cancelled or used invitation is a page saying so.
//! The form is guarded like the sign-in forms (double-submit cookie).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use maud::html;

use super::login::{branded_login_page, open_session, read_form};
use crate::admin_api::invitations::{self, Acceptance};
use crate::app::App;
use crate::http::Body;

pub fn page(app: &App, token: &str, secure: bool) -> Response<Body> {
    show(app, token, secure, None)
}

fn show(app: &App, token: &str, secure: bool, error: Option<&str>) -> Response<Body> {
    let details = match invitations::public_details(app, token) {
        Ok(details) => details,
        Err(e) => return super::error_page(e.status(), &e.message, None),
    };
    let role = details.role.with_article();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let action = format!("/ui/invite/{token}");
    let directory = app.db.directory();
    let branding = directory
        .tenant(&details.tenant_id)
        .and_then(|e| e.tenant.as_ref())
        .map(|t| &t.branding)
        .filter(|b| !b.is_empty());
    branded_login_page("Invitation", branding, secure, status, |nonce| {
        html! {
            h1 { "Join " (details.organisation) }
            p.sub { (details.invited_by) " invites " strong { (details.email) } " to " (details.organisation) " as " (role) "." }
            @if let Some(message) = error { p.flash.bad { (message) } }
            form.stack method="post" action=(action) {
                input type="hidden" name="nonce" value=(nonce);
                label for="invite-user" { "Your account id" }
                input #invite-user name="user_id" required pattern="[A-Za-z0-9._-]{1,64}" value=(details.suggested_user_id);
                label for="invite-name" { "Your name" }
                input #invite-name name="name" value=(details.name);
                button type="submit" { "Accept and sign in" }
            }
        }
    })
}

pub async fn accept(app: &Arc<App>, token: &str, req: Request<Incoming>) -> Response<Body> {
    let secure = app.config.tls.is_some();
    let form = match read_form(req).await {
        Ok(form) => form,
        Err(refused) => return refused,
    };
    let acceptance = Acceptance {
        user_id: form.get("user_id").map(String::from),
        name: form.get("name").map(String::from),
    };
    match invitations::accept(app, token, acceptance) {
        Ok(accepted) => open_session(app, &accepted.tenant, &accepted.user_id, None, None),
        Err(e) if e.status() == StatusCode::BAD_REQUEST => {
            show(app, token, secure, Some(&e.message))
        }
        Err(e) => super::error_page(e.status(), &e.message, None),
    }
}
