//! Writes to the state that every replica shares, as changes: what a
//! shared source of truth (PostgreSQL, `warden-shared`) commits before a
//! replica applies them to its local sled, and what each replica applies
//! when another replica's changes arrive.
//!
//! One replica alone (the embedded default) has no [`ChangeLog`]: a change
//! is applied to sled and that is all. With one, a change is committed to
//! the shared store first (a compare-and-swap is decided there, for every
//! replica at once), then applied locally, so the replica reads its own
//! write at once; the others apply it when notified.

/// The sled trees every replica shares: identity, configuration, console
/// sessions, the audit log and tenants' uploaded plugin files. Not shared: the request log and its indexes
/// and rollups (each replica's own, batched into the shared store),
/// counters (Redis), plugins' key-value stores and webhook deliveries (a
/// replica's own work queue).
pub const SHARED_TREES: &[&str] = &[
    "tenants",
    "users",
    "tasks",
    "groups",
    "logos",
    "keys",
    "tokens",
    "providers",
    "routes",
    "secrets",
    "policies",
    "billing_events",
    "webhooks",
    "invitations",
    "invitation_tokens",
    "ui_sessions",
    "ui_login_codes",
    "events",
    "plugin_files",
];

/// The trees the request path's snapshot is built from: a change to one
/// rebuilds it.
pub(crate) const DIRECTORY_TREES: &[&str] = &[
    "tenants",
    "users",
    "tasks",
    "groups",
    "providers",
    "routes",
    "keys",
    "tokens",
];

/// The shared tree named `name`, as the constant (changes name trees by
/// `&'static str`); `None` for a tree that is not shared.
pub fn shared_tree(name: &str) -> Option<&'static str> {
    SHARED_TREES.iter().copied().find(|t| *t == name)
}

/// What a change expects to find, checked atomically with the write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    Anything,
    /// No value (an insert that must not overwrite).
    Absent,
    /// Exactly these bytes (a compare-and-swap).
    Equals(Vec<u8>),
    /// Some value (a take: a delete that must find something).
    Present,
}

/// One key's new value (`None`: removed) in one shared tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub tree: &'static str,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub expect: Expect,
}

impl Change {
    pub fn put(tree: &'static str, key: impl Into<Vec<u8>>, value: Vec<u8>) -> Self {
        Self {
            tree,
            key: key.into(),
            value: Some(value),
            expect: Expect::Anything,
        }
    }

    pub fn remove(tree: &'static str, key: impl Into<Vec<u8>>) -> Self {
        Self {
            tree,
            key: key.into(),
            value: None,
            expect: Expect::Anything,
        }
    }

    pub fn expecting(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }

    /// Whether `current` is what the change expects.
    pub fn expects(&self, current: Option<&[u8]>) -> bool {
        match (&self.expect, current) {
            (Expect::Anything, _) => true,
            (Expect::Absent, current) => current.is_none(),
            (Expect::Present, current) => current.is_some(),
            (Expect::Equals(want), Some(current)) => want.as_slice() == current,
            (Expect::Equals(_), None) => false,
        }
    }

    /// The tenant a key belongs to: its first part, in the trees keyed by
    /// tenant (row-level security in the shared store keys on it).
    pub fn tenant(&self) -> Option<&str> {
        let keyed_by_tenant = !matches!(
            self.tree,
            "logos"
                | "keys"
                | "tokens"
                | "secrets"
                | "billing_events"
                | "invitation_tokens"
                | "ui_sessions"
                | "ui_login_codes"
        );
        if !keyed_by_tenant {
            return None;
        }
        let end = self
            .key
            .iter()
            .position(|b| *b == 0)
            .unwrap_or(self.key.len());
        std::str::from_utf8(&self.key[..end]).ok()
    }
}

/// The shared source of truth a replica commits its changes to.
pub trait ChangeLog: Send + Sync {
    /// Commits `changes` in one transaction, in order after every change
    /// committed before; `Ok(false)` when an expectation did not hold
    /// (then nothing is written). Errors when the store is unreachable:
    /// the write fails, and nothing is applied locally either.
    fn commit(&self, changes: &[Change]) -> anyhow::Result<bool>;
}
