//! The console's stylesheet and script, compiled into the binary: the
//! console works offline and needs no other file.

use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::http::{full, Body};

const APP_CSS: &str = include_str!("assets/app.css");
const APP_JS: &str = include_str!("assets/app.js");

pub fn serve(name: &str) -> Response<Body> {
    let (body, kind) = match name {
        "app.css" => (APP_CSS, "text/css; charset=utf-8"),
        "app.js" => (APP_JS, "text/javascript; charset=utf-8"),
        _ => return super::error_page(StatusCode::NOT_FOUND, "no such file", None),
    };
    let mut response = Response::new(full(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// `/ui/brand.css?c=rrggbb`: the accent colour a tenant chose, as the
/// stylesheet's variables. The colour is checked to be six hex digits, so
/// nothing else can reach a stylesheet (the CSP allows only this origin's).
pub fn brand_css(query: &std::collections::HashMap<String, String>) -> Response<Body> {
    let accent = query
        .get("c")
        .and_then(|c| crate::domain::branding::accent_color(c).ok().flatten());
    let Some(accent) = accent else {
        return super::error_page(StatusCode::NOT_FOUND, "no such colour", None);
    };
    let soft = crate::domain::branding::soften(&accent, 90);
    let css = format!(":root {{ --accent: {accent}; --accent-soft: {soft}; }}\n");
    let mut response = Response::new(full(css));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}

/// `/ui/brand/logo/{sha256}`: a tenant's logo, by its content's hash (the
/// address names no tenant and its content never changes).
pub fn logo(app: &crate::app::App, sha256: &str) -> Response<Body> {
    let valid = sha256.len() == 64 && sha256.bytes().all(|b| b.is_ascii_hexdigit());
    let stored = valid.then(|| app.db.logo(sha256).ok().flatten()).flatten();
    let Some((content_type, bytes)) = stored else {
        return super::error_page(StatusCode::NOT_FOUND, "no such logo", None);
    };
    let Ok(kind) = HeaderValue::from_str(&content_type) else {
        return super::error_page(StatusCode::NOT_FOUND, "no such logo", None);
    };
    let mut response = Response::new(full(bytes));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, kind);
    headers.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    response
}
