//! The sled database and the in-memory directory read on the request path.
//!
//! Trees and keys (`\0` separates key parts):
//! - `tenants`:   tenant_id                  → Tenant
//! - `users`:     tenant_id \0 user_id       → User
//! - `tasks`:     tenant_id \0 task_id       → Task
//! - `groups`:    tenant_id \0 group_id      → Group (members: `User::groups`)
//! - `logos`:     sha256 (hex)               → content type \0 image bytes (branding)
//! - `keys`:      kid                        → SigningKey
//! - `tokens`:    jti                        → TokenRecord
//! - `usage`:     tenant_id \0 user_id       → UserActivity counters (see activity.rs)
//! - `logs`:      tenant_id \0 at_ms(be u64) \0 request id → RequestRecord
//! - `usage_daily`: tenant_id \0 YYYY-MM-DD \0 user \0 task → DailyUsage (rollup.rs)
//! - `plugin_kv`: tenant_id \0 plugin \0 key → plugin bytes
//! - `events`:    tenant_id \0 at_ms(be u64) \0 event id → Event (audit log)
//! - `logs_by_user`, `logs_by_task`: indexes of `logs` (log_index.rs)
//! - `ui_sessions`, `ui_login_codes`: web-console sign-ins (sessions.rs)
//! - `providers`: tenant_id \0 name        → StoredProvider (key sealed)
//! - `policies`: tenant_id \0 version       → StoredPolicy (every version kept)
//! - `billing_events`: event id             → the event as received (applied once)
//! - `webhooks`:  tenant_id \0 id          → Webhook
//! - `invitations`: tenant_id \0 id        → Invitation; `invitation_tokens`: token hash → its key
//! - `webhook_deliveries`: tenant_id \0 created_at (hex) \0 id → Delivery
//! - `routes`:    tenant_id \0 model       → StoredRoute
//! - `plugin_files`: tenant_id \0 path under the tenant's plugin directory →
//!   the file (replicas sharing one state: every replica writes them)
//! - `shipping`:  log key → RequestRecord: records this replica served that
//!   the shared store does not have yet (replicas sharing one; see shared.rs)
//! - `replica_meta`: name → big-endian i64: how far this replica has
//!   followed the shared request log
//! - `secrets`:   `master_check`            → SealedKey of a known text: which
//!   master key sealed the providers' keys (a wrong one fails start-up)
//!
//! Identity and policy state is read from [`Directory`], an immutable
//! snapshot swapped after every write, so a slow disk never turns a valid
//! token into a 401 and the hot path takes no lock.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::model::*;
use crate::shared::{Change, ChangeLog, Expect, DIRECTORY_TREES, SHARED_TREES};
use warden_domain::invitations::Invitation;
use warden_domain::policies::StoredPolicy;
use warden_domain::providers::{SealedKey, StoredProvider, StoredRoute};
use warden_domain::webhooks::{Delivery, DeliveryStatus, Webhook};

/// Everything one tenant has, for lookups without allocation.
#[derive(Default)]
pub struct TenantEntry {
    pub tenant: Option<Tenant>,
    /// Quota windows in the tenant's time zone (UTC if unset or unknown).
    pub calendar: warden_domain::calendar::Calendar,
    pub users: HashMap<String, User>,
    pub tasks: HashMap<String, Task>,
    pub groups: HashMap<String, Group>,
    /// The tenant's own providers and routes (keys sealed), by name.
    pub providers: Vec<StoredProvider>,
    pub routes: Vec<StoredRoute>,
}

#[derive(Default)]
pub struct Directory {
    /// Unique per snapshot (process-wide), so caches of derived facts know
    /// when they are stale.
    pub generation: u64,
    pub tenants: HashMap<String, TenantEntry>,
    pub keys: HashMap<String, super::keys::LoadedKey>,
    pub revoked: HashSet<String>,
}

impl Directory {
    pub fn tenant(&self, id: &str) -> Option<&TenantEntry> {
        self.tenants.get(id)
    }

