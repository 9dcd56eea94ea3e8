//! Daily usage rollups: requests and tokens per tenant, local day, user and
//! task, kept next to the request log so usage reports never scan the log.
//!
//! Key of the `usage_daily` tree: `tenant \0 YYYY-MM-DD \0 user \0 task`
//! (the tenant's local date, so a report's days match its quota days); keys
//! sort by day within a tenant, so a date range is one range scan.
//!
//! A record is counted in the same sled transaction that inserts it into the
//! log, and only if the log did not have it yet: replaying the journal after
//! a crash never counts a request twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

use super::db::{compound_key, Db};
use super::log_index::index_key;
use super::model::RequestRecord;

/// What one (day, user, task) used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyUsage {
    pub requests: u64,
    /// Requests answered 2xx.
    pub succeeded: u64,
    /// Requests refused by Warden or failed upstream (status ≥ 400).
    pub failed: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
    /// Sum of latencies, for averages.
    pub latency_ms: u64,
    /// Estimated cost in millionths of a US dollar (see pricing.rs).
    #[serde(default)]
    pub cost_micro_usd: u64,
}

impl DailyUsage {
    fn add(&mut self, other: &DailyUsage) {
        self.requests += other.requests;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.tokens_in += other.tokens_in;
        self.tokens_out += other.tokens_out;
        self.latency_ms += other.latency_ms;
        self.cost_micro_usd += other.cost_micro_usd;
    }

    fn of(
        record: &RequestRecord,
        pricing: &warden_domain::pricing::Pricing,
        directory: &crate::Directory,
    ) -> Self {
        let ok = (200..300).contains(&record.status);
        Self {
            requests: 1,
            succeeded: u64::from(ok),
            failed: u64::from(!ok),
            tokens_in: record.tokens_in,
            tokens_out: record.tokens_out,
            latency_ms: record.latency_ms,
            cost_micro_usd: pricing
                .record_cost_micro_usd(record, directory.provider_prices(record)),
        }
    }
}

fn rollup_key(tenant: &str, date: &str, user: &str, task: &str) -> Vec<u8> {
    compound_key(&[tenant, date, user, task])
}

/// Inserts encoded log entries and counts the new ones in the daily
/// rollups, atomically. `entries` are (log key, encoded record, record).
/// With `ship`, the new ones are also queued for the shared store (this
/// replica served them; another replica's records arrive shipped).
pub(crate) fn log_and_count(
    db: &Db,
    entries: &[(Vec<u8>, Vec<u8>, &RequestRecord)],
    ship: bool,
) -> anyhow::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let directory = db.directory();
    let pricing = db.pricing();
    let dated: Vec<Vec<u8>> = entries
        .iter()
        .map(|(_, _, r)| {
            let date = directory
                .tenant(&r.tenant_id)
                .map(|t| t.calendar.date_of(r.at_ms))
                .unwrap_or_else(|| {
                    warden_domain::calendar::Calendar::utc_shared().date_of(r.at_ms)
                });
            rollup_key(&r.tenant_id, &date, &r.user_id, &r.task_id)
        })
        .collect();
    (
        &db.logs,
        &db.usage_daily,
        &db.logs_by_user,
        &db.logs_by_task,
        &db.shipping,
    )
        .transaction(|(logs, daily, by_user, by_task, shipping)| {
            let mut deltas: BTreeMap<&[u8], DailyUsage> = BTreeMap::new();
            for ((key, value, record), rollup) in entries.iter().zip(&dated) {
                if logs.insert(key.as_slice(), value.as_slice())?.is_none() {
                    by_user.insert(index_key(record, &record.user_id), &[])?;
                    by_task.insert(index_key(record, &record.task_id), &[])?;
                    if ship {
                        shipping.insert(key.as_slice(), value.as_slice())?;
                    }
                    deltas
                        .entry(rollup)
                        .or_default()
                        .add(&DailyUsage::of(record, &pricing, &directory));
                }
            }
            for (key, delta) in deltas {
                let mut total: DailyUsage = match daily.get(key)? {
                    Some(v) => serde_json::from_slice(&v).unwrap_or_default(),
                    None => DailyUsage::default(),
                };
                total.add(&delta);
                let encoded = serde_json::to_vec(&total)
                    .map_err(|e| ConflictableTransactionError::Abort(e.to_string()))?;
                daily.insert(key, encoded)?;
            }
            Ok(())
        })
        .map_err(|e: TransactionError<String>| anyhow::anyhow!("logging requests: {e:?}"))
}

/// One row of a usage report: the grouping columns that were asked for, and
/// the sums.
#[derive(Debug, Clone, Serialize)]
pub struct UsageRow {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(flatten)]
    pub usage: DailyUsage,
}

/// Which columns a report groups by.
#[derive(Debug, Clone, Copy, Default)]
pub struct Grouping {
    pub day: bool,
    pub user: bool,
    pub task: bool,
}

impl Grouping {
    pub fn by_day() -> Self {
        Self {
            day: true,
            ..Self::default()
        }
    }

    pub fn by_user() -> Self {
        Self {
            user: true,
            ..Self::default()
        }
    }

    pub fn by_task() -> Self {
        Self {
            task: true,
            ..Self::default()
        }
    }
}

/// A report's question: a tenant, an inclusive range of local dates
/// (`YYYY-MM-DD`), optional user and task filters, and a grouping.
#[derive(Debug, Clone)]
pub struct UsageQuery<'a> {
    pub tenant: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub user: Option<&'a str>,
    pub task: Option<&'a str>,
    pub group: Grouping,
}

/// Rows (sorted by day, user, task) and their totals.
pub fn usage_report(
    db: &Db,
    query: &UsageQuery<'_>,
) -> anyhow::Result<(Vec<UsageRow>, DailyUsage)> {
    let start = compound_key(&[query.tenant, query.from]);
    // Every key of the last day sorts before `to` followed by \x01.
    let mut end = compound_key(&[query.tenant, query.to]);
    end.push(1);
    let mut groups: BTreeMap<(String, String, String), DailyUsage> = BTreeMap::new();
    let mut totals = DailyUsage::default();
    for item in db.usage_daily.range(start..end) {
        let (key, value) = item?;
        let mut parts = key.split(|b| *b == 0).map(String::from_utf8_lossy);
        let (_, day, user, task) = (parts.next(), parts.next(), parts.next(), parts.next());
        let (Some(day), Some(user), Some(task)) = (day, user, task) else {
            continue;
        };
        if query.user.is_some_and(|u| u != user) || query.task.is_some_and(|t| t != task) {
            continue;
        }
        let usage: DailyUsage = serde_json::from_slice(&value)?;
        totals.add(&usage);
        let pick = |wanted: bool, value: std::borrow::Cow<'_, str>| {
            if wanted {
                value.into_owned()
            } else {
                String::new()
            }
        };
        let group = (
            pick(query.group.day, day),
            pick(query.group.user, user),
            pick(query.group.task, task),
        );
        groups.entry(group).or_default().add(&usage);
    }
    let rows = groups
        .into_iter()
        .map(|((day, user, task), usage)| UsageRow {
            day: query.group.day.then_some(day),
            user: query.group.user.then_some(user),
            task: query.group.task.then_some(task),
            usage,
        })
        .collect();
    Ok((rows, totals))
}
