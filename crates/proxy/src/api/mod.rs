//! The proxy's HTTP routes. A model call of any API shape runs the one
//! call path in `call/` over its shape (`shape.rs`; `chat/` is chat
//! completions); the other routes are one file each. The admin API and the
//! console are routed beside these by the binary (see `server::Routes`).

mod call;
mod chat;
mod me;
mod messages;
mod models;
mod openai;
pub mod shape;

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};

use crate::app::App;
use crate::error::ApiError;
use crate::http::{json_response, Body};

pub async fn route(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let result = match (req.method(), req.uri().path()) {
        (&Method::POST, "/v1/chat/completions") => {
            return call::handle::<chat::Chat>(&app, req).await
        }
        (&Method::POST, "/v1/messages") => {
            return call::handle::<messages::Messages>(&app, req).await
        }
        (&Method::POST, "/v1/responses") => {
            return call::handle::<openai::responses::Responses>(&app, req).await
        }
        (&Method::POST, "/v1/embeddings") => {
            return call::handle::<openai::embeddings::Embeddings>(&app, req).await
        }
        (&Method::POST, "/v1/completions") => {
            return call::handle::<openai::completions::Completions>(&app, req).await
        }
        (&Method::GET, "/v1/models") => models::list(&app, &req),
        (&Method::GET, path) if path.starts_with("/v1/models/") => {
            models::one(&app, &req, &path["/v1/models/".len()..])
        }
        (&Method::GET, "/v1/me") => me::handle(&app, &req),
        (&Method::GET, "/healthz") => Ok(health(&app)),
        (&Method::GET, "/readyz") => Ok(readiness(&app)),
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(crate::http::full(
                app.metrics
                    .render(app.chains.as_ref().map(|c| c.warm_idle())),
            ));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            Ok(response)
        }
        (
            _,
            "/v1/chat/completions"
            | "/v1/messages"
            | "/v1/responses"
            | "/v1/embeddings"
            | "/v1/completions"
            | "/v1/models"
            | "/healthz"
            | "/readyz"
            | "/metrics",
        ) => Err(ApiError::method_not_allowed()),
        (_, path) => Err(ApiError::not_found(format!("no route for {path}"))),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// `/readyz`: whether this replica should get traffic, dependency by
/// dependency: 200 `ready` when every check passes, else 503 `not_ready`
/// with the failing checks' reasons. Today's dependencies: the state store
/// (records reach sled) and the plugin chain; a draining server is not ready.
fn readiness(app: &App) -> Response<Body> {
    let draining = app.draining.load(std::sync::atomic::Ordering::Relaxed);
    let state = app.stores.journal.health();
    let plugins = if app.chains.is_some() {
        "loaded"
    } else {
        "disabled"
    };
    // A replica whose shared store is unreachable still serves calls from
    // its snapshot and journal: reported, but not a reason to take it out.
    let shared = app.replica.as_ref().map(|r| r.postgres.health());
    let counters = app.shared_counters.as_ref().map(|c| c.health());
    let ready = !draining && state.is_ok();
    let check = |result: &Result<(), String>| match result {
        Ok(()) => serde_json::json!({ "ok": true }),
        Err(e) => serde_json::json!({ "ok": false, "error": e }),
    };
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "draining": { "ok": !draining },
            "state": check(&state),
            "plugins": { "ok": true, "chain": plugins },
            "shared_state": shared.as_ref().map_or(
                serde_json::json!({ "ok": true, "backend": "sled" }),
                check,
            ),
            "counters": counters.as_ref().map_or(
                serde_json::json!({ "ok": true, "backend": "memory" }),
                check,
            ),
        },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, body.to_string().into_bytes())
}

/// `ok`, or 503 `draining` once a shutdown began, so a load balancer
/// stops sending new work here while calls in flight finish.
fn health(app: &App) -> Response<Body> {
    if app.draining.load(std::sync::atomic::Ordering::Relaxed) {
        let mut response = json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &br#"{"status":"draining"}"#[..],
        );
        response
            .headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    json_response(StatusCode::OK, &br#"{"status":"ok"}"#[..])
}

pub(crate) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}