    /// The prices of the tenant's own provider that answered `record`.
    pub fn provider_prices(
        &self,
        record: &RequestRecord,
    ) -> Option<&std::collections::BTreeMap<String, warden_domain::pricing::Price>> {
        let providers = &self.tenant(&record.tenant_id)?.providers;
        let answered = providers.iter().find(|p| p.spec.name == record.provider)?;
        Some(&answered.spec.prices).filter(|p| !p.is_empty())
    }
}

pub struct Db {
    db: sled::Db,
    tenants: sled::Tree,
    users: sled::Tree,
    tasks: sled::Tree,
    groups: sled::Tree,
    logos: sled::Tree,
    keys: sled::Tree,
    pub(crate) tokens: sled::Tree,
    pub(crate) usage: sled::Tree,
    pub(crate) logs: sled::Tree,
    pub(crate) logs_by_user: sled::Tree,
    pub(crate) logs_by_task: sled::Tree,
    pub(crate) usage_daily: sled::Tree,
    pub(crate) events: sled::Tree,
    pub(crate) shipping: sled::Tree,
    plugin_files: sled::Tree,
    replica_meta: sled::Tree,
    pub plugin_kv: sled::Tree,
    pub(crate) ui_sessions: sled::Tree,
    pub(crate) ui_login_codes: sled::Tree,
    providers: sled::Tree,
    routes: sled::Tree,
    secrets: sled::Tree,
    /// Tenants' policy versions, by (tenant, zero-padded version).
    policies: sled::Tree,
    /// Billing webhook events applied, by the provider's event id.
    billing_events: sled::Tree,
    webhooks: sled::Tree,
    webhook_deliveries: sled::Tree,
    invitations: sled::Tree,
    /// SHA-256 of an invitation's token → tenant \0 invitation id.
    invitation_tokens: sled::Tree,
    directory: ArcSwap<Directory>,
    /// The shared source of truth, when replicas share one (see shared.rs).
    change_log: std::sync::OnceLock<Arc<dyn ChangeLog>>,
    /// Prices for the rollups' estimated cost (the server's configuration).
    pricing: ArcSwap<warden_domain::pricing::Pricing>,
}

pub(crate) fn compound_key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

fn encode<T: Serialize>(value: &T) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(value)?)
}

fn decode_all<T: DeserializeOwned>(tree: &sled::Tree) -> anyhow::Result<Vec<T>> {
    tree.iter()
        .values()
        .map(|v| Ok(serde_json::from_slice(&v?)?))
        .collect()
}

