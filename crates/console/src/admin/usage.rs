//! Usage export for invoices: requests, tokens and estimated cost per local
//! day, user and task over a date range, from the daily rollups (no log scan).

use hyper::{Response, StatusCode};

use super::{csv, Page};
use crate::admin_api::date_param;
use crate::error_page;
use crate::http::{full, Body};
use crate::state::{usage_report, Grouping, UsageQuery};

const HEADER: &str = "day,user,task,requests,succeeded,failed,tokens_in,tokens_out,cost_usd\n";

/// `usage.csv?from=YYYY-MM-DD&to=YYYY-MM-DD` (local dates, inclusive;
/// default this month), with a totals line.
pub fn csv(page: &Page<'_>) -> Response<Body> {
    let directory = page.app.db.directory();
    let Some(entry) = directory.tenant(page.tenant) else {
        return page.not_found("no such tenant");
    };
    let (today, month_start) = entry
        .calendar
        .today_and_month_start(page.app.clock.now_ms());
    let dates =
        date_param(&page.query, "from").and_then(|from| Ok((from, date_param(&page.query, "to")?)));
    let (from, to) = match dates {
        Ok((from, to)) => (from.unwrap_or(month_start), to.unwrap_or(today)),
        Err(e) => return error_page(e.status(), &e.message, Some(page.viewer)),
    };
    let (from, to) = (&from, &to);
    let group = Grouping {
        day: true,
        user: true,
        task: true,
    };
    let query = UsageQuery {
        tenant: page.tenant,
        from,
        to,
        user: page.param("user"),
        task: page.param("task"),
        group,
    };
    let (rows, totals) = match usage_report(&page.app.db, &query) {
        Ok(report) => report,
        Err(e) => {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("{e:#}"),
                Some(page.viewer),
            )
        }
    };
    let mut out = String::with_capacity(HEADER.len() + rows.len() * 64);
    out.push_str(HEADER);
    let line =
        |out: &mut String, day: &str, user: &str, task: &str, u: &crate::state::DailyUsage| {
            csv::row(
                out,
                &[
                    day.to_string(),
                    user.to_string(),
                    task.to_string(),
                    u.requests.to_string(),
                    u.succeeded.to_string(),
                    u.failed.to_string(),
                    u.tokens_in.to_string(),
                    u.tokens_out.to_string(),
                    format!("{:.6}", u.cost_micro_usd as f64 / 1e6),
                ],
            )
        };
    for r in &rows {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        line(
            &mut out,
            &text(&r.day),
            &text(&r.user),
            &text(&r.task),
            &r.usage,
        );
    }
    line(&mut out, "total", "", "", &totals);
    csv::response(
        full(out),
        &format!("warden-{}-usage-{from}-{to}.csv", page.tenant),
    )
}
