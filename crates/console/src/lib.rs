//! The web console under `/ui`, served by the proxy itself.
//!
//! Pages are rendered on the server with maud, which escapes every
//! interpolated string (prompts above all) unless a template opts out, which
//! none does. The only script is `app.js` (copy buttons), served from this
//! binary; the Content-Security-Policy allows nothing else: no inline
//! script or style, no other origin, no framing. Charts are SVG drawn here.
//!
//! Reads go straight to the state (indexed range scans, one page at a
//! time); every change goes through the admin API's handlers, so the
//! console checks, audits and refuses exactly as the API does.

mod admin;
mod assets;
mod chart;
mod form;
mod invite;
mod layout;
mod login;
mod me;
mod session;

// The admin API and the proxy's modules, under the names these modules
// have always used.
use warden_admin::api as admin_api;
use warden_proxy::{app, domain, error, http, plugin_store, runtime, state, token};

use std::collections::HashMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use maud::Markup;

use crate::app::App;
use crate::http::{full, Body};

pub use session::Viewer;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Headers every console response carries.
fn harden(response: &mut Response<Body>) {
    let headers = response.headers_mut();
    headers.insert("content-security-policy", HeaderValue::from_static(CSP));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Login-link codes must not leak through Referer to another site
    // (and `no-referrer` would make the browser send `Origin: null`).
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    headers
        .entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

pub fn html(status: StatusCode, page: Markup) -> Response<Body> {
    let mut response = Response::new(full(page.into_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// 303: after a form, the browser GETs the next page.
pub fn redirect(location: &str) -> Response<Body> {
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response.headers_mut().insert(
        LOCATION,
        HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/ui")),
    );
    response
}

fn with_cookie(mut response: Response<Body>, cookie: HeaderValue) -> Response<Body> {
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

/// An error page, with the status the admin API would give.
pub fn error_page(status: StatusCode, message: &str, viewer: Option<&Viewer>) -> Response<Body> {
    html(status, layout::error(status, message, viewer))
}

fn query_of(req: &Request<Incoming>) -> HashMap<String, String> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Whether a request is for the console.
pub fn is_console_path(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

pub async fn route(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let mut response = dispatch(app, req).await;
    harden(&mut response);
    response
}

async fn dispatch(app: &Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path
        .strip_prefix("/ui")
        .unwrap_or(&path)
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let method = req.method().clone();
    let secure = app.config.tls.is_some();
    // Pages open to everyone: assets and the two ways to sign in.
    match (&method, segments.as_slice()) {
        (&Method::GET, ["static", name]) => return assets::serve(name),
        (&Method::GET, ["brand.css"]) => return assets::brand_css(&query_of(&req)),
        (&Method::GET, ["brand", "logo", sha256]) => return assets::logo(app, sha256),
        (&Method::GET, ["login"]) => {
            return match session::viewer(app, &req) {
                Some(viewer) => redirect(&viewer.home()),
                None => login::form(&query_of(&req), secure, None),
            }
        }
        (&Method::POST, ["login"]) => return login::with_token(app, req).await,
        (&Method::GET, ["link"]) => return login::link_form(app, &query_of(&req), secure),
        (&Method::POST, ["link"]) => return login::with_link(app, req).await,
        (&Method::GET, ["invite", token]) => return invite::page(app, token, secure),
        (&Method::POST, ["invite", token]) => {
            let token = token.to_string();
            return invite::accept(app, &token, req).await;
        }
        _ => {}
    }
    let Some(viewer) = session::viewer(app, &req) else {
        return match method {
            Method::GET => redirect("/ui/login"),
            _ => error_page(
                StatusCode::UNAUTHORIZED,
                "your session has ended: sign in again",
                None,
            ),
        };
    };
    let query = query_of(&req);
    let host = me::host_of(&req);
    let form = if method == Method::POST {
        if !session::from_this_site(&req) {
            return error_page(
                StatusCode::FORBIDDEN,
                "this form was sent from another site",
                Some(&viewer),
            );
        }
        // Only an admin's plugin upload may send a file (up to 64 MiB).
        let upload = matches!(
            segments.as_slice(),
            ["t", tenant, "plugins" | "branding"] | ["t", tenant, "branding", "logo"]
                if viewer.administers(tenant)
        );
        let form = match form::Form::read(req, upload).await {
            Ok(form) => form,
            Err(message) => return error_page(StatusCode::BAD_REQUEST, &message, Some(&viewer)),
        };
        // The session's CSRF token must come back with every change.
        if !form
            .get("csrf")
            .is_some_and(|t| session::same_secret(t, &viewer.csrf))
        {
            return error_page(
                StatusCode::FORBIDDEN,
                "this form has no valid CSRF token: reload the page and try again",
                Some(&viewer),
            );
        }
        Some(form)
    } else {
        None
    };
    match (&method, segments.as_slice(), form) {
        (&Method::GET, [], _) => redirect(&viewer.home()),
        (&Method::POST, ["logout"], _) => {
            let _ = app.db.delete_session(&viewer.secret);
            with_cookie(
                redirect("/ui/login"),
                session::set_cookie(session::SESSION_COOKIE, "", 0, secure),
            )
        }
        (&Method::GET, ["me"], _) => me::page(app, &viewer, &host),
        (&Method::GET, ["tenants"], _) if viewer.role == crate::state::model::Role::SuperAdmin => {
            html(StatusCode::OK, admin::tenants_page(app, &viewer))
        }
        (_, ["t", tenant, rest @ ..], form) => {
            // Another tenant's pages do not exist for a tenant admin, as in the API.
            if !viewer.administers(tenant) {
                return error_page(
                    StatusCode::NOT_FOUND,
                    &format!("no tenant '{tenant}'"),
                    Some(&viewer),
                );
            }
            let page = admin::Page {
                app,
                viewer: &viewer,
                tenant,
                query,
            };
            admin::route(&page, &method, rest, form).await
        }
        _ => error_page(StatusCode::NOT_FOUND, "no such page", Some(&viewer)),
    }
}
