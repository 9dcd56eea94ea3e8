//! Read paths of the admin API: the request log with filters and cursor
//! pagination, tokens of a tenant, the audit log. Log and event keys are
//! time-ordered per tenant, so "newest first" is a reverse range scan that
//! stops after one page, never a full scan of the tree.

use std::collections::HashMap;

use serde::Serialize;

use super::db::{compound_key, Db};
use super::model::{Event, RequestRecord, TokenRecord};

/// Filters of a request-log query; `None` matches everything.
#[derive(Debug, Default)]
pub struct LogFilter {
    pub user: Option<String>,
    pub task: Option<String>,
    pub intent: Option<String>,
    pub status: Option<u16>,
    /// Unix milliseconds, inclusive.
    pub since_ms: Option<u64>,
    /// Unix milliseconds, exclusive.
    pub until_ms: Option<u64>,
}

impl LogFilter {
    fn matches(&self, r: &RequestRecord) -> bool {
        self.user.as_ref().is_none_or(|u| *u == r.user_id)
            && self.task.as_ref().is_none_or(|t| *t == r.task_id)
            && self
                .intent
                .as_ref()
                .is_none_or(|i| r.intent.is_some_and(|label| label.as_str() == i))
            && self.status.is_none_or(|s| s == r.status)
    }
}

/// Filters of an audit-log query; `None` matches everything.
#[derive(Debug, Default)]
pub struct EventFilter {
    /// The user, token or task an event was applied to.
    pub target: Option<String>,
    /// e.g. `user.block`; a prefix ending in `.` (`user.`) matches a family.
    pub action: Option<String>,
}

impl EventFilter {
    fn matches(&self, e: &Event) -> bool {
        self.target.as_ref().is_none_or(|t| *t == e.target)
            && self
                .action
                .as_ref()
                .is_none_or(|a| match a.strip_suffix('.') {
                    Some(family) => e
                        .action
                        .strip_prefix(family)
                        .is_some_and(|r| r.starts_with('.')),
                    None => *a == e.action,
                })
    }
}

#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next (older) page; `None` at the end.
    pub next_cursor: Option<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `tenant \0 at_ms(be)`: the time-ordered key prefix of logs and events.
pub(crate) fn time_key(tenant: &str, at_ms: u64) -> Vec<u8> {
    let mut key = compound_key(&[tenant]);
    key.push(0);
    key.extend_from_slice(&at_ms.to_be_bytes());
    key
}

/// Where a page of the request log is read from.
enum Source<'a> {
    /// The tenant's whole log.
    Log,
    /// An index (by user or by task): each entry points at a log record.
    Index(&'a sled::Tree, &'a str),
}

/// Newest-first page of a time-keyed tree, for one tenant; with an index,
/// the scan walks the index and reads only the records it points at.
#[allow(clippy::too_many_arguments)]
fn page<T: serde::de::DeserializeOwned>(
    tree: &sled::Tree,
    source: Source<'_>,
    tenant: &str,
    since_ms: Option<u64>,
    until_ms: Option<u64>,
    cursor: Option<&str>,
    limit: usize,
    mut keep: impl FnMut(&T) -> bool,
) -> anyhow::Result<Page<T>> {
    let (scanned, prefix) = match source {
        Source::Log => (tree, compound_key(&[tenant])),
        Source::Index(index, owner) => (index, compound_key(&[tenant, owner])),
    };
    let bound = |at_ms: u64| {
        let mut key = prefix.clone();
        key.push(0);
        key.extend_from_slice(&at_ms.to_be_bytes());
        key
    };
    let start = bound(since_ms.unwrap_or(0));
    let mut end = bound(until_ms.unwrap_or(u64::MAX));
    if let Some(cursor) = cursor {
        let key = unhex(cursor).ok_or_else(|| anyhow::anyhow!("invalid cursor"))?;
        if !key.starts_with(&prefix) {
            anyhow::bail!("invalid cursor");
        }
        end = end.min(key);
    }
    let mut data = Vec::with_capacity(limit.min(512));
    let mut last_key = None;
    for item in scanned.range(start..end).rev() {
        let (key, value) = item?;
        let value = match source {
            Source::Log => value,
            Source::Index(..) => {
                match tree.get(crate::log_index::log_key_of(tenant, prefix.len(), &key))? {
                    Some(v) => v,
                    // Pruned between the two reads.
                    None => continue,
                }
            }
        };
        let record: T = serde_json::from_slice(&value)?;
        if keep(&record) {
            if data.len() == limit {
                break;
            }
            data.push(record);
            last_key = Some(key);
        }
    }
    let next_cursor = (data.len() == limit)
        .then(|| last_key.map(|k| hex(&k)))
        .flatten();
    Ok(Page { data, next_cursor })
}

