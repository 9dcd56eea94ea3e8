//! Read-only views: the request log and the audit log, newest first, with
//! cursor pagination.

use std::collections::HashMap;

use hyper::{Response, StatusCode};

use super::{json, Caller};
use crate::app::App;
use crate::error::ApiError;
use crate::http::Body;
use crate::state::LogFilter;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

fn number<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    key: &str,
) -> Result<Option<T>, ApiError> {
    query
        .get(key)
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::bad_request("invalid_parameter", format!("'{key}' must be a number"))
            })
        })
        .transpose()
}

fn page_size(query: &HashMap<String, String>) -> Result<usize, ApiError> {
    Ok(number::<usize>(query, "limit")?
        .unwrap_or(DEFAULT_PAGE)
        .clamp(1, MAX_PAGE))
}

fn invalid_cursor(e: anyhow::Error) -> ApiError {
    ApiError::bad_request("invalid_cursor", format!("{e:#}"))
}

/// `GET /admin/v1/tenants/{t}/logs?user=&task=&intent=&status=&since=&until=&limit=&cursor=`
/// (`since`/`until` in unix milliseconds).
pub fn logs(
    app: &App,
    caller: &Caller,
    tenant: &str,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let filter = LogFilter {
        user: query.get("user").cloned(),
        task: query.get("task").cloned(),
        intent: query.get("intent").cloned(),
        status: number(query, "status")?,
        since_ms: number(query, "since")?,
        until_ms: number(query, "until")?,
    };
    let page = app
        .db
        .query_requests(
            tenant,
            &filter,
            query.get("cursor").map(String::as_str),
            page_size(query)?,
        )
        .map_err(invalid_cursor)?;
    json(StatusCode::OK, &page)
}

/// `GET /admin/v1/tenants/{t}/events?limit=&cursor=`
pub fn events(
    app: &App,
    caller: &Caller,
    tenant: &str,
    query: &HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    caller.scope(tenant)?;
    let page = app
        .db
        .query_events(
            tenant,
            query.get("cursor").map(String::as_str),
            page_size(query)?,
        )
        .map_err(invalid_cursor)?;
    json(StatusCode::OK, &page)
}
