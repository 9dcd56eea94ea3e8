//! Warm instances, and the process-wide budget that bounds them.
//!
//! Each (tenant, plugin) keeps a small pool of idle instances, because a
//! call on a live instance costs microseconds where a fresh one costs
//! 50 µs (Rust) to 1.7 ms (Python, JavaScript). With thousands of tenants,
//! pools that only grow would pin every slot of the instance pool and
//! gigabytes of linear memory for tenants that called once. So idle
//! instances are counted against one budget (instances and bytes): an
//! instance that does not fit is dropped instead of pooled, and a sweeper
//! drops instances idle longer than `idle_ttl`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::call_budget::CallBudget;
use super::host_imports::PluginState;
use super::stage::StageGuest;

/// Limits of the idle instances kept across all tenants.
#[derive(Clone, Debug)]
pub struct WarmLimits {
    pub max_instances: usize,
    pub max_bytes: usize,
    pub idle_ttl: Duration,
}

pub(super) struct WarmInstance {
    pub store: Store<PluginState>,
    pub guest: StageGuest,
    pub calls: u32,
    /// Meters each call's time; the store's epoch callback reads it.
    pub budget: Arc<CallBudget>,
    idle_since: Instant,
}

impl WarmInstance {
    pub fn new(store: Store<PluginState>, guest: StageGuest, budget: Arc<CallBudget>) -> Self {
        Self {
            store,
            guest,
            calls: 0,
            budget,
            idle_since: Instant::now(),
        }
    }

    fn bytes(&self) -> usize {
        self.store.data().limiter.memory_bytes
    }
}

/// One (tenant, plugin)'s idle instances.
pub(super) struct WarmPool {
    idle: Mutex<Vec<WarmInstance>>,
    budget: Arc<WarmBudget>,
}

impl WarmPool {
    pub fn take(&self) -> Option<WarmInstance> {
        let warm = self.idle.lock().expect("warm pool lock").pop()?;
        self.budget.release(warm.bytes());
        Some(warm)
    }

    /// Keeps `warm` idle if this pool and the process budget have room.
    pub fn put(&self, mut warm: WarmInstance, pool_size: usize) {
        let mut idle = self.idle.lock().expect("warm pool lock");
        if idle.len() < pool_size && self.budget.reserve(warm.bytes()) {
            warm.idle_since = Instant::now();
            idle.push(warm);
        }
    }

    pub fn idle_bytes(&self) -> usize {
        let idle = self.idle.lock().expect("warm pool lock");
        idle.iter().map(WarmInstance::bytes).sum()
    }

    /// Drops instances idle since before `cutoff`.
    fn expire(&self, cutoff: Instant) {
        let mut idle = self.idle.lock().expect("warm pool lock");
        idle.retain(|warm| {
            let keep = warm.idle_since >= cutoff;
            if !keep {
                self.budget.release(warm.bytes());
            }
            keep
        });
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        let idle = self.idle.get_mut().expect("warm pool lock");
        for warm in idle.drain(..) {
            self.budget.release(warm.bytes());
        }
    }
}

/// The idle instances of every pool, counted against one budget.
pub struct WarmBudget {
    limits: WarmLimits,
    instances: AtomicUsize,
    bytes: AtomicUsize,
    pools: Mutex<Vec<Weak<WarmPool>>>,
}

impl WarmBudget {
    pub fn new(limits: WarmLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            instances: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            pools: Mutex::new(Vec::new()),
        })
    }

    /// A new pool, swept with the others.
    pub(super) fn pool(self: &Arc<Self>) -> Arc<WarmPool> {
        let pool = Arc::new(WarmPool {
            idle: Mutex::new(Vec::new()),
            budget: self.clone(),
        });
        self.pools
            .lock()
            .expect("warm pools lock")
            .push(Arc::downgrade(&pool));
        pool
    }

    fn reserve(&self, bytes: usize) -> bool {
        let instances = self.instances.fetch_add(1, Ordering::Relaxed) + 1;
        let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if instances > self.limits.max_instances || total > self.limits.max_bytes {
            self.release(bytes);
            return false;
        }
        true
    }

    fn release(&self, bytes: usize) {
        self.instances.fetch_sub(1, Ordering::Relaxed);
        self.bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Idle instances and their linear memory, across all tenants.
    pub fn idle(&self) -> (usize, usize) {
        (
            self.instances.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// Drops instances idle longer than the TTL, and forgets pools that
    /// are gone (their chain was replaced).
    pub fn sweep(&self) {
        let Some(cutoff) = Instant::now().checked_sub(self.limits.idle_ttl) else {
            return;
        };
        let mut pools = self.pools.lock().expect("warm pools lock");
        pools.retain(|pool| match pool.upgrade() {
            Some(pool) => {
                pool.expire(cutoff);
                true
            }
            None => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_instances: usize, max_bytes: usize) -> Arc<WarmBudget> {
        WarmBudget::new(WarmLimits {
            max_instances,
            max_bytes,
            idle_ttl: Duration::from_secs(60),
        })
    }

    #[test]
    fn idle_instances_are_capped_by_count_and_bytes() {
        let b = budget(2, 100);
        assert!(b.reserve(40));
        assert!(b.reserve(40));
        assert!(!b.reserve(1), "a third instance is over the count");
        assert_eq!(b.idle(), (2, 80), "a refusal takes nothing");
        b.release(40);
        assert!(!b.reserve(61), "61 more bytes are over the byte cap");
        assert!(b.reserve(60));
        assert_eq!(b.idle(), (2, 100));
    }

    #[test]
    fn a_dropped_pool_gives_back_nothing_it_did_not_hold_and_is_forgotten() {
        let b = budget(4, 1 << 20);
        let pool = b.pool();
        assert_eq!(pool.idle_bytes(), 0);
        drop(pool);
        b.sweep();
        assert!(b.pools.lock().unwrap().is_empty());
        assert_eq!(b.idle(), (0, 0));
    }
}