/// Opens sled, waiting up to two seconds for the file lock: a database
/// closed a moment ago (a restart, the CLI just before the server) releases
/// it only when sled's background flusher has stopped.
fn open_sled(path: &Path) -> sled::Result<sled::Db> {
    let mut attempts = 0;
    loop {
        // sled caches up to 1 GiB by default; the hot path reads from the
        // in-memory directory, so a small page cache is enough.
        match sled::Config::new()
            .path(path)
            .cache_capacity(64 << 20)
            .open()
        {
            // sled wraps the lock failure (EWOULDBLOCK) in an error of kind
            // `Other` whose message says so.
            Err(sled::Error::Io(e))
                if attempts < 40
                    && (e.kind() == std::io::ErrorKind::WouldBlock
                        || e.to_string().contains("could not acquire lock")) =>
            {
                attempts += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            result => return result,
        }
    }
}

impl Db {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(path)
            .with_context(|| format!("creating state directory {}", path.display()))?;
        let db = open_sled(path).with_context(|| {
            format!(
                "opening the database at {} (is another warden using it?)",
                path.display()
            )
        })?;
        let tree = |name: &str| db.open_tree(name);
        let this = Self {
            tenants: tree("tenants")?,
            users: tree("users")?,
            tasks: tree("tasks")?,
            groups: tree("groups")?,
            logos: tree("logos")?,
            keys: tree("keys")?,
            tokens: tree("tokens")?,
            usage: tree("usage")?,
            logs: tree("logs")?,
            logs_by_user: tree("logs_by_user")?,
            logs_by_task: tree("logs_by_task")?,
            usage_daily: tree("usage_daily")?,
            events: tree("events")?,
            shipping: tree("shipping")?,
            plugin_files: tree("plugin_files")?,
            replica_meta: tree("replica_meta")?,
            plugin_kv: tree("plugin_kv")?,
            ui_sessions: tree("ui_sessions")?,
            ui_login_codes: tree("ui_login_codes")?,
            providers: tree("providers")?,
            routes: tree("routes")?,
            secrets: tree("secrets")?,
            policies: tree("policies")?,
            billing_events: tree("billing_events")?,
            webhooks: tree("webhooks")?,
            webhook_deliveries: tree("webhook_deliveries")?,
            invitations: tree("invitations")?,
            invitation_tokens: tree("invitation_tokens")?,
            directory: ArcSwap::from_pointee(Directory::default()),
            change_log: std::sync::OnceLock::new(),
            pricing: ArcSwap::from_pointee(warden_domain::pricing::Pricing::default()),
            db,
        };
        this.reload()?;
        this.index_logs_if_needed()?;
        Ok(this)
    }

    /// Prices the rollups estimate cost with.
    pub fn pricing(&self) -> arc_swap::Guard<Arc<warden_domain::pricing::Pricing>> {
        self.pricing.load()
    }

    pub fn set_pricing(&self, pricing: warden_domain::pricing::Pricing) {
        self.pricing.store(Arc::new(pricing));
    }

    /// The current snapshot; cheap, lock-free.
    pub fn directory(&self) -> arc_swap::Guard<Arc<Directory>> {
        self.directory.load()
    }

    /// Rebuilds the snapshot from disk (after a write).
    pub fn reload(&self) -> anyhow::Result<()> {
        static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut dir = Directory {
            generation: GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            ..Directory::default()
        };
        for t in decode_all::<Tenant>(&self.tenants)? {
            let id = t.id.clone();
            let entry = dir.tenants.entry(id).or_default();
            match warden_domain::calendar::Calendar::parse(&t.timezone) {
                Ok(calendar) => entry.calendar = calendar,
                Err(e) => tracing::warn!(tenant = %t.id, "{e:#}; quota windows use UTC"),
            }
            entry.tenant = Some(t);
        }
        for u in decode_all::<User>(&self.users)? {
            dir.tenants
                .entry(u.tenant_id.clone())
                .or_default()
                .users
                .insert(u.id.clone(), u);
        }
        for t in decode_all::<Task>(&self.tasks)? {
            dir.tenants
                .entry(t.tenant_id.clone())
                .or_default()
                .tasks
                .insert(t.id.clone(), t);
        }
        for g in decode_all::<Group>(&self.groups)? {
            dir.tenants
                .entry(g.tenant_id.clone())
                .or_default()
                .groups
                .insert(g.id.clone(), g);
        }
        for p in decode_all::<StoredProvider>(&self.providers)? {
            let entry = dir.tenants.entry(p.tenant_id.clone()).or_default();
            entry.providers.push(p);
        }
        for r in decode_all::<StoredRoute>(&self.routes)? {
            let entry = dir.tenants.entry(r.tenant_id.clone()).or_default();
            entry.routes.push(r);
        }
        for k in decode_all::<SigningKey>(&self.keys)? {
            dir.keys
                .insert(k.kid.clone(), super::keys::LoadedKey::new(k));
        }
        for t in decode_all::<TokenRecord>(&self.tokens)? {
            if t.revoked {
                dir.revoked.insert(t.jti);
            }
        }
        self.directory.store(Arc::new(dir));
        Ok(())
    }

    /// Makes this database one replica of a shared state: from now on
    /// every write is committed to `log` before it is applied here.
    pub fn share_through(&self, log: Arc<dyn ChangeLog>) {
        if self.change_log.set(log).is_err() {
            tracing::warn!("the shared change log was already set; kept the first");
        }
    }

    /// Whether writes go to a shared store first.
    pub fn is_shared(&self) -> bool {
        self.change_log.get().is_some()
    }

    /// Writes `changes` atomically: committed to the shared store first if
    /// there is one (which decides their expectations for every replica),
    /// then applied here. `Ok(false)` when an expectation did not hold;
    /// then nothing is written. Durable before it returns, except audit
    /// events alone (flushed within a second, as before).
    pub(crate) fn write(&self, changes: Vec<Change>) -> anyhow::Result<bool> {
        let check_here = match self.change_log.get() {
            Some(log) => {
                if !log.commit(&changes)? {
                    return Ok(false);
                }
                false
            }
            None => true,
        };
        if !self.apply(&changes, check_here)? {
            return Ok(false);
        }
        if changes.iter().any(|c| c.tree != "events") {
            self.db.flush()?;
        }
        Ok(true)
    }

    /// Applies changes another replica committed (in commit order); the
    /// local copy is a cache of the shared store, rebuilt from it at start.
    pub fn apply_shared(&self, changes: &[Change]) -> anyhow::Result<()> {
        self.apply(changes, false)?;
        Ok(())
    }

    /// Replaces every shared tree with `rows` (a replica's start: its
    /// local copy becomes the shared store's snapshot).
    pub fn replace_shared(&self, rows: &[Change]) -> anyhow::Result<()> {
        for name in SHARED_TREES {
            self.tree(name)?.clear()?;
        }
        self.apply(rows, false)?;
        self.db.flush()?;
        self.reload()
    }

    /// Every shared tree's contents, as changes that recreate them
    /// (`warden migrate` copies them into a shared store).
    pub fn shared_rows(&self) -> anyhow::Result<Vec<Change>> {
        let mut rows = Vec::new();
        for name in SHARED_TREES {
            for item in self.tree(name)?.iter() {
                let (key, value) = item?;
                rows.push(Change::put(name, key.to_vec(), value.to_vec()));
            }
        }
        Ok(rows)
    }

    /// Records another replica served, from the shared store: logged and
    /// counted in the rollups like this replica's own (once each), never
    /// shipped back.
    pub fn log_served_elsewhere(&self, records: &[RequestRecord]) -> anyhow::Result<()> {
        let entries: Vec<_> = records
            .iter()
            .map(|r| Ok((super::writer::log_key(r), encode(r)?, r)))
            .collect::<anyhow::Result<_>>()?;
        super::rollup::log_and_count(self, &entries, false)
    }

    /// Sets one plugin's files of a tenant (paths under its plugin
    /// directory) to `files`, removing the ones it had that are gone.
    pub fn put_plugin_files(
        &self,
        tenant: &str,
        name: &str,
        files: Vec<(String, Vec<u8>)>,
    ) -> anyhow::Result<()> {
        let live = compound_key(&[tenant, &format!("{name}.wasm")]);
        let versions = compound_key(&[tenant, &format!(".versions/{name}/")]);
        let mut changes: Vec<Change> = files
            .iter()
            .map(|(path, bytes)| {
                Change::put("plugin_files", compound_key(&[tenant, path]), bytes.clone())
            })
            .collect();
        let kept: HashSet<Vec<u8>> = changes.iter().map(|c| c.key.clone()).collect();
        let had = self.plugin_files.get(&live)?.map(|_| live.clone());
        for key in had.into_iter().chain(
            self.plugin_files
                .scan_prefix(&versions)
                .keys()
                .filter_map(Result::ok)
                .map(|k| k.to_vec()),
        ) {
            if !kept.contains(&key) {
                changes.push(Change::remove("plugin_files", key));
            }
        }
        if !changes.is_empty() {
            self.write(changes)?;
        }
        Ok(())
    }

    /// Every tenant's shared plugin files: (tenant, path, bytes).
    pub fn plugin_files(&self) -> anyhow::Result<Vec<(String, String, Vec<u8>)>> {
        self.plugin_files
            .iter()
            .map(|item| {
                let (key, value) = item?;
                let key = String::from_utf8(key.to_vec())?;
                let (tenant, path) = key.split_once('\0').unwrap_or(("", &key));
                Ok((tenant.to_string(), path.to_string(), value.to_vec()))
            })
            .collect()
    }

    /// The logged record of a call, by its tenant, start and id.
    pub fn logged_record(
        &self,
        tenant: &str,
        at_ms: u64,
        id: &str,
    ) -> anyhow::Result<Option<RequestRecord>> {
        let key = super::writer::record_key(tenant, at_ms, id);
        Ok(match self.logs.get(key)? {
            Some(value) => Some(serde_json::from_slice(&value)?),
            None => None,
        })
    }

    /// The whole request log, oldest first, `size` encoded records at a
    /// time (`warden migrate`).
    pub fn request_log_batches(
        &self,
        size: usize,
        mut each: impl FnMut(Vec<Vec<u8>>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(size);
        for value in self.logs.iter().values() {
            batch.push(value?.to_vec());
            if batch.len() == size {
                each(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            each(batch)?;
        }
        Ok(())
    }

    /// Up to `limit` records this replica served that the shared store does
    /// not have yet, oldest first: (log key, encoded record).
    pub fn unshipped(&self, limit: usize) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.shipping
            .iter()
            .take(limit)
            .map(|item| {
                let (key, value) = item?;
                Ok((key.to_vec(), value.to_vec()))
            })
            .collect()
    }

    /// The shared store has these records now.
    pub fn shipped(&self, keys: &[Vec<u8>]) -> anyhow::Result<()> {
        let mut batch = sled::Batch::default();
        for key in keys {
            batch.remove(key.as_slice());
        }
        self.shipping.apply_batch(batch)?;
        Ok(())
    }

    /// A local cursor (how far this replica followed a shared log).
    pub fn cursor(&self, name: &str) -> anyhow::Result<i64> {
        Ok(match self.replica_meta.get(name)? {
            Some(v) if v.len() == 8 => i64::from_be_bytes(v.as_ref().try_into()?),
            _ => 0,
        })
    }

    pub fn set_cursor(&self, name: &str, value: i64) -> anyhow::Result<()> {
        self.replica_meta.insert(name, &value.to_be_bytes())?;
        Ok(())
    }

    /// Applies changes in one sled transaction, checking their
    /// expectations when `check`; rebuilds the snapshot when one of them
    /// touched it.
    fn apply(&self, changes: &[Change], check: bool) -> anyhow::Result<bool> {
        use sled::transaction::{abort, TransactionError, Transactional};
        let mut names: Vec<&'static str> = changes.iter().map(|c| c.tree).collect();
        names.sort_unstable();
        names.dedup();
        let trees = names
            .iter()
            .map(|name| self.tree(name))
            .collect::<anyhow::Result<Vec<&sled::Tree>>>()?;
        let result = trees.as_slice().transaction(|views| {
            for change in changes {
                let view = &views[names.binary_search(&change.tree).unwrap_or(0)];
                if check && !change.expects(view.get(&change.key)?.as_deref()) {
                    return abort(());
                }
                match &change.value {
                    Some(value) => view.insert(change.key.as_slice(), value.as_slice())?,
                    None => view.remove(change.key.as_slice())?,
                };
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(TransactionError::Abort(())) => return Ok(false),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        }
        if changes.iter().any(|c| DIRECTORY_TREES.contains(&c.tree)) {
            self.reload()?;
        }
        Ok(true)
    }

    /// A shared tree by name.
    fn tree(&self, name: &str) -> anyhow::Result<&sled::Tree> {
        Ok(match name {
            "tenants" => &self.tenants,
            "users" => &self.users,
            "tasks" => &self.tasks,
            "groups" => &self.groups,
            "logos" => &self.logos,
            "keys" => &self.keys,
            "tokens" => &self.tokens,
            "providers" => &self.providers,
            "routes" => &self.routes,
            "secrets" => &self.secrets,
            "policies" => &self.policies,
            "billing_events" => &self.billing_events,
            "webhooks" => &self.webhooks,
            "invitations" => &self.invitations,
            "invitation_tokens" => &self.invitation_tokens,
            "ui_sessions" => &self.ui_sessions,
            "ui_login_codes" => &self.ui_login_codes,
            "events" => &self.events,
            "plugin_files" => &self.plugin_files,
            other => anyhow::bail!("'{other}' is not a shared tree"),
        })
    }

    pub(crate) fn put<T: Serialize>(
        &self,
        tree: &'static str,
        key: &[u8],
        value: &T,
    ) -> anyhow::Result<()> {
        self.write(vec![Change::put(tree, key, encode(value)?)])?;
        Ok(())
    }

    pub fn put_tenant(&self, tenant: &Tenant) -> anyhow::Result<()> {
        self.put("tenants", tenant.id.as_bytes(), tenant)
    }

    pub fn put_user(&self, user: &User) -> anyhow::Result<()> {
        self.put("users", &compound_key(&[&user.tenant_id, &user.id]), user)
    }

    pub fn put_task(&self, task: &Task) -> anyhow::Result<()> {
        self.put("tasks", &compound_key(&[&task.tenant_id, &task.id]), task)
    }

    /// Writes a group (or removes it: `None`) together with the users
    /// whose membership changed, in one transaction: no snapshot sees a
    /// member of a group that is gone.
    pub fn write_group(
        &self,
        tenant: &str,
        id: &str,
        group: Option<&Group>,
        members: &[User],
    ) -> anyhow::Result<()> {
        let group_key = compound_key(&[tenant, id]);
        let mut changes = vec![match group {
            Some(group) => Change::put("groups", group_key, encode(group)?),
            None => Change::remove("groups", group_key),
        }];
        for user in members {
            let key = compound_key(&[&user.tenant_id, &user.id]);
            changes.push(Change::put("users", key, encode(user)?));
        }
        self.write(changes)
            .with_context(|| format!("writing group '{id}'"))?;
        Ok(())
    }

    /// Stores an image by its SHA-256 (hex); the same image twice is one entry.
    pub fn put_logo(&self, sha256: &str, content_type: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let mut value = Vec::with_capacity(content_type.len() + 1 + bytes.len());
        value.extend_from_slice(content_type.as_bytes());
        value.push(0);
        value.extend_from_slice(bytes);
        self.write(vec![Change::put("logos", sha256.as_bytes(), value)])?;
        Ok(())
    }

    /// A stored image and its content type.
    pub fn logo(&self, sha256: &str) -> anyhow::Result<Option<(String, Vec<u8>)>> {
        let Some(value) = self.logos.get(sha256.as_bytes())? else {
            return Ok(None);
        };
        let cut = value.iter().position(|b| *b == 0).unwrap_or(0);
        let content_type = String::from_utf8_lossy(&value[..cut]).into_owned();
        Ok(Some((content_type, value[cut + 1..].to_vec())))
    }

    pub fn put_key(&self, key: &SigningKey) -> anyhow::Result<()> {
        self.put("keys", key.kid.as_bytes(), key)
    }

    pub fn put_token(&self, token: &TokenRecord) -> anyhow::Result<()> {
        self.put("tokens", token.jti.as_bytes(), token)
    }

    pub fn put_provider(&self, provider: &StoredProvider) -> anyhow::Result<()> {
        let key = compound_key(&[&provider.tenant_id, &provider.spec.name]);
        self.put("providers", &key, provider)
    }

    /// Removes a tenant's provider; false when there was none.
    pub fn delete_provider(&self, tenant: &str, name: &str) -> anyhow::Result<bool> {
        self.delete("providers", compound_key(&[tenant, name]))
    }

    pub fn put_route(&self, route: &StoredRoute) -> anyhow::Result<()> {
        let key = compound_key(&[&route.tenant_id, &route.route.model]);
        self.put("routes", &key, route)
    }

    pub fn delete_route(&self, tenant: &str, model: &str) -> anyhow::Result<bool> {
        self.delete("routes", compound_key(&[tenant, model]))
    }

    /// Removes a key; false when there was none.
    fn delete(&self, tree: &'static str, key: Vec<u8>) -> anyhow::Result<bool> {
        self.write(vec![Change::remove(tree, key).expecting(Expect::Present)])
    }

    /// Stores a new version of a tenant's policy, durably.
    pub fn put_policy(&self, policy: &StoredPolicy) -> anyhow::Result<()> {
        let version = format!("{:010}", policy.version);
        let key = compound_key(&[&policy.tenant_id, &version]);
        // A version is written once: two replicas numbering the same
        // version at once cannot both win.
        let change = Change::put("policies", key, encode(policy)?).expecting(Expect::Absent);
        if !self.write(vec![change])? {
            anyhow::bail!(
                "policy version {} of tenant '{}' was written meanwhile; try again",
                policy.version,
                policy.tenant_id
            );
        }
        Ok(())
    }

    /// A tenant's policy versions, oldest first.
    pub fn policy_versions(&self, tenant: &str) -> anyhow::Result<Vec<StoredPolicy>> {
        // "acme\0": not "acme-eu"'s versions.
        let prefix = compound_key(&[tenant, ""]);
        self.policies
            .scan_prefix(&prefix)
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// Records a billing event by its id, once: false when it was already
    /// recorded (a retry or a replay of the same event).
    pub fn record_billing_event(&self, id: &str, event: &[u8]) -> anyhow::Result<bool> {
        let change = Change::put("billing_events", id.as_bytes(), event.to_vec());
        self.write(vec![change.expecting(Expect::Absent)])
    }

    pub fn put_webhook(&self, webhook: &Webhook) -> anyhow::Result<()> {
        let key = compound_key(&[&webhook.tenant_id, &webhook.id]);
        self.write(vec![Change::put("webhooks", key, encode(webhook)?)])?;
        Ok(())
    }

    /// Removes a tenant's webhook; false when there was none.
    pub fn delete_webhook(&self, tenant: &str, id: &str) -> anyhow::Result<bool> {
        self.delete("webhooks", compound_key(&[tenant, id]))
    }

    pub fn webhooks(&self, tenant: &str) -> anyhow::Result<Vec<Webhook>> {
        self.webhooks
            .scan_prefix(compound_key(&[tenant, ""]))
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    fn delivery_key(delivery: &Delivery) -> Vec<u8> {
        let at = format!("{:016x}", delivery.created_at);
        compound_key(&[&delivery.tenant_id, &at, &delivery.id])
    }

    /// Stores a delivery as it is now (made, attempted, finished).
    pub fn put_delivery(&self, delivery: &Delivery) -> anyhow::Result<()> {
        self.webhook_deliveries
            .insert(Self::delivery_key(delivery), encode(delivery)?)?;
        Ok(())
    }

    /// A tenant's deliveries, newest first.
    pub fn deliveries(&self, tenant: &str, limit: usize) -> anyhow::Result<Vec<Delivery>> {
        self.webhook_deliveries
            .scan_prefix(compound_key(&[tenant, ""]))
            .values()
            .rev()
            .take(limit)
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    /// Deliveries not finished yet, every tenant's (start-up).
    pub fn pending_deliveries(&self) -> anyhow::Result<Vec<Delivery>> {
        Ok(decode_all::<Delivery>(&self.webhook_deliveries)?
            .into_iter()
            .filter(|d| d.status == DeliveryStatus::Pending)
            .collect())
    }

    /// Audit events as they are appended.
    pub fn watch_events(&self) -> sled::Subscriber {
        self.events.watch_prefix(Vec::new())
    }

    /// Stores an invitation and indexes its current token.
    pub fn put_invitation(&self, invitation: &Invitation) -> anyhow::Result<()> {
        let key = compound_key(&[&invitation.tenant_id, &invitation.id]);
        self.write(vec![
            Change::put("invitations", key.clone(), encode(invitation)?),
            Change::put("invitation_tokens", invitation.token_hash.as_bytes(), key),
        ])?;
        Ok(())
    }

    /// Moves an invitation from `current` to `next` only if nobody changed
    /// it meanwhile: two tabs accepting one invitation make one account.
    pub fn swap_invitation(&self, current: &Invitation, next: &Invitation) -> anyhow::Result<bool> {
        let key = compound_key(&[&current.tenant_id, &current.id]);
        let change = Change::put("invitations", key, encode(next)?);
        self.write(vec![change.expecting(Expect::Equals(encode(current)?))])
    }

    /// The invitation whose token hashes to `token_hash`, if it is its
    /// current one (a resend replaces the token).
    pub fn invitation_by_token(&self, token_hash: &str) -> anyhow::Result<Option<Invitation>> {
        let Some(key) = self.invitation_tokens.get(token_hash.as_bytes())? else {
            return Ok(None);
        };
        let Some(bytes) = self.invitations.get(key)? else {
            return Ok(None);
        };
        let invitation: Invitation = serde_json::from_slice(&bytes)?;
        Ok((invitation.token_hash == token_hash).then_some(invitation))
    }

    /// A tenant's invitations, oldest first.
    pub fn invitations(&self, tenant: &str) -> anyhow::Result<Vec<Invitation>> {
        let mut all: Vec<Invitation> = self
            .invitations
            .scan_prefix(compound_key(&[tenant, ""]))
            .values()
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect::<anyhow::Result<_>>()?;
        all.sort_by_key(|i| i.created_at);
        Ok(all)
    }

    /// Each tenant's latest policy version (start-up).
    pub fn current_policies(&self) -> anyhow::Result<Vec<StoredPolicy>> {
        let mut latest: std::collections::BTreeMap<String, StoredPolicy> = Default::default();
        for policy in decode_all::<StoredPolicy>(&self.policies)? {
            latest.insert(policy.tenant_id.clone(), policy);
        }
        Ok(latest.into_values().collect())
    }

    /// Every tenant's providers, as stored (for re-sealing their keys).
    pub fn all_providers(&self) -> anyhow::Result<Vec<StoredProvider>> {
        decode_all(&self.providers)
    }

    /// The sealed check of the master key the providers' keys are under.
    pub fn master_check(&self) -> anyhow::Result<Option<SealedKey>> {
        Ok(match self.secrets.get("master_check")? {
            Some(v) => Some(serde_json::from_slice(&v)?),
            None => None,
        })
    }

    /// Stores the providers re-sealed under a new master key (one atomic
    /// batch), then that key's check, and flushes. A crash in between is
    /// mended by running the rotation again: it opens each key with
    /// whichever of the two master keys sealed it.
    pub fn reseal(&self, check: &SealedKey, providers: &[StoredProvider]) -> anyhow::Result<()> {
        let mut changes = Vec::with_capacity(providers.len() + 1);
        for p in providers {
            let key = compound_key(&[&p.tenant_id, &p.spec.name]);
            changes.push(Change::put("providers", key, encode(p)?));
        }
        changes.push(Change::put("secrets", "master_check", encode(check)?));
        self.write(changes)?;
        Ok(())
    }

    pub fn token(&self, jti: &str) -> anyhow::Result<Option<TokenRecord>> {
        Ok(match self.tokens.get(jti)? {
            Some(v) => Some(serde_json::from_slice(&v)?),
            None => None,
        })
    }

    /// Changes a user's status; returns false when the user does not exist.
    pub fn set_user_status(
        &self,
        tenant: &str,
        user: &str,
        status: UserStatus,
    ) -> anyhow::Result<bool> {
        let Some(mut record) = self
            .directory()
            .tenant(tenant)
            .and_then(|t| t.users.get(user).cloned())
        else {
            return Ok(false);
        };
        record.status = status;
        self.put_user(&record)?;
        Ok(true)
    }

    /// Request records of a tenant, newest first.
    pub fn recent_requests(
        &self,
        tenant: &str,
        limit: usize,
    ) -> anyhow::Result<Vec<RequestRecord>> {
        let mut prefix = tenant.as_bytes().to_vec();
        prefix.push(0);
        self.logs
            .scan_prefix(prefix)
            .values()
            .rev()
            .take(limit)
            .map(|v| Ok(serde_json::from_slice(&v?)?))
            .collect()
    }

    pub fn flush(&self) -> anyhow::Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

impl Db {
    /// Users' activity as last persisted (the CLI reads it with the server stopped).
    pub fn load_activity(&self) -> anyhow::Result<super::Activity> {
        super::Activity::load(&self.usage)
    }

    /// An owned snapshot, for holding across `.await`.
    pub fn directory_full(&self) -> Arc<Directory> {
        self.directory.load_full()
    }
}
