//! Read-only views: the request log and the audit log, newest first, with
//! cursor pagination; usage reports from the daily rollups.

use std::collections::HashMap;

use serde::Serialize;

use super::{Access, Caller};
use crate::app::App;
use crate::error::{ApiError, ErrorCode};
use crate::state::model::{Event, RequestRecord};
use crate::state::{
    usage_report, DailyUsage, EventFilter, Grouping, LogFilter, Page, UsageQuery, UsageRow,
};

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
                ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("'{key}' must be a number"),
                )
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
    ApiError::new(ErrorCode::InvalidCursor, format!("{e:#}"))
}

/// `GET /admin/v1/tenants/{t}/logs?user=&task=&intent=&status=&since=&until=&limit=&cursor=`
/// (`since`/`until` in unix milliseconds).
pub fn logs(
    app: &App,
    caller: &Caller,
    tenant: &str,
    query: &HashMap<String, String>,
) -> Result<Page<RequestRecord>, ApiError> {
    caller.may(Access::Read, tenant)?;
    caller.user_filter(app, tenant, query)?;
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
    Ok(page)
}

/// `GET /admin/v1/tenants/{t}/events?user=&action=&limit=&cursor=`
pub fn events(
    app: &App,
    caller: &Caller,
    tenant: &str,
    query: &HashMap<String, String>,
) -> Result<Page<Event>, ApiError> {
    caller.may(Access::Read, tenant)?;
    caller.user_filter(app, tenant, query)?;
    let page = app
        .db
        .query_events(
            tenant,
            &EventFilter {
                target: query.get("user").or(query.get("target")).cloned(),
                action: query.get("action").cloned(),
            },
            query.get("cursor").map(String::as_str),
            page_size(query)?,
        )
        .map_err(invalid_cursor)?;
    Ok(page)
}

/// A `YYYY-MM-DD` query parameter, checked so that range keys stay well formed.
pub fn date_param(query: &HashMap<String, String>, key: &str) -> Result<Option<String>, ApiError> {
    query
        .get(key)
        .map(|v| {
            v.parse::<jiff::civil::Date>()
                .map(|d| d.to_string())
                .map_err(|_| {
                    ApiError::new(
                        ErrorCode::InvalidParameter,
                        format!("'{key}' must be a date like 2026-11-22"),
                    )
                })
        })
        .transpose()
}

/// `GET /admin/v1/tenants/{t}/usage?from=&to=&user=&task=&group_by=day,user,task`:
/// sums per local day / user / task (any combination; default all three)
/// with totals. `from`/`to` are local dates, inclusive; the default is this
/// month up to today.
pub fn usage(
    app: &App,
    caller: &Caller,
    tenant: &str,
    query: &HashMap<String, String>,
) -> Result<UsageReport, ApiError> {
    caller.may(Access::Read, tenant)?;
    caller.user_filter(app, tenant, query)?;
    let directory = app.db.directory();
    let entry = directory
        .tenant(tenant)
        .filter(|e| e.tenant.is_some())
        .ok_or_else(|| ApiError::not_found(format!("no tenant '{tenant}'")))?;
    let (today, month_start) = entry.calendar.today_and_month_start(app.clock.now_ms());
    let from = date_param(query, "from")?.unwrap_or(month_start);
    let to = date_param(query, "to")?.unwrap_or(today);
    let mut group = Grouping::default();
    for column in query
        .get("group_by")
        .map_or("day,user,task", String::as_str)
        .split(',')
        .filter(|c| !c.is_empty())
    {
        match column {
            "day" => group.day = true,
            "user" => group.user = true,
            "task" => group.task = true,
            other => {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("cannot group by '{other}': use day, user and/or task"),
                ))
            }
        }
    }
    let (rows, totals) = usage_report(
        &app.db,
        &UsageQuery {
            tenant,
            from: &from,
            to: &to,
            user: query.get("user").map(String::as_str),
            task: query.get("task").map(String::as_str),
            group,
        },
    )
    .map_err(super::internal)?;
    Ok(UsageReport {
        tenant: tenant.to_string(),
        timezone: entry.calendar.name().to_string(),
        from,
        to,
        data: rows,
        totals,
    })
}

/// Usage of a tenant between two dates (its own calendar), grouped.
#[derive(Debug, Serialize)]
pub struct UsageReport {
    pub tenant: String,
    pub timezone: String,
    pub from: String,
    pub to: String,
    pub data: Vec<UsageRow>,
    pub totals: DailyUsage,
}
