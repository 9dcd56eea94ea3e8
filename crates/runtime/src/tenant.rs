//! What all plugins of one tenant share, so that no tenant can take what
//! the others need: a cap on its instances in use at once (warm idle ones
//! are bounded by the warm budget), a log budget, and a key-value quota.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Per-tenant limits of the sandbox.
#[derive(Clone, Debug)]
pub struct TenantLimits {
    /// Instances one tenant's calls may use at once, all its plugins
    /// together; a call over it fails at once (503) instead of waiting.
    pub max_instances: usize,
    /// Log lines one tenant's plugins may write per second; the rest are
    /// dropped (and counted).
    pub log_lines_per_sec: u32,
    /// Longest log message kept; longer ones are cut.
    pub log_line_bytes: usize,
    /// Keys and bytes (keys plus values) one tenant's plugins may store.
    pub kv_max_keys: u64,
    pub kv_max_bytes: u64,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self {
            max_instances: 250,
            log_lines_per_sec: 50,
            log_line_bytes: 2048,
            kv_max_keys: 10_000,
            kv_max_bytes: 16 << 20,
        }
    }
}

/// Process-wide counts of what the per-tenant limits refused; exported on
/// `/metrics`.
pub static LOG_LINES_DROPPED: AtomicU64 = AtomicU64::new(0);
pub static INSTANCES_REFUSED: AtomicU64 = AtomicU64::new(0);
pub static KV_WRITES_REFUSED: AtomicU64 = AtomicU64::new(0);