impl Db {
    /// A page of a tenant's request log, newest first.
    pub fn query_requests(
        &self,
        tenant: &str,
        filter: &LogFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Page<RequestRecord>> {
        // The narrowest index the filter allows.
        let source = match (&filter.user, &filter.task) {
            (Some(user), _) => Source::Index(&self.logs_by_user, user),
            (None, Some(task)) => Source::Index(&self.logs_by_task, task),
            (None, None) => Source::Log,
        };
        page(
            &self.logs,
            source,
            tenant,
            filter.since_ms,
            filter.until_ms,
            cursor,
            limit,
            |r| filter.matches(r),
        )
    }

    /// One request of the log, by its time and id.
    pub fn request(
        &self,
        tenant: &str,
        at_ms: u64,
        id: &str,
    ) -> anyhow::Result<Option<RequestRecord>> {
        let mut key = time_key(tenant, at_ms);
        key.push(0);
        key.extend_from_slice(id.as_bytes());
        self.logs
            .get(key)?
            .map(|v| Ok(serde_json::from_slice(&v)?))
            .transpose()
    }

    /// A page of a tenant's audit log, newest first.
    pub fn query_events(
        &self,
        tenant: &str,
        filter: &EventFilter,
        cursor: Option<&str>,
        limit: usize,
    ) -> anyhow::Result<Page<Event>> {
        page(
            &self.events,
            Source::Log,
            tenant,
            None,
            None,
            cursor,
            limit,
            |e| filter.matches(e),
        )
    }

    /// The newest event with one of `actions` for each of `targets`, in one
    /// newest-first scan that stops once every target has one (or after
    /// `max_scan` events: older evidence is a page of `query_events` away).
    pub fn latest_events(
        &self,
        tenant: &str,
        targets: &[&str],
        actions: &[&str],
        max_scan: usize,
    ) -> anyhow::Result<HashMap<String, Event>> {
        let mut found = HashMap::new();
        let start = time_key(tenant, 0);
        let end = time_key(tenant, u64::MAX);
        for item in self.events.range(start..end).rev().take(max_scan) {
            if found.len() == targets.len() {
                break;
            }
            let event: Event = serde_json::from_slice(&item?.1)?;
            if targets.contains(&event.target.as_str())
                && actions.contains(&event.action.as_str())
                && !found.contains_key(&event.target)
            {
                found.insert(event.target.clone(), event);
            }
        }
        Ok(found)
    }

    /// Appends to the audit log (flushed before the admin call returns).
    pub fn append_event(&self, event: &Event) -> anyhow::Result<()> {
        self.insert_event(event)?;
        self.flush()
    }

    /// Appends to the audit log; sled flushes it within a second.
    pub fn insert_event(&self, event: &Event) -> anyhow::Result<()> {
        let mut key = time_key(&event.tenant_id, event.at_ms);
        key.push(0);
        key.extend_from_slice(event.id.as_bytes());
        let value = serde_json::to_vec(event)?;
        self.write(vec![crate::shared::Change::put("events", key, value)])?;
        Ok(())
    }

    /// Every token record of a tenant (never the tokens themselves), newest first.
    pub fn tokens_of(&self, tenant: &str) -> anyhow::Result<Vec<TokenRecord>> {
        let mut tokens: Vec<TokenRecord> = self
            .tokens
            .iter()
            .values()
            .map(|v| Ok(serde_json::from_slice::<TokenRecord>(&v?)?))
            .filter(|t: &anyhow::Result<TokenRecord>| {
                t.as_ref().map_or(true, |t| t.tenant_id == tenant)
            })
            .collect::<anyhow::Result<_>>()?;
        tokens.sort_by_key(|t| std::cmp::Reverse(t.issued_at));
        Ok(tokens)
    }

    /// Revokes a token of `tenant`; false when no such token.
    pub fn revoke_token(&self, tenant: &str, jti: &str) -> anyhow::Result<bool> {
        match self.token(jti)? {
            Some(mut record) if record.tenant_id == tenant => {
                record.revoked = true;
                self.put_token(&record)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        assert_eq!(unhex(&hex(b"acme\0\x01\x02")).unwrap(), b"acme\0\x01\x02");
        assert!(unhex("zz").is_none());
        assert!(unhex("abc").is_none());
    }
}