/// One tenant's shared sandbox state.
pub struct TenantSandbox {
    limits: TenantLimits,
    instances_in_use: AtomicUsize,
    /// (second since start, lines logged in it).
    log_window: Mutex<(u64, u32)>,
    /// Keys and bytes stored, counted from the tree on first write.
    kv_usage: Mutex<Option<KvUsage>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KvUsage {
    pub keys: u64,
    pub bytes: u64,
}

/// A call's claim on one of its tenant's instances; given back when the
/// call ends.
pub struct InstanceSlot(Arc<TenantSandbox>);

impl Drop for InstanceSlot {
    fn drop(&mut self) {
        self.0.instances_in_use.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a key-value write was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum KvRefusal {
    TooManyKeys,
    TooManyBytes,
}

impl TenantSandbox {
    pub fn new(limits: TenantLimits) -> Self {
        Self {
            limits,
            instances_in_use: AtomicUsize::new(0),
            log_window: Mutex::new((0, 0)),
            kv_usage: Mutex::new(None),
        }
    }

    /// A slot for one more instance, or `None` at the tenant's cap.
    pub fn try_slot(self: &Arc<Self>) -> Option<InstanceSlot> {
        let before = self.instances_in_use.fetch_add(1, Ordering::Relaxed);
        let slot = InstanceSlot(self.clone());
        if before >= self.limits.max_instances {
            INSTANCES_REFUSED.fetch_add(1, Ordering::Relaxed);
            return None; // dropping the slot gives the count back
        }
        Some(slot)
    }

    pub fn instances_in_use(&self) -> usize {
        self.instances_in_use.load(Ordering::Relaxed)
    }

    /// Whether one more log line fits this second's budget; counts the
    /// ones that do not.
    pub fn admit_log_line(&self) -> bool {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let second = START.get_or_init(Instant::now).elapsed().as_secs();
        let mut window = self.log_window.lock().expect("log window lock");
        if window.0 != second {
            *window = (second, 0);
        }
        if window.1 >= self.limits.log_lines_per_sec {
            LOG_LINES_DROPPED.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        window.1 += 1;
        true
    }

    /// `message` cut to the line cap (on a character boundary).
    pub fn cap_log_line<'m>(&self, message: &'m str) -> (&'m str, bool) {
        let mut end = self.limits.log_line_bytes.min(message.len());
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        (&message[..end], end < message.len())
    }

    /// Applies one write (`old` and `new` are the entry's sizes, key
    /// included, before and after; `None` when absent) if it keeps the
    /// tenant within its quota. `count` reads the tenant's usage from the
    /// tree the first time. Runs `write` under the tenant's lock, so
    /// concurrent writes cannot both fit the last bytes.
    pub fn kv_write<T>(
        &self,
        count: impl FnOnce() -> KvUsage,
        old: impl FnOnce() -> Option<u64>,
        new: Option<u64>,
        write: impl FnOnce() -> T,
    ) -> Result<T, KvRefusal> {
        let mut usage = self.kv_usage.lock().expect("kv usage lock");
        let usage = usage.get_or_insert_with(count);
        let old = old();
        let keys = (usage.keys + u64::from(new.is_some())).saturating_sub(u64::from(old.is_some()));
        let bytes = (usage.bytes + new.unwrap_or(0)).saturating_sub(old.unwrap_or(0));
        let growing = new.unwrap_or(0) > old.unwrap_or(0);
        if growing && keys > self.limits.kv_max_keys {
            KV_WRITES_REFUSED.fetch_add(1, Ordering::Relaxed);
            return Err(KvRefusal::TooManyKeys);
        }
        if growing && bytes > self.limits.kv_max_bytes {
            KV_WRITES_REFUSED.fetch_add(1, Ordering::Relaxed);
            return Err(KvRefusal::TooManyBytes);
        }
        let result = write();
        *usage = KvUsage { keys, bytes };
        Ok(result)
    }

    /// The tenant's stored keys and bytes, if counted yet.
    pub fn kv_usage(&self) -> Option<KvUsage> {
        *self.kv_usage.lock().expect("kv usage lock")
    }
}

/// Every tenant's sandbox state, created on first use and kept for the
/// life of the process (a few dozen bytes per tenant), so a reloaded chain
/// keeps counting what its predecessor's instances still hold.
pub struct TenantSandboxes {
    limits: TenantLimits,
    by_tenant: Mutex<HashMap<Arc<str>, Arc<TenantSandbox>>>,
}

impl TenantSandboxes {
    pub fn new(limits: TenantLimits) -> Self {
        Self {
            limits,
            by_tenant: Mutex::new(HashMap::new()),
        }
    }

    pub fn of(&self, tenant_id: &Arc<str>) -> Arc<TenantSandbox> {
        let mut all = self.by_tenant.lock().expect("tenant sandboxes lock");
        all.entry(tenant_id.clone())
            .or_insert_with(|| Arc::new(TenantSandbox::new(self.limits.clone())))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(limits: TenantLimits) -> Arc<TenantSandbox> {
        Arc::new(TenantSandbox::new(limits))
    }

    #[test]
    fn instances_are_capped_per_tenant_and_given_back() {
        let s = sandbox(TenantLimits {
            max_instances: 2,
            ..Default::default()
        });
        let a = s.try_slot().unwrap();
        let _b = s.try_slot().unwrap();
        assert!(s.try_slot().is_none());
        assert_eq!(s.instances_in_use(), 2, "a refusal holds nothing");
        drop(a);
        assert!(s.try_slot().is_some());
    }

    #[test]
    fn log_lines_are_rate_limited_and_cut() {
        let s = sandbox(TenantLimits {
            log_lines_per_sec: 3,
            log_line_bytes: 4,
            ..Default::default()
        });
        let admitted = (0..10).filter(|_| s.admit_log_line()).count();
        assert!((3..=6).contains(&admitted), "{admitted}"); // a second may tick over
        assert_eq!(s.cap_log_line("héllo"), ("hél", true));
        assert_eq!(
            s.cap_log_line("hhhé"),
            ("hhh", true),
            "never inside a character"
        );
        assert_eq!(s.cap_log_line("abc"), ("abc", false));
    }

    #[test]
    fn kv_writes_stay_within_keys_and_bytes() {
        let s = sandbox(TenantLimits {
            kv_max_keys: 2,
            kv_max_bytes: 100,
            ..Default::default()
        });
        let none = || KvUsage::default();
        assert!(s.kv_write(none, || None, Some(40), || ()).is_ok());
        assert!(s.kv_write(none, || None, Some(40), || ()).is_ok());
        assert_eq!(
            s.kv_write(none, || None, Some(1), || ()),
            Err(KvRefusal::TooManyKeys)
        );
        assert_eq!(
            s.kv_write(none, || Some(40), Some(61), || ()),
            Err(KvRefusal::TooManyBytes)
        );
        assert!(s.kv_write(none, || Some(40), Some(60), || ()).is_ok());
        assert!(s.kv_write(none, || Some(60), None, || ()).is_ok());
        assert_eq!(s.kv_usage(), Some(KvUsage { keys: 1, bytes: 40 }));
    }
}
